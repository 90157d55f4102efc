"""The manifest: what was loaded, where, from which file content, and how far each file got."""
