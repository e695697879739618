"""The stdout contract: one JSON object per line, nothing else on stdout.

`isolate_stdout()` moves file descriptor 1 onto stderr before any library is imported, so stray prints,
progress bars and C-level logging land on stderr, and only `EventReporter` writes to the real stdout.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, TextIO


def isolate_stdout() -> TextIO:
    """Return a private stream on the original stdout and point fd 1 (and sys.stdout) at stderr."""
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(events_fd, "w", buffering=1, encoding="utf-8")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN/inf are not JSON; a diverged loss is reported as null
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _json_safe(value.item())
    return value


class EventReporter:
    """Writes the four event shapes of the trainer CLI contract."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps(_json_safe({"event": event, **fields}), ensure_ascii=False, allow_nan=False)
        self._stream.write(line + "\n")
        self._stream.flush()

    def progress(self, step: int, total: int, loss: float | None, tokens_per_s: float | None, **extra: Any) -> None:
        self.emit("progress", step=step, total=total, loss=loss, tokens_per_s=tokens_per_s, **extra)

    def checkpoint(self, step: int, path: str) -> None:
        self.emit("checkpoint", step=step, path=path)

    def done(self, metrics: dict[str, Any], outputs: dict[str, str]) -> None:
        self.emit("done", metrics=metrics, outputs=outputs)

    def error(self, kind: str, message: str) -> None:
        self.emit("error", kind=kind, message=message)
