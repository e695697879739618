"""sft.jsonl rows as encoder training examples: intent and BIO tag targets, soft from the teacher's votes.

Each row: `messages` (utterance = last user message, label = last assistant tool call), `tools` (the
functions offered; their JSON-schema `properties` are the allowed argument names) and optionally `votes`
(`[{"name", "arguments", "share"}]`, the teacher's vote shares over its valid samples). The task schema is
the union of the rows' tools, or a separate tools file. Slot values are located in the utterance by a
case-insensitive character match (whole words first) and become B-/I- tags of the tokens they overlap.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DataError
from .datasets import LoadReport, RejectedSample, _last_user_utterance, arguments_object, read_jsonl
from .encoder import EncoderLabels


@dataclass(frozen=True)
class TargetCall:
    name: str
    arguments: tuple[tuple[str, str], ...]  # (slot, value); a repeated slot appears once per value
    weight: float


@dataclass
class EncoderExample:
    utterance: str
    targets: list[TargetCall]  # weights sum to 1


@dataclass
class EncoderDataReport(LoadReport):
    votes_used: int = 0
    votes_dropped: Counter = field(default_factory=Counter)

    def as_metrics(self, prefix: str) -> dict[str, Any]:
        return {**super().as_metrics(prefix), "votes_used": self.votes_used,
                "votes_dropped": sum(self.votes_dropped.values()), "votes_dropped_reasons": dict(self.votes_dropped)}


def _argument_pairs(arguments: dict[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key, value in arguments.items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                raise DataError(f"{where}: argument '{key}' must be a string or a list of strings, got {item!r}")
            pairs.append((key, item))
    return tuple(pairs)


def _label_call(messages: list[Any], where: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls")
        if not calls:
            raise RejectedSample("the last assistant message has no tool call")
        function = calls[-1].get("function") if isinstance(calls, list) and isinstance(calls[-1], dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise DataError(f"{where}: a tool call needs function.name")
        arguments = arguments_object(function.get("arguments", "{}"), f"{where}: function.arguments")
        return function["name"], _argument_pairs(arguments, f"{where}: function.arguments")
    raise RejectedSample("no assistant message")


def tool_functions(tools: Any, where: str) -> dict[str, set[str]]:
    """OpenAI tool definitions -> {function name: argument names (JSON-schema properties)}."""
    if not isinstance(tools, list):
        raise DataError(f"{where}: 'tools' must be a list of tool definitions")
    functions: dict[str, set[str]] = {}
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise DataError(f"{where}: tools[{i}] needs function.name")
        parameters = function.get("parameters") or {}
        properties = parameters.get("properties", {}) if isinstance(parameters, dict) else None
        if not isinstance(properties, dict):
            raise DataError(f"{where}: tools[{i}].function.parameters.properties must be an object")
        functions.setdefault(function["name"], set()).update(properties)
    return functions


def load_tools_file(path: str | Path) -> dict[str, set[str]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"tools file not found: {path}")
    try:
        tools = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"tools file {path} is not valid JSON: {e}") from e
    return tool_functions(tools, f"tools file {path}")


@dataclass
class RawRow:
    where: str
    utterance: str
    label: tuple[str, tuple[tuple[str, str], ...]]
    votes: list[tuple[str, tuple[tuple[str, str], ...], float]]


def read_encoder_rows(path: str | Path, report: EncoderDataReport) -> tuple[list[RawRow], dict[str, set[str]]]:
    """Rows plus the schema from their `tools` (union over rows)."""
    rows: list[RawRow] = []
    schema: dict[str, set[str]] = {}
    for number, record in read_jsonl(path, "sft dataset"):
        where = f"sft dataset {path} line {number}"
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: 'messages' must be a non-empty list")
        utterance = _last_user_utterance(messages, where)
        if "tools" in record:
            for name, slots in tool_functions(record["tools"], where).items():
                schema.setdefault(name, set()).update(slots)
        try:
            label = _label_call(messages, where)
        except RejectedSample as e:
            report.rejected[str(e)] += 1
            continue
        votes = []
        raw_votes = record.get("votes", [])
        if not isinstance(raw_votes, list):
            raise DataError(f"{where}: 'votes' must be a list")
        for i, vote in enumerate(raw_votes):
            at = f"{where}: votes[{i}]"
            if not isinstance(vote, dict) or not isinstance(vote.get("name"), str):
                raise DataError(f"{at} needs a 'name'")
            share = vote.get("share")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                raise DataError(f"{at}: 'share' must be a number in [0, 1], got {share!r}")
            try:
                arguments = arguments_object(vote.get("arguments", "{}"), f"{at}.arguments")
            except RejectedSample as e:
                raise DataError(f"{at}: {e}") from None
            votes.append((vote["name"], _argument_pairs(arguments, f"{at}.arguments"), float(share)))
        rows.append(RawRow(where, utterance, label, votes))
        report.accepted += 1
    if not rows:
        reasons = "; ".join(f"{reason}: {count}" for reason, count in report.rejected.items()) or "the file is empty"
        raise DataError(f"sft dataset {path} has no accepted samples ({reasons})")
    return rows, schema


def _off_schema(call: tuple[str, tuple[tuple[str, str], ...]], schema: dict[str, set[str]]) -> str | None:
    name, pairs = call
    if name not in schema:
        return f"function '{name}' is not in the tools"
    unknown = sorted({key for key, _ in pairs} - schema[name])
    return f"argument(s) {unknown} are not parameters of '{name}'" if unknown else None


def encoder_examples(rows: list[RawRow], schema: dict[str, set[str]], vote_weight: float,
                     report: EncoderDataReport) -> list[EncoderExample]:
    """Targets per row: `vote_weight` x the vote shares + (1 - vote_weight) x the label (the label alone
    when a row has no usable votes). A label outside the schema is an error; such a vote is dropped."""
    examples = []
    for row in rows:
        problem = _off_schema(row.label, schema)
        if problem:
            raise DataError(f"{row.where}: the tool call's {problem} (offered tools or the tools file)")
        votes = []
        for name, pairs, share in row.votes:
            problem = _off_schema((name, pairs), schema)
            if problem:
                report.votes_dropped["off schema"] += 1
            elif share > 0:
                votes.append((name, pairs, share))
        total = sum(share for _, _, share in votes)
        weight = vote_weight if votes and total > 0 else 0.0
        report.votes_used += len(votes) if weight > 0 else 0
        targets = [TargetCall(name, pairs, weight * share / total) for name, pairs, share in votes] if weight > 0 else []
        if weight < 1:
            targets.append(TargetCall(row.label[0], row.label[1], 1 - weight))
        examples.append(EncoderExample(row.utterance, targets))
    return examples


def _casefold_same_length(text: str) -> str:
    # Character-wise lower case that keeps offsets valid (a few characters lower-case to two).
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _is_word(c: str) -> bool:
    return c.isalnum()


def locate_values(text: str, pairs: tuple[tuple[str, str], ...]) -> tuple[list[tuple[str, int, int]], int]:
    """Character spans (slot, start, end), in text order, of the values in `text`: case-insensitive, whole-word
    matches first, never overlapping another value's span. Longer values are placed first (a short value
    like "ten" must not take the place of "ten am"). Returns the spans and how many values were not found."""
    folded = _casefold_same_length(text)
    spans: list[tuple[str, int, int]] = []
    missing = 0
    for key, value in sorted(pairs, key=lambda pair: -len(pair[1])):
        needle = _casefold_same_length(" ".join(value.split()))
        if not needle:
            missing += 1
            continue
        starts = []
        at = folded.find(needle)
        while at >= 0:
            starts.append(at)
            at = folded.find(needle, at + 1)
        free = [s for s in starts if all(s + len(needle) <= a or s >= b for _, a, b in spans)]
        whole = [s for s in free if (s == 0 or not _is_word(folded[s - 1]))
                 and (s + len(needle) == len(folded) or not _is_word(folded[s + len(needle)]))]
        chosen = (whole or free or [None])[0]
        if chosen is None:
            missing += 1
            continue
        spans.append((key, chosen, chosen + len(needle)))
    return sorted(spans, key=lambda span: span[1]), missing


def bio_tag_ids(spans: list[tuple[str, int, int]], offsets: list[tuple[int, int]], word: list[bool],
                tag_index: dict[str, int]) -> tuple[list[int], int]:
    """Tag ids per token (-100 on special tokens); a token overlapping a span gets B- (first) or I-.
    Also returns how many spans lost every token (e.g. to truncation)."""
    tags = [0 if is_word else -100 for is_word in word]
    lost = 0
    for key, start, end in sorted(spans, key=lambda s: s[1]):
        inside = [i for i, ((s, e), is_word) in enumerate(zip(offsets, word)) if is_word and s < end and e > start
                  and tags[i] == 0]
        if not inside:
            lost += 1
            continue
        tags[inside[0]] = tag_index[f"B-{key}"]
        for i in inside[1:]:
            tags[i] = tag_index[f"I-{key}"]
    return tags, lost


@dataclass
class EncodedExample:
    input_ids: list[int]
    token_type_ids: list[int]
    intent_targets: list[tuple[int, float]]  # (intent id, weight)
    tag_targets: list[tuple[list[int], float]]  # (tag ids per token, -100 on special tokens; weight)


def encode_examples(examples: list[EncoderExample], tokenizer: Any, labels: EncoderLabels,
                    counts: Counter) -> list[EncodedExample]:
    intent_index = {name: i for i, name in enumerate(labels.intents)}
    tag_index = {tag: i for i, tag in enumerate(labels.tags)}
    encodings = tokenizer.encode_batch([e.utterance for e in examples])
    encoded = []
    for example, encoding in zip(examples, encodings):
        word = [not special for special in encoding.special_tokens_mask]
        tag_targets = []
        for target in example.targets:
            spans, missing = locate_values(example.utterance, target.arguments)
            tags, lost = bio_tag_ids(spans, encoding.offsets, word, tag_index)
            counts["slot_values_not_found"] += missing
            counts["slot_values_truncated"] += lost
            tag_targets.append((tags, target.weight))
        encoded.append(EncodedExample(
            list(encoding.ids), list(encoding.type_ids),
            [(intent_index[t.name], t.weight) for t in example.targets], tag_targets,
        ))
    return encoded


def repeated_slots(examples: list[EncoderExample]) -> dict[str, list[str]]:
    """Per function, the slots that some target call names more than once: only those may repeat in an
    answer. The teacher's calls passed the task's schema, so this never allows a repeat the schema forbids."""
    repeated: dict[str, set[str]] = {}
    for example in examples:
        for target in example.targets:
            keys = [key for key, _ in target.arguments]
            for key in {k for k in keys if keys.count(k) > 1}:
                repeated.setdefault(target.name, set()).add(key)
    return {name: sorted(slots) for name, slots in sorted(repeated.items())}
