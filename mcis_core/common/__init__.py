"""What every stage shares: the params machinery, the error types, atomic file output, the
dataset layout and its paths, the compute device and the stage entry point."""
