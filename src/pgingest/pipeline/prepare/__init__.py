"""Preparing a file (stage 2 of a run): its claim in the manifest, the source opened, the
columns it brings and the keyed plan, before anything is written."""
