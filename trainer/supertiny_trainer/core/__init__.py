"""Shared core of every command: errors, events, config loading, runtime setup, checkpoints, training loop."""
