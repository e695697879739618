"""Typed failures that become `error` events (kind + message) instead of tracebacks."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["config", "data", "oom", "missing_model", "internal"]


class TrainerError(Exception):
    """A failure the caller can act on; `kind` is part of the CLI contract."""

    kind: ErrorKind = "internal"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(TrainerError):
    kind = "config"


class DataError(TrainerError):
    kind = "data"


class MissingModelError(TrainerError):
    kind = "missing_model"
