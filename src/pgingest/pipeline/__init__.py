"""The stages of a load put together: discover, plan, read, shape, write."""
