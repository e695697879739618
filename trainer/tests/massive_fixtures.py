"""Small datasets in the prototype stage's formats, built from MASSIVE's gold annotations.

`wake me up at [time : five am] [date : this week]` gives alarm_set(time="five am", date="this week").
When a slot type repeats in one utterance the first value is kept (a JSON arguments object has unique keys).
Also used by scripts/bench-trainer.py to train and score on the full splits.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

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
    return {"id": f"call_{index}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


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
        "preferred_output": [{"role": "assistant", "tool_calls": [_tool_call(record["intent"], gold_arguments(record))]}],
        "non_preferred_output": [{"role": "assistant", "tool_calls": [_tool_call(wrong_intent, gold_arguments(record))]}],
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
