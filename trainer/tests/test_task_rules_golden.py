"""The golden task-rule cases (test/golden/task-rules/) against the trainer's rules: the call parser, the
JSON Schema check (jsonschema), the span rule, the grpo agreement and the task description it reads.
test/task-rules-golden.test.ts runs the same cases against the TypeScript rules; both must agree with the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supertiny_trainer.core.errors import DataError
from supertiny_trainer.student.task_description import TaskDescription
from supertiny_trainer.student.task_reward import CallReview, TaskReward
from supertiny_trainer.student.text_format import CallParseError, parse_compact_call

GOLDEN = Path(__file__).resolve().parents[2] / "test" / "golden" / "task-rules"
FILES = sorted(GOLDEN.glob("*.json"))


def _cases():
    for path in FILES:
        golden = json.loads(path.read_text(encoding="utf-8"))
        for case in golden["cases"]:
            yield pytest.param(golden["description"], case, id=f"{path.stem}: {case['name']}")


def _verdict(review: CallReview) -> str:
    if not review.parsed:
        return "parse error"
    if review.reason.startswith("unknown function"):
        return "unknown function"
    if not review.schema_valid:
        return "schema invalid"
    return "valid" if review.verified else "not a span"


def test_there_are_golden_cases():
    assert FILES, f"no golden task-rule files in {GOLDEN}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_golden_task_description_loads(path):
    description = TaskDescription.from_json(json.loads(path.read_text(encoding="utf-8"))["description"], str(path))
    assert description.functions


@pytest.mark.parametrize(("description", "case"), list(_cases()))
def test_golden_case(description, case):
    reward = TaskReward(TaskDescription.from_json(description, "golden"), intent_credit=0.5)
    if "parse" in case:
        name, arguments = parse_compact_call(case["output"])
        assert {"name": name, "args": [list(pair) for pair in arguments]} == case["parse"]
    if case["verdict"] == "parse error":
        with pytest.raises(CallParseError):
            parse_compact_call(case["output"])
    teacher = case.get("teacher", "no_teacher()")
    review = reward.review(case["output"], case["input"], teacher)
    assert _verdict(review) == case["verdict"], review.reason
    if "teacher" in case:
        assert review.agreement == pytest.approx(case["agreement"])
        assert review.exact == case["exact"]


REFUSED = json.loads((GOLDEN.parent / "task-descriptions-refused.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c["name"])
def test_a_bad_task_description_is_refused_as_data(case):
    with pytest.raises(DataError):
        TaskDescription.from_json(case["description"], "golden")
