"""The task's verifiable reward for a student's generated call, computed from the task alone (no gold).

Two parts, each in [0, 1]:
- `verifier`: 1 when the text parses as a compact call, the function is one of the task's, its JSON Schema
  accepts the arguments and every span argument occurs in the input as whole words; else 0.
- `agreement` with the teacher's accepted call: 0 for another function; for the same function
  `intent_credit + (1 - intent_credit) * F1` over the (key, value) pairs, so an exact match scores 1.

The task's functions, schemas and span arguments come from the task description the TypeScript side writes
(`TaskDescription`, student/task_description.py); without one, from the `tools` of the sft rows, and then no
argument is a span.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .task_description import TaskDescription, schema_errors, typed_arguments
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

    def __init__(self, description: TaskDescription, intent_credit: float = 0.5):
        self.description = description
        self.intent_credit = intent_credit

    def review(self, completion: str, utterance: str, teacher_call: str) -> CallReview:
        try:
            name, arguments = parse_compact_call(completion)
        except CallParseError as e:
            return CallReview(False, False, False, 0.0, False, f"parse: {e}")
        agreement, exact = self.agreement(name, arguments, teacher_call)
        function = self.description.functions.get(name)
        if function is None:
            return CallReview(True, False, False, agreement, exact, f'unknown function "{name}"')
        errors = schema_errors(function, typed_arguments(function, arguments))
        if errors:
            return CallReview(True, False, False, agreement, exact, errors[0])
        spans = function.spans()
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
