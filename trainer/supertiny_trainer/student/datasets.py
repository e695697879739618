"""Readers for the prototype stage's datasets; each bad line is reported by its 1-based line number."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DataError
from .text_format import compact_call


def read_jsonl(path: str | Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object); an empty, non-JSON or non-object line is a DataError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    with path.open("r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                raise DataError(f"{what} {path} line {number} is empty")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{what} {path} line {number} is not valid JSON: {e.msg}") from e
            if not isinstance(record, dict):
                raise DataError(f"{what} {path} line {number} must be a JSON object, got {type(record).__name__}")
            yield number, record


class RejectedSample(Exception):
    """A well-formed line the student cannot learn from (e.g. the assistant answered without a tool call)."""


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def arguments_object(raw: Any, where: str) -> dict[str, Any]:
    """A tool call's arguments (a JSON string or an object) as an object; a sample whose arguments are not
    a JSON object is rejected, a field of the wrong type is a data error naming `where`."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise DataError(f"{where} must be a JSON string or object")
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        raise RejectedSample("the tool call's arguments are not valid JSON") from None
    if not isinstance(value, dict):
        raise RejectedSample("the tool call's arguments are not a JSON object")
    return value


def _last_user_utterance(messages: list[Any], where: str) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text_of(message.get("content"))
            if text is None or not text.strip():
                raise DataError(f"{where}: the user message has no text content")
            return text
    raise DataError(f"{where}: no user message")


def last_tool_call(messages: list[Any], where: str) -> tuple[str, dict[str, Any]]:
    """Name and arguments of the last assistant message's last tool call; earlier routing steps are ignored.
    No assistant message, or one without a call, is a RejectedSample; a malformed call is a DataError."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls")
        if not calls:
            raise RejectedSample("the last assistant message has no tool call")
        if not isinstance(calls, list):
            raise DataError(f"{where}: tool_calls must be a list")
        call = calls[-1]
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise DataError(f"{where}: a tool call needs function.name")
        return function["name"], arguments_object(function.get("arguments", "{}"), f"{where}: function.arguments")
    raise RejectedSample("no assistant message")


def _last_tool_call(messages: list[Any], where: str) -> str:
    """The compact call of the last assistant tool call."""
    return compact_call(*last_tool_call(messages, where))


@dataclass
class LoadReport:
    """Counts what was accepted and why lines were rejected; goes into the done event's metrics."""

    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)

    def as_metrics(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}_accepted": self.accepted,
            f"{prefix}_rejected": sum(self.rejected.values()),
            f"{prefix}_rejected_reasons": dict(self.rejected),
        }


@dataclass(frozen=True)
class SftSample:
    utterance: str
    call: str


@dataclass(frozen=True)
class PreferencePair:
    utterance: str
    chosen_call: str
    rejected_call: str


def _require_nonempty(items: list, report: LoadReport, path: str | Path, what: str) -> None:
    if not items:
        reasons = "; ".join(f"{reason}: {count}" for reason, count in report.rejected.items()) or "the file is empty"
        raise DataError(f"{what} {path} has no accepted samples ({reasons})")


def load_sft_samples(path: str | Path) -> tuple[list[SftSample], LoadReport]:
    """OpenAI chat fine-tuning lines with tools; the target is the last assistant tool call."""
    samples: list[SftSample] = []
    report = LoadReport()
    for number, record in read_jsonl(path, "sft dataset"):
        where = f"sft dataset {path} line {number}"
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: 'messages' must be a non-empty list")
        utterance = _last_user_utterance(messages, where)
        try:
            call = _last_tool_call(messages, where)
        except RejectedSample as e:
            report.rejected[str(e)] += 1
            continue
        samples.append(SftSample(utterance, call))
        report.accepted += 1
    _require_nonempty(samples, report, path, "sft dataset")
    return samples, report


def load_sft_tools(path: str | Path) -> list[Any]:
    """The `tools` field of every sft line (None where absent): the functions offered to the teacher."""
    return [record.get("tools") for _, record in read_jsonl(path, "sft dataset")]


def _output_call(output: Any, where: str) -> str:
    if not isinstance(output, list) or not output:
        raise DataError(f"{where} must be a non-empty list of messages")
    return _last_tool_call(output, where)


def load_preference_pairs(path: str | Path) -> tuple[list[PreferencePair], LoadReport]:
    """OpenAI preference fine-tuning lines: input.messages, preferred_output, non_preferred_output."""
    pairs: list[PreferencePair] = []
    report = LoadReport()
    for number, record in read_jsonl(path, "preference dataset"):
        where = f"preference dataset {path} line {number}"
        prompt = record.get("input")
        messages = prompt.get("messages") if isinstance(prompt, dict) else None
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: 'input.messages' must be a non-empty list")
        utterance = _last_user_utterance(messages, where)
        try:
            chosen = _output_call(record.get("preferred_output"), f"{where}: preferred_output")
            rejected = _output_call(record.get("non_preferred_output"), f"{where}: non_preferred_output")
        except RejectedSample as e:
            report.rejected[str(e)] += 1
            continue
        if chosen == rejected:
            report.rejected["preferred and non-preferred calls are identical"] += 1
            continue
        pairs.append(PreferencePair(utterance, chosen, rejected))
        report.accepted += 1
    _require_nonempty(pairs, report, path, "preference dataset")
    return pairs, report


@dataclass(frozen=True)
class Utterance:
    id: Any
    utterance: str


def load_utterances(path: str | Path) -> list[Utterance]:
    """Lines of {id, utterance} for `predict`."""
    items: list[Utterance] = []
    seen: set[str] = set()
    for number, record in read_jsonl(path, "utterance file"):
        where = f"utterance file {path} line {number}"
        if "id" not in record or not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
            raise DataError(f"{where}: 'id' must be a string or an integer")
        if not isinstance(record.get("utterance"), str):
            raise DataError(f"{where}: 'utterance' must be a string")
        key = json.dumps(record["id"])
        if key in seen:
            raise DataError(f"{where}: duplicate id {record['id']!r}")
        seen.add(key)
        items.append(Utterance(record["id"], record["utterance"]))
    if not items:
        raise DataError(f"utterance file {path} is empty")
    return items


def load_tokenizer_texts(path: str | Path) -> tuple[list[str], list[str], LoadReport]:
    """Texts to train a tokenizer on: {"text"} lines, or sft lines (utterance and target call both count).

    Also returns the target calls on their own (empty for a plain text corpus), from which the tokenizer
    takes its call tokens.
    """
    texts: list[str] = []
    calls: list[str] = []
    report = LoadReport()
    for number, record in read_jsonl(path, "tokenizer corpus"):
        where = f"tokenizer corpus {path} line {number}"
        if isinstance(record.get("text"), str):
            texts.append(record["text"])
        elif isinstance(record.get("messages"), list):
            texts.append(_last_user_utterance(record["messages"], where))
            try:
                calls.append(_last_tool_call(record["messages"], where))
            except RejectedSample as e:
                report.rejected[str(e)] += 1
                continue
            texts.append(calls[-1])
        elif isinstance(record.get("utterance"), str):
            texts.append(record["utterance"])
        else:
            raise DataError(f"{where}: expected a 'text', 'utterance' or 'messages' field")
        report.accepted += 1
    if not any(t.strip() for t in texts):
        raise DataError(f"tokenizer corpus {path} has no text to train on")
    return texts, calls, report
