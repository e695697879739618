"""The trainer's side of the CLI contract as JSON: commands, their config fields (type, default) and the
error kinds. `python -m supertiny_trainer.contract > trainer/contract.json` writes the checked-in copy
that the TypeScript side types itself from; test/trainer-contract.test.ts fails when the two disagree."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import typing

from .__main__ import COMMANDS
from .core.errors import ErrorKind


def _default(field: dataclasses.Field) -> typing.Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _field(field: dataclasses.Field) -> dict:
    described = {"type": str(field.type), "default": _default(field)}
    if "choices" in field.metadata:
        described["choices"] = list(field.metadata["choices"])
    return described


def contract() -> dict:
    commands = {}
    for name, (module_name, config_name, _runner) in sorted(COMMANDS.items()):
        config = getattr(importlib.import_module(module_name), config_name)
        commands[name] = {
            "config": config_name,
            "fields": {f.name: _field(f) for f in dataclasses.fields(config)},
        }
    return {"commands": commands, "error_kinds": list(typing.get_args(ErrorKind))}


if __name__ == "__main__":
    json.dump(contract(), sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")
