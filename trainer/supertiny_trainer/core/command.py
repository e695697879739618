"""The shape every command follows: a config dataclass plus a runner that returns metrics and outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import EventReporter


@dataclass
class RunContext:
    run_dir: Path
    resume: bool
    events: EventReporter


@dataclass
class CommandResult:
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
