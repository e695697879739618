"""The task's verifiable reward for a student's generated call, computed from the task alone (no gold).

Two parts, each in [0, 1]:
- `verifier`: 1 when the text parses as a compact call, the function is one of the task's, its JSON Schema
  accepts the arguments and every span argument occurs in the input as whole words; else 0.
- `agreement` with the teacher's accepted call: 0 for another function; for the same function
  `intent_credit + (1 - intent_credit) * F1` over the (key, value) pairs, so an exact match scores 1.

The task describes itself in a JSON file (`TaskRewardDescription`, written by the TypeScript task spec's
`rewardDescription()`): `{"version": 1, "functions": [OpenAI tool definitions], "span_arguments": {name: [keys]}}`.
Without one, the functions are the union of the `tools` of the sft rows and no argument is a span.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DataError
from .text_format import CallParseError, normalize_slot_value, parse_compact_call

_WORD_CHAR = re.compile(r"[A-Za-z0-9]")


def _is_word_char(ch: str) -> bool:
    return bool(ch) and _WORD_CHAR.fullmatch(ch) is not None


def is_span(text: str, value: str) -> bool:
    """`value` occurs in `text` at word boundaries (tasks/massive spanOffsets)."""
    if not value:
        return False
    start = text.find(value)
    while start >= 0:
        before = text[start - 1] if start > 0 else ""
        after = text[start + len(value) : start + len(value) + 1]
        if not _is_word_char(before) and not _is_word_char(after):
            return True
        start = text.find(value, start + 1)
    return False


def schema_errors(value: Any, schema: dict[str, Any], where: str = "arguments") -> list[str]:
    """The JSON Schema subset zod emits for tool parameters: type, properties, required, additionalProperties,
    items, minItems, maxItems, enum, const, anyOf, minLength, maxLength. Unknown keywords are ignored."""
    errors: list[str] = []
    if "anyOf" in schema:
        if all(schema_errors(value, option, where) for option in schema["anyOf"]):
            errors.append(f"{where} matches none of the allowed forms")
        return errors
    expected = schema.get("type")
    checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "null": lambda v: v is None}
    types = expected if isinstance(expected, list) else [expected] if expected else []
    if types and not any(checks.get(t, lambda v: True)(value) for t in types):
        return [f"{where} must be {' or '.join(types)}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where} must be {schema['const']!r}")
    if isinstance(value, str) and (len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value))):
        errors.append(f"{where} has a length outside the allowed range")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where} has {len(value)} items, outside the allowed range")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f'{where} lacks required "{key}"' for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f'"{key}"')
            elif schema.get("additionalProperties") is False:
                errors.append(f'unknown argument "{key}"')
    return errors


def _tool_functions(tools: Any, where: str) -> dict[str, dict[str, Any]]:
    """{name: parameters JSON Schema} from a list of OpenAI tool definitions."""
    if not isinstance(tools, list):
        raise DataError(f"{where}: 'functions'/'tools' must be a list of OpenAI tool definitions")
    functions: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise DataError(f"{where}: tool {i} needs function.name")
        parameters = function.get("parameters", {"type": "object"})
        if not isinstance(parameters, dict):
            raise DataError(f"{where}: function {function['name']!r} has parameters that are not a JSON Schema object")
        functions[function["name"]] = parameters
    return functions


@dataclass
class TaskRewardDescription:
    functions: dict[str, dict[str, Any]]  # name -> parameters JSON Schema
    span_arguments: dict[str, set[str]] = field(default_factory=dict)  # name -> keys that must be input spans
    source: str = ""

    @classmethod
    def load(cls, path: str | Path) -> TaskRewardDescription:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"task reward description not found: {path}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"task reward description {path} is not valid JSON: {e.msg}") from e
        where = f"task reward description {path}"
        if not isinstance(raw, dict) or raw.get("version") != 1:
            raise DataError(f"{where}: expected an object with \"version\": 1")
        functions = _tool_functions(raw.get("functions"), where)
        if not functions:
            raise DataError(f"{where}: 'functions' is empty")
        spans = raw.get("span_arguments", {})
        if not isinstance(spans, dict) or not all(isinstance(v, list) for v in spans.values()):
            raise DataError(f"{where}: 'span_arguments' must map function names to lists of argument names")
        unknown = sorted(set(spans) - set(functions))
        if unknown:
            raise DataError(f"{where}: 'span_arguments' names functions that are not in 'functions': {unknown}")
        return cls(functions, {name: set(keys) for name, keys in spans.items()}, str(path))

    @classmethod
    def from_rows(cls, row_tools: list[Any], data_path: str | Path) -> TaskRewardDescription:
        functions: dict[str, dict[str, Any]] = {}
        for i, tools in enumerate(row_tools):
            if tools is not None:
                functions.update(_tool_functions(tools, f"sft dataset {data_path} row {i + 1}"))
        if not functions:
            raise DataError(f"sft dataset {data_path} has no 'tools' to take the task's functions from; "
                            "give config field 'task_reward' (a task reward description)")
        return cls(functions, {}, f"tools of {data_path}")


@dataclass(frozen=True)
class CallReview:
    parsed: bool
    schema_valid: bool  # parsed, a known function, arguments accepted by its schema
    verified: bool  # schema-valid and every span argument is a span of the input
    agreement: float
    exact: bool
    reason: str = ""


class TaskReward:
    """Scores generated calls against the task description and the teacher's accepted call."""

    def __init__(self, description: TaskRewardDescription, intent_credit: float = 0.5):
        self.description = description
        self.intent_credit = intent_credit

    def review(self, completion: str, utterance: str, teacher_call: str) -> CallReview:
        try:
            name, arguments = parse_compact_call(completion)
        except CallParseError as e:
            return CallReview(False, False, False, 0.0, False, f"parse: {e}")
        agreement, exact = self.agreement(name, arguments, teacher_call)
        schema = self.description.functions.get(name)
        if schema is None:
            return CallReview(True, False, False, agreement, exact, f'unknown function "{name}"')
        grouped: dict[str, list[str]] = {}
        for key, value in arguments:
            grouped.setdefault(key, []).append(value)
        # A repeated key is a list in the tool call's arguments object (tasks/call-format.ts callArgumentsObject).
        errors = schema_errors({k: v[0] if len(v) == 1 else v for k, v in grouped.items()}, schema)
        if errors:
            return CallReview(True, False, False, agreement, exact, errors[0])
        spans = self.description.span_arguments.get(name, set())
        for key, value in arguments:
            if key in spans and not is_span(utterance, normalize_slot_value(value)):
                return CallReview(True, True, False, agreement, exact, f'"{key}" is not a span of the input')
        return CallReview(True, True, True, agreement, exact)

    def agreement(self, name: str, arguments: list[tuple[str, str]], teacher_call: str) -> tuple[float, bool]:
        teacher_name, teacher_arguments = parse_compact_call(teacher_call)
        if name != teacher_name:
            return 0.0, False
        ours = Counter((k, normalize_slot_value(v)) for k, v in arguments)
        theirs = Counter((k, normalize_slot_value(v)) for k, v in teacher_arguments)
        if ours == theirs:
            return 1.0, True
        overlap = sum((ours & theirs).values())
        f1 = 2 * overlap / (sum(ours.values()) + sum(theirs.values()))
        return self.intent_credit + (1 - self.intent_credit) * f1, False
