"""Atomic checkpoints and outputs: everything is written to a hidden staging path and renamed into place.

A SIGKILL at any moment leaves either a complete `checkpoints/checkpoint-N` or nothing under that name;
half-written state only ever exists under `.staging/`, which is wiped at the start of every run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(source: Path, destination: Path) -> None:
    """Move a finished folder onto `destination`, replacing an older one without a window of a partial folder."""
    if destination.exists():
        trash = destination.parent / f".trash-{destination.name}-{uuid.uuid4().hex[:8]}"
        os.replace(destination, trash)
        os.replace(source, destination)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(source, destination)
    _fsync_dir(destination.parent)


@contextlib.contextmanager
def atomic_output_dir(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `destination`; on success it becomes `destination` by rename."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.parent / f".tmp-{destination.name}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        yield temporary
        _fsync_tree(temporary)
        _replace_dir(temporary, destination)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    temporary = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    with temporary.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


class CheckpointStore:
    """`run_dir/checkpoints/checkpoint-N` (complete, published) and `run_dir/.staging` (in progress)."""

    def __init__(self, run_dir: str | Path, keep: int = 2):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self.staging = self.run_dir / ".staging"
        self.keep = keep

    def published(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            match = CHECKPOINT_PATTERN.match(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), entry))
        return sorted(found)

    def newest(self) -> Path | None:
        published = self.published()
        return published[-1][1] if published else None

    def prepare(self, resume: bool) -> Path | None:
        """Wipe leftovers of an interrupted save; a fresh (non-resume) run also drops old checkpoints."""
        shutil.rmtree(self.staging, ignore_errors=True)
        for leftover in self.run_dir.glob(".tmp-*") if self.run_dir.is_dir() else []:
            shutil.rmtree(leftover, ignore_errors=True)
        if not resume:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.newest() if resume else None

    def publish(self, staged: Path) -> Path:
        """Rename a fully written staged checkpoint into `checkpoints/` and drop the oldest beyond `keep`."""
        _fsync_tree(staged)
        destination = self.root / staged.name
        _replace_dir(staged, destination)
        published = self.published()
        for _, old in published[: max(0, len(published) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)
        return destination
