"""sft.jsonl rows as encoder training examples: intent and BIO tag targets, soft from the teacher's votes.

Each row: `messages` (utterance = last user message, label = last assistant tool call), `tools` (the
functions offered; their JSON-schema `properties` are the allowed argument names) and optionally `votes`
(`[{"name", "arguments", "share"}]`, the teacher's vote shares over its valid samples). The task schema is
the union of the rows' tools, or a separate tools file. Slot values are located in the utterance by a
case-insensitive character match (whole words first) and become B-/I- tags of the tokens they overlap.

Each argument's kind comes from its JSON schema (`argument_kind`): an enum, a boolean or an integer with a
small [minimum, maximum] range is learned by a value head (a class per value, plus "absent"); any other
number and a string are spans of the input. A string that is neither an enum nor marked `"x-span": true`
is free text when the schema marks any argument as a span (a schema with no marks, like MASSIVE's, has
span strings only): the encoder cannot learn it. The pipeline's rows carry the tools the teacher saw, which
say the marks in words, so it passes the task description (`description_schema`), whose kinds decide instead.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, DataError
from .datasets import LoadReport, RejectedSample, _last_user_utterance, arguments_object, last_tool_call, read_jsonl
from .encoder import EncoderLabels
from .task_description import ArgumentDescription, TaskDescription

# An integer argument with at most this many values in [minimum, maximum] gets a value head; wider or
# unbounded ones, and non-integer numbers, are tagged as spans of the input.
MAX_INTEGER_CLASSES = 64
SPAN_KINDS = ("span", "number")


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
        return {
            **super().as_metrics(prefix),
            "votes_used": self.votes_used,
            "votes_dropped": sum(self.votes_dropped.values()),
            "votes_dropped_reasons": dict(self.votes_dropped),
        }


def string_form(value: Any) -> str | None:
    """A value as the compact call format writes it: strings as they are, booleans "true"/"false", numbers as
    JSON (and JavaScript's String) writes them (2.0 -> "2"); None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return None


def _argument_pairs(arguments: dict[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key, value in arguments.items():
        for item in value if isinstance(value, list) else [value]:
            text = string_form(item)
            if text is None:
                raise DataError(
                    f"{where}: argument '{key}' must be a string, number or boolean (or a list of them), got {item!r}"
                )
            pairs.append((key, text))
    return tuple(pairs)


def _label_call(messages: list[Any], where: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    name, arguments = last_tool_call(messages, where)
    return name, _argument_pairs(arguments, f"{where}: function.arguments")


@dataclass(frozen=True)
class ArgumentSpec:
    """One argument's kind for the encoder: "span", "number" (a span that is a number), "enum", "boolean",
    "integer" (a small range, learned as classes) or "free text" (not learnable by the encoder)."""

    kind: str
    values: tuple[str, ...] = ()  # the classes of a value head, in order
    required: bool = False
    integer: bool = False  # a "number" span that must be an integer


Schema = dict[str, dict[str, ArgumentSpec]]  # function -> argument -> spec


def argument_kind(prop: Any, spans_marked: bool) -> ArgumentSpec:
    prop = prop if isinstance(prop, dict) else {}
    enum = prop.get("enum")
    if isinstance(enum, list) and enum and all(string_form(v) is not None for v in enum):
        return ArgumentSpec("enum", tuple(dict.fromkeys(string_form(v) for v in enum)))
    kind = prop.get("type")
    if kind == "boolean":
        return ArgumentSpec("boolean", ("false", "true"))
    if kind == "integer":
        low, high = prop.get("minimum"), prop.get("maximum")
        if all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (low, high)):
            import math

            low, high = math.ceil(low), math.floor(high)
            if 0 < high - low + 1 <= MAX_INTEGER_CLASSES:
                return ArgumentSpec("integer", tuple(str(v) for v in range(low, high + 1)))
        return ArgumentSpec("number", integer=True)
    if kind == "number":
        return ArgumentSpec("number")
    if spans_marked and prop.get("x-span") is not True:
        return ArgumentSpec("free text")
    return ArgumentSpec("span")


def tool_schema(tools: Any, where: str) -> Schema:
    """OpenAI tool definitions -> {function name: {argument name (JSON-schema property): its spec}}."""
    if not isinstance(tools, list):
        raise DataError(f"{where}: 'tools' must be a list of tool definitions")
    found: list[tuple[str, dict, list]] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise DataError(f"{where}: tools[{i}] needs function.name")
        parameters = function.get("parameters") or {}
        properties = parameters.get("properties", {}) if isinstance(parameters, dict) else None
        if not isinstance(properties, dict):
            raise DataError(f"{where}: tools[{i}].function.parameters.properties must be an object")
        required = parameters.get("required", []) if isinstance(parameters.get("required", []), list) else []
        found.append((function["name"], properties, required))
    marked = any(isinstance(p, dict) and p.get("x-span") is True for _, props, _ in found for p in props.values())
    functions: Schema = {}
    for name, properties, required in found:
        specs = functions.setdefault(name, {})
        for key, prop in properties.items():
            spec = argument_kind(prop, marked)
            specs[key] = ArgumentSpec(spec.kind, spec.values, key in required, spec.integer)
    return functions


def _described_spec(argument: ArgumentDescription) -> ArgumentSpec:
    """The encoder's spec of an argument whose kind the task description gives: an integer with a small
    range is still learned by a value head, any other number is a span that must parse."""
    if argument.kind == "number":
        prop = {
            "type": argument.type,
            **{k: v for k, v in (("minimum", argument.minimum), ("maximum", argument.maximum)) if v is not None},
        }
        spec = argument_kind(prop, False)
    elif argument.kind == "enum":
        spec = ArgumentSpec("enum", tuple(dict.fromkeys(argument.values)))
    elif argument.kind == "boolean":
        spec = ArgumentSpec("boolean", ("false", "true"))
    else:
        spec = ArgumentSpec(argument.kind)  # "span" or "free text"
    return ArgumentSpec(spec.kind, spec.values, argument.required, spec.integer)


def description_schema(description: TaskDescription) -> Schema:
    """The encoder's schema from the task description: its kinds as the TypeScript side decided them, so a
    free-text argument is refused whether or not the rows' tools still carry "x-span" marks."""
    return {
        name: {key: _described_spec(argument) for key, argument in function.arguments.items()}
        for name, function in description.functions.items()
    }


def tool_functions(tools: Any, where: str) -> dict[str, set[str]]:
    """OpenAI tool definitions -> {function name: argument names (JSON-schema properties)}."""
    return {name: set(specs) for name, specs in tool_schema(tools, where).items()}


def merge_schema(into: Schema, more: Schema) -> None:
    for name, specs in more.items():
        into.setdefault(name, {}).update(specs)


def load_tools_file(path: str | Path) -> Schema:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"tools file not found: {path}")
    try:
        tools = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"tools file {path} is not valid JSON: {e}") from e
    return tool_schema(tools, f"tools file {path}")


@dataclass
class RawRow:
    where: str
    utterance: str
    label: tuple[str, tuple[tuple[str, str], ...]]
    votes: list[tuple[str, tuple[tuple[str, str], ...], float]]


def read_encoder_rows(path: str | Path, report: EncoderDataReport) -> tuple[list[RawRow], Schema]:
    """Rows plus the schema from their `tools` (union over rows)."""
    rows: list[RawRow] = []
    schema: Schema = {}
    for number, record in read_jsonl(path, "sft dataset"):
        where = f"sft dataset {path} line {number}"
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: 'messages' must be a non-empty list")
        utterance = _last_user_utterance(messages, where)
        if "tools" in record:
            merge_schema(schema, tool_schema(record["tools"], where))
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


def _off_schema(call: tuple[str, tuple[tuple[str, str], ...]], schema: Schema) -> str | None:
    name, pairs = call
    if name not in schema:
        return f"function '{name}' is not in the tools"
    unknown = sorted({key for key, _ in pairs} - set(schema[name]))
    if unknown:
        return f"argument(s) {unknown} are not parameters of '{name}'"
    for key, value in pairs:
        spec = schema[name][key]
        if spec.values and value not in spec.values:
            return (
                f"argument '{key}' of '{name}' has value {value!r}, which is not one of its {len(spec.values)} values"
            )
    return None


def free_text_arguments(schema: Schema) -> list[tuple[str, str]]:
    """(function, argument) of every free-text argument: the encoder student cannot learn those."""
    return [(name, key) for name in sorted(schema) for key, spec in schema[name].items() if spec.kind == "free text"]


def require_encoder_schema(schema: Schema, where: str) -> None:
    """Refuses a schema with a free-text argument, naming it."""
    free = free_text_arguments(schema)
    if free:
        name, key = free[0]
        raise ConfigError(
            f"{where}: argument '{key}' of function '{name}' is free text (a string that is neither an "
            'enum nor marked "x-span": true): the encoder student predicts spans of the input and '
            "classes (enums, booleans, small integer ranges) only; train the decoder student for this task"
        )


def value_heads(schema: Schema) -> list[dict[str, Any]]:
    """The value heads of a schema, by function then argument name (offsets: EncoderLabels.set_value_heads)."""
    return [
        {"function": name, "argument": key, "kind": spec.kind, "values": list(spec.values), "required": spec.required}
        for name in sorted(schema)
        for key, spec in sorted(schema[name].items())
        if spec.kind in ("enum", "boolean", "integer")
    ]


def span_slots(schema: Schema) -> dict[str, list[str]]:
    """Per function, the arguments tagged as spans (strings and numbers that are not value heads)."""
    return {
        name: sorted(key for key, spec in specs.items() if spec.kind in SPAN_KINDS) for name, specs in schema.items()
    }


def number_slots(schema: Schema) -> dict[str, dict[str, str]]:
    """Per function, its number spans: {argument: "integer" or "number"} (decoding keeps only spans that parse)."""
    numbers = {
        name: {
            key: "integer" if spec.integer else "number" for key, spec in sorted(specs.items()) if spec.kind == "number"
        }
        for name, specs in sorted(schema.items())
    }
    return {name: slots for name, slots in numbers.items() if slots}


def check_number_spans(rows: list[RawRow], schema: Schema) -> None:
    """A number learned as a span must be written in the input: refuses an argument whose gold values are
    mostly not found there (e.g. a count), naming it."""
    found: Counter = Counter()
    missing: Counter = Counter()
    example: dict[tuple[str, str], str] = {}
    for row in rows:
        name, pairs = row.label
        for key, value in pairs:
            spec = schema.get(name, {}).get(key)
            if spec is None or spec.kind != "number":
                continue
            if locate_values(row.utterance, ((key, value),))[1]:
                missing[(name, key)] += 1
                example.setdefault((name, key), f"{value!r} in {row.utterance!r}")
            else:
                found[(name, key)] += 1
    for (name, key), count in sorted(missing.items()):
        if count > found[(name, key)]:
            total = count + found[(name, key)]
            raise DataError(
                f"argument '{key}' of function '{name}' is a number the encoder student tags as a span of "
                f"the input, but {count} of its {total} training values are not written in the input "
                f"(e.g. {example[(name, key)]}): give it an integer type with a minimum and maximum at most "
                f"{MAX_INTEGER_CLASSES} values apart (learned as classes), or train the decoder student"
            )


def encoder_examples(
    rows: list[RawRow], schema: Schema, vote_weight: float, report: EncoderDataReport
) -> list[EncoderExample]:
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
        targets = (
            [TargetCall(name, pairs, weight * share / total) for name, pairs, share in votes] if weight > 0 else []
        )
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
        whole = [
            s
            for s in free
            if (s == 0 or not _is_word(folded[s - 1]))
            and (s + len(needle) == len(folded) or not _is_word(folded[s + len(needle)]))
        ]
        chosen = (whole or free or [None])[0]
        if chosen is None:
            missing += 1
            continue
        spans.append((key, chosen, chosen + len(needle)))
    return sorted(spans, key=lambda span: span[1]), missing


def covers_words(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] starts and ends at word boundaries (a word: a run of non-space characters)."""
    return (start == 0 or text[start - 1].isspace()) and (end == len(text) or text[end].isspace())


def bio_tag_ids(
    spans: list[tuple[str, int, int]], offsets: list[tuple[int, int]], word: list[bool], tag_index: dict[str, int]
) -> tuple[list[int], int]:
    """Tag ids per token (-100 on special tokens); a token overlapping a span gets B- (first) or I-.
    Also returns how many spans lost every token (e.g. to truncation)."""
    tags = [0 if is_word else -100 for is_word in word]
    lost = 0
    for key, start, end in sorted(spans, key=lambda s: s[1]):
        inside = [
            i
            for i, ((s, e), is_word) in enumerate(zip(offsets, word, strict=True))
            if is_word and s < end and e > start and tags[i] == 0
        ]
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
    value_targets: list[tuple[int, float]] = field(default_factory=list)  # (column of value_logits, weight)


def value_target_columns(labels: EncoderLabels, name: str, pairs: tuple[tuple[str, str], ...]) -> list[int]:
    """For a call, the value_logits column of each of its function's heads: the value's, or "absent" (0)."""
    columns = []
    for head in labels.value_heads:
        if head["function"] != name:
            continue
        value = next((v for k, v in pairs if k == head["argument"]), None)
        columns.append(head["offset"] + (1 + head["values"].index(value) if value in head["values"] else 0))
    return columns


def encode_examples(
    examples: list[EncoderExample], tokenizer: Any, labels: EncoderLabels, counts: Counter
) -> list[EncodedExample]:
    intent_index = {name: i for i, name in enumerate(labels.intents)}
    tag_index = {tag: i for i, tag in enumerate(labels.tags)}
    headed = {(h["function"], h["argument"]) for h in labels.value_heads}
    encodings = tokenizer.encode_batch([e.utterance for e in examples])
    encoded = []
    for example, encoding in zip(examples, encodings, strict=True):
        word = [not special for special in encoding.special_tokens_mask]
        tag_targets = []
        value_targets = []
        for target in example.targets:
            span_pairs = (
                tuple(p for p in target.arguments if (target.name, p[0]) not in headed) if headed else target.arguments
            )
            spans, missing = locate_values(example.utterance, span_pairs)
            counts["spans_located"] += len(spans)
            counts["spans_inside_words"] += sum(not covers_words(example.utterance, s, e) for _, s, e in spans)
            tags, lost = bio_tag_ids(spans, encoding.offsets, word, tag_index)
            counts["slot_values_not_found"] += missing
            counts["slot_values_truncated"] += lost
            tag_targets.append((tags, target.weight))
            value_targets += [
                (column, target.weight) for column in value_target_columns(labels, target.name, target.arguments)
            ]
        encoded.append(
            EncodedExample(
                list(encoding.ids),
                list(encoding.type_ids),
                [(intent_index[t.name], t.weight) for t in example.targets],
                tag_targets,
                value_targets,
            )
        )
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
