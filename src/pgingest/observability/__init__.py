"""What a run shows: progress reporting and logging, independent of the loading code."""
