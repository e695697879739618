"""The task description the TypeScript side writes (tasks/task-description.ts, format "supertiny-task/1").

The trainer reads the task's rules from it instead of re-deriving them from tool definitions: per output
function its JSON Schema and each argument's kind ("span", "enum", "number", "boolean", "free text"), JSON
type, whether it is required, an enum's values and a number's bounds. Arguments are checked against the schema
with `jsonschema` as ajv checks them on the TypeScript side (draft-07, no format assertions). The golden
cases in test/golden/task-rules/ run here (trainer/tests/test_task_rules_golden.py) and in jest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError

from ..core.errors import DataError

FORMAT = "supertiny-task/1"
KINDS = ("span", "enum", "number", "boolean", "free text")
TYPES = ("string", "number", "integer", "boolean")

# A number as a compact call writes it (tasks/from-files/arguments.ts NUMBER): "07", " 7" and "+7" are not.
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_INTEGER = re.compile(r"-?(0|[1-9]\d*)")


@dataclass(frozen=True)
class ArgumentDescription:
    name: str
    kind: str
    type: str = "string"
    required: bool = False
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class FunctionDescription:
    name: str
    parameters: dict[str, Any]
    arguments: dict[str, ArgumentDescription]
    description: str = ""
    validator: Draft7Validator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.validator = Draft7Validator(self.parameters)

    def spans(self) -> set[str]:
        return {name for name, argument in self.arguments.items() if argument.kind == "span"}


def typed_value(value: Any, argument: ArgumentDescription | None) -> Any:
    """The typed value of a compact call's string, as toTypedForm: "3" is 3 for a number, "true" is True for a
    boolean; anything else (a list of a repeated key's values, a string that is not a number) unchanged."""
    if not isinstance(value, str) or argument is None:
        return value
    if argument.type in ("number", "integer") and _NUMBER.fullmatch(value):
        return int(value) if _INTEGER.fullmatch(value) else float(value)
    if argument.type == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def typed_arguments(function: FunctionDescription, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A call's (key, value) pairs as the typed arguments object: a repeated key is a list of its values
    (tasks/call-format.ts callArgumentsObject), left as strings."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return {
        key: typed_value(values[0], function.arguments.get(key)) if len(values) == 1 else values
        for key, values in grouped.items()
    }


def schema_errors(function: FunctionDescription, arguments: dict[str, Any]) -> list[str]:
    """Errors of typed arguments against the function's JSON Schema, each naming the argument (never its value)."""
    errors = []
    for error in sorted(function.validator.iter_errors(arguments), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path)
        if error.validator == "additionalProperties":
            errors.append("arguments have an argument that is not a parameter")
        elif error.validator == "required":
            errors.append(f"arguments lack a required argument ({error.message.split(' ')[0]})")
        else:
            errors.append(
                f'argument "{where}" fails "{error.validator}"' if where else f'arguments fail "{error.validator}"'
            )
    return errors


def _argument(raw: Any, where: str) -> ArgumentDescription:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise DataError(f"{where} needs a 'name'")
    unknown = sorted(set(raw) - {"name", "kind", "type", "required", "values", "minimum", "maximum"})
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown}")
    if raw.get("kind") not in KINDS:
        raise DataError(f"{where}: 'kind' must be one of {list(KINDS)}")
    if raw.get("type") not in TYPES:
        raise DataError(f"{where}: 'type' must be one of {list(TYPES)}")
    if not isinstance(raw.get("required"), bool):
        raise DataError(f"{where}: 'required' must be a boolean")
    values = raw.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise DataError(f"{where}: 'values' must be a list of strings")
    if raw["kind"] == "enum" and not values:
        raise DataError(f"{where}: an enum needs its 'values'")
    for bound in ("minimum", "maximum"):
        if bound in raw and (isinstance(raw[bound], bool) or not isinstance(raw[bound], (int, float))):
            raise DataError(f"{where}: '{bound}' must be a number")
    return ArgumentDescription(
        raw["name"], raw["kind"], raw["type"], raw["required"], tuple(values), raw.get("minimum"), raw.get("maximum")
    )


def _untold_argument(name: str, prop: Any) -> ArgumentDescription:
    """An argument known only from its JSON Schema: its type, and no string is known to be a span."""
    prop = prop if isinstance(prop, dict) else {}
    kind_of_type = {"boolean": "boolean", "number": "number", "integer": "number"}
    json_type = prop.get("type") if prop.get("type") in TYPES else "string"
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return ArgumentDescription(name, "enum", json_type, values=tuple(str(v) for v in prop["enum"]))
    return ArgumentDescription(name, kind_of_type.get(json_type, "free text"), json_type)


@dataclass
class TaskDescription:
    functions: dict[str, FunctionDescription]
    task: str = ""
    source: str = ""

    @classmethod
    def from_json(cls, raw: Any, where: str) -> TaskDescription:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise DataError(f'{where}: expected an object with "format": "{FORMAT}"')
        unknown = sorted(set(raw) - {"format", "task", "functions"})
        if unknown:
            raise DataError(f"{where}: unknown field(s) {unknown}")
        if not isinstance(raw.get("task"), str) or not raw["task"]:
            raise DataError(f"{where}: 'task' must name the task")
        if not isinstance(raw.get("functions"), list) or not raw["functions"]:
            raise DataError(f"{where}: 'functions' must be a non-empty list")
        functions: dict[str, FunctionDescription] = {}
        for i, f in enumerate(raw["functions"]):
            at = f"{where}: functions[{i}]"
            if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
                raise DataError(f"{at} needs a 'name'")
            if f["name"] in functions:
                raise DataError(f"{at}: function {f['name']!r} is described twice")
            if not isinstance(f.get("parameters"), dict) or not isinstance(f.get("arguments"), list):
                raise DataError(f"{at} needs 'parameters' (a JSON Schema) and 'arguments' (a list)")
            try:
                Draft7Validator.check_schema(f["parameters"])
            except SchemaError as e:
                raise DataError(f"{at}: 'parameters' is not a draft-07 JSON Schema: {e.message}") from None
            arguments = [_argument(a, f"{at}.arguments[{j}]") for j, a in enumerate(f["arguments"])]
            functions[f["name"]] = FunctionDescription(
                f["name"], f["parameters"], {a.name: a for a in arguments}, f.get("description", "") or ""
            )
        return cls(functions, raw["task"], where)

    @classmethod
    def load(cls, path: str | Path) -> TaskDescription:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"task description not found: {path}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"task description {path} is not valid JSON: {e.msg}") from e
        description = cls.from_json(raw, f"task description {path}")
        description.source = str(path)
        return description

    @classmethod
    def from_tools(cls, row_tools: list[Any], data_path: str | Path) -> TaskDescription:
        """Without a description (a run outside the pipeline): the functions of the sft rows' `tools`, checked
        by their schemas; no argument is known to be a span, so none is checked as one."""
        functions: dict[str, FunctionDescription] = {}
        for i, tools in enumerate(row_tools):
            if tools is None:
                continue
            where = f"sft dataset {data_path} row {i + 1}"
            if not isinstance(tools, list):
                raise DataError(f"{where}: 'tools' must be a list of OpenAI tool definitions")
            for j, tool in enumerate(tools):
                function = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise DataError(f"{where}: tool {j} needs function.name")
                parameters = function.get("parameters", {"type": "object"})
                if not isinstance(parameters, dict):
                    raise DataError(
                        f"{where}: function {function['name']!r} has parameters that are not a JSON Schema object"
                    )
                properties = parameters.get("properties", {}) if isinstance(parameters.get("properties"), dict) else {}
                arguments = {key: _untold_argument(key, p) for key, p in properties.items()}
                functions[function["name"]] = FunctionDescription(function["name"], parameters, arguments)
        if not functions:
            raise DataError(
                f"sft dataset {data_path} has no 'tools' to take the task's functions from; "
                "give config field 'task' (the task description)"
            )
        return cls(functions, "", f"tools of {data_path}")
