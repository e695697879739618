"""Small datasets in the prototype stage's formats, built from MASSIVE's gold annotations.

`wake me up at [time : five am] [date : this week]` gives alarm_set(time="five am", date="this week").
When a slot type repeats in one utterance the first value is kept (a JSON arguments object has unique keys).
Also used by scripts/bench-trainer.py to train and score on the full splits.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

SLOT = re.compile(r"\[(\S+?) : (.+?)\]")
MASSIVE_JSONL = Path(
    os.environ.get(
        "SUPERTINY_MASSIVE_JSONL",
        Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "massive-en-US" / "en-US.jsonl",
    )
).resolve()


def massive_records(partition: str, limit: int | None = None, intents: Iterable[str] | None = None) -> list[dict]:
    wanted = set(intents) if intents is not None else None
    records = []
    with MASSIVE_JSONL.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["partition"] != partition or (wanted is not None and record["intent"] not in wanted):
                continue
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    return records


def gold_arguments(record: dict) -> dict[str, str]:
    arguments: dict[str, str] = {}
    for slot, value in SLOT.findall(record["annot_utt"]):
        arguments.setdefault(slot, value)
    return arguments


def gold_call(record: dict) -> str:
    """The compact call, rendered independently of the package (the test oracle for the format)."""
    args = ", ".join(f'{k}="{v}"' for k, v in gold_arguments(record).items())
    return f"{record['intent']}({args})"


def _tool_call(name: str, arguments: dict[str, Any], index: int = 0) -> dict:
    return {
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


TOOLS = [{"type": "function", "function": {"name": "route", "parameters": {"type": "object"}}}]


def sft_line(record: dict, with_routing_step: bool = False) -> dict:
    messages: list[dict] = [
        {"role": "system", "content": "Call exactly one function for the user's request."},
        {"role": "user", "content": record["utt"]},
    ]
    if with_routing_step:  # an earlier routing step that the student must ignore
        messages.append({"role": "assistant", "tool_calls": [_tool_call("route", {"scenario": record["scenario"]})]})
        messages.append({"role": "tool", "tool_call_id": "call_0", "content": "ok"})
    messages.append({"role": "assistant", "tool_calls": [_tool_call(record["intent"], gold_arguments(record), 1)]})
    return {"messages": messages, "tools": TOOLS}


def preference_line(record: dict, wrong_intent: str) -> dict:
    prompt = [
        {"role": "system", "content": "Call exactly one function for the user's request."},
        {"role": "user", "content": record["utt"]},
    ]
    return {
        "input": {"messages": prompt, "tools": TOOLS},
        "preferred_output": [
            {"role": "assistant", "tool_calls": [_tool_call(record["intent"], gold_arguments(record))]}
        ],
        "non_preferred_output": [
            {"role": "assistant", "tool_calls": [_tool_call(wrong_intent, gold_arguments(record))]}
        ],
    }


def utterance_line(record: dict) -> dict:
    return {"id": record["id"], "utterance": record["utt"]}


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> Iterator[dict]:
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


# ---- encoder student: rows as the pipeline writes them (tools of the scenario, repeated slots as lists) ----


def gold_pairs(record: dict) -> list[tuple[str, str]]:
    """Every (slot, value) of the annotation, in text order, repeats included (what the metrics score)."""
    return [(slot, value) for slot, value in SLOT.findall(record["annot_utt"])]


def arguments_object(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A repeated slot becomes a list of its values, as tasks/call-format.ts callArgumentsObject does."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


def massive_schema(records: Iterable[dict]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(slots per intent, intents per scenario) as seen in `records` (the task derives them from train)."""
    slots: dict[str, set[str]] = {}
    scenarios: dict[str, set[str]] = {}
    for record in records:
        slots.setdefault(record["intent"], set()).update(slot for slot, _ in gold_pairs(record))
        scenarios.setdefault(record["scenario"], set()).add(record["intent"])
    return {k: sorted(v) for k, v in slots.items()}, {k: sorted(v) for k, v in scenarios.items()}


def tool_definitions(intents: Iterable[str], slots: dict[str, list[str]]) -> list[dict]:
    return [
        {
            "type": "function",
            "function": {
                "name": intent,
                "description": intent.replace("_", " "),
                "parameters": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {slot: {"type": "string"} for slot in slots[intent]},
                },
            },
        }
        for intent in intents
    ]


def encoder_sft_line(
    record: dict, slots: dict[str, list[str]], scenarios: dict[str, list[str]], votes: list[dict] | None = None
) -> dict:
    """A pipeline sft row: [system, user, assistant call], the scenario's tools, and the teacher's votes."""
    arguments = arguments_object(gold_pairs(record))
    row = {
        "messages": [
            {"role": "system", "content": "Call exactly one function for the user's request."},
            {"role": "user", "content": record["utt"]},
            {"role": "assistant", "content": None, "tool_calls": [_tool_call(record["intent"], arguments)]},
        ],
        "tools": tool_definitions(scenarios[record["scenario"]], slots),
    }
    if votes is not None:
        row["votes"] = votes
    return row


def call_pairs_from_compact(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Parses a compact call `name(k="v", ...)` (values are JSON strings) into its name and pairs."""
    name, _, rest = text.partition("(")
    pairs = [
        (key, json.loads(value)) for key, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*")', rest)
    ]
    return name, pairs


def call_metrics(predictions: list[str], records: list[dict]) -> dict:
    """Intent accuracy, slot F1 over (slot, normalized value) multisets, exact match: as tasks/metrics.ts."""
    from collections import Counter

    tp = fp = fn = intents = exact = 0
    for prediction, record in zip(predictions, records, strict=True):
        name, pairs = call_pairs_from_compact(prediction)
        norm = lambda ps: Counter((k, " ".join(v.split())) for k, v in ps)  # noqa: E731
        predicted, gold = norm(pairs), norm(gold_pairs(record))
        hits = sum((predicted & gold).values())
        tp, fp, fn = tp + hits, fp + sum(predicted.values()) - hits, fn + sum(gold.values()) - hits
        intents += name == record["intent"]
        exact += name == record["intent"] and predicted == gold
    n = len(records)
    return {
        "examples": n,
        "intent_accuracy": round(intents / n, 4),
        "slot_f1": round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else 1.0,
        "exact_match": round(exact / n, 4),
    }
