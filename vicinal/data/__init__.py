"""Data: datasets as in-memory uint8 tensors, corrupted (-C) test sets on disk, and checksummed downloads.
The corruption engine that makes -C sets is its own package, :mod:`vicinal.corruptions`."""
