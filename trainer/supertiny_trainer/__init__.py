"""supertiny trainer: the Python backend behind the TypeScript transfer and compress stages.

Run as `python -m supertiny_trainer <command> --config cfg.json --run-dir DIR [--resume]`.
"""

__version__ = "0.1.0"
