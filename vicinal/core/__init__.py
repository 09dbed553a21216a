"""What every other part stands on: errors, the naming rule, registries, settings (hyperparameters), atomic
file writes, progress reporting, code fingerprints and figures. Nothing here imports vicinal above it
(only the leaf :mod:`vicinal._version`), and importing it does not import torch."""
