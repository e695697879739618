"""The encoder student (ENCODER_FORMAT.md): a BERT encoder with an intent head, a BIO tag head and, for tasks
with enum, boolean or small-range integer arguments, one classification head per (function, argument).

Folder: config.json + model.safetensors (a plain transformers BERT), tokenizer.json (padding off),
heads.safetensors (the task heads) and supertiny.json (the label spaces). `family_of` tells an encoder
folder from a decoder one, so predict/export/quantize can dispatch on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.errors import ConfigError, MissingModelError

ENCODER_FORMAT = "supertiny-encoder/1"
LABELS_FILE = "supertiny.json"
HEADS_FILE = "heads.safetensors"
POOLINGS = ("cls", "mean")


def family_of(folder: str | Path) -> str:
    """`encoder` when the folder's supertiny.json says so; every other folder is a decoder student."""
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        return "decoder"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from e
    return "encoder" if isinstance(raw, dict) and raw.get("family") == "encoder" else "decoder"


VALUE_KINDS = ("enum", "boolean", "integer")


def value_head_problem(head: Any) -> str | None:
    """Why a `value_heads` entry is malformed, or None."""
    if not isinstance(head, dict):
        return "must be an object"
    for name in ("function", "argument"):
        if not isinstance(head.get(name), str) or not head[name]:
            return f"needs a non-empty string '{name}'"
    if head.get("kind") not in VALUE_KINDS:
        return f"'kind' must be one of {list(VALUE_KINDS)}, got {head.get('kind')!r}"
    values = head.get("values")
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) for v in values)
        or len(set(values)) != len(values)
    ):
        return "'values' must be a non-empty list of distinct strings"
    if not isinstance(head.get("required"), bool):
        return "'required' must be true or false"
    if isinstance(head.get("offset"), bool) or not isinstance(head.get("offset"), int):
        return "'offset' must be an integer"
    return None


def bio_tags(slot_types: list[str]) -> list[str]:
    """Tag 0 is O; then B-x, I-x for each slot type in the given order."""
    return ["O"] + [f"{prefix}-{slot}" for slot in slot_types for prefix in ("B", "I")]


@dataclass
class EncoderLabels:
    """The student's label spaces, written as supertiny.json (the runtime's contract)."""

    intents: list[str]
    tags: list[str]
    intent_slots: dict[str, list[str]]
    max_length: int = 64
    pooling: str = "mean"  # how the intent head reads the sequence: "cls" ([CLS] state) or "mean" (masked mean)
    extra: dict[str, Any] = field(default_factory=dict)
    # Per intent, the slots a call may name more than once; any other slot keeps its most probable span.
    intent_repeatable: dict[str, list[str]] = field(default_factory=dict)
    # Per (function, argument) with a closed set of values: {"function", "argument", "kind", "values",
    # "required", "offset"}; its logits are value_logits[offset : offset + 1 + len(values)], column 0 "absent".
    value_heads: list[dict[str, Any]] = field(default_factory=list)
    # Per function, its slots whose spans must parse as numbers: {slot: "integer" | "number"}.
    number_slots: dict[str, dict[str, str]] = field(default_factory=dict)
    # Every span of the training calls covered whole words (runs of non-space characters): decoding then ties a
    # word's tokens to one span or to none (ENCODER_FORMAT.md). False in folders written before the field.
    word_spans: bool = False

    @classmethod
    def from_schema(cls, functions: dict[str, list[str]], max_length: int, pooling: str) -> EncoderLabels:
        slot_types = sorted({slot for slots in functions.values() for slot in slots})
        return cls(
            sorted(functions),
            bio_tags(slot_types),
            {name: sorted(functions[name]) for name in sorted(functions)},
            max_length,
            pooling,
        )

    @property
    def slot_types(self) -> list[str]:
        return [tag[2:] for tag in self.tags[1::2]]

    def set_value_heads(self, heads: list[dict[str, Any]]) -> None:
        """Heads in the given order, their offsets assigned contiguously."""
        offset = 0
        self.value_heads = []
        for head in heads:
            self.value_heads.append({**{k: v for k, v in head.items() if k != "offset"}, "offset": offset})
            offset += 1 + len(head["values"])

    @property
    def num_values(self) -> int:
        """Width of value_logits (0: no value heads, and no value_logits output)."""
        return sum(1 + len(h["values"]) for h in self.value_heads)

    def value_slices(self) -> list[tuple[int, int]]:
        return [(h["offset"], h["offset"] + 1 + len(h["values"])) for h in self.value_heads]

    def to_json(self) -> dict[str, Any]:
        heads = {"value_heads": self.value_heads} if self.value_heads else {}
        if self.number_slots:
            heads["number_slots"] = self.number_slots
        if self.word_spans:
            heads["word_spans"] = True
        return {
            "format": ENCODER_FORMAT,
            "family": "encoder",
            "max_length": self.max_length,
            "intents": self.intents,
            "tags": self.tags,
            "intent_slots": self.intent_slots,
            "intent_repeatable": self.intent_repeatable,
            "pooling": self.pooling,
            **heads,
            **self.extra,
        }

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / LABELS_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> EncoderLabels:
        path = Path(folder) / LABELS_FILE
        if not path.is_file():
            raise MissingModelError(f"encoder folder {folder} has no {LABELS_FILE}")
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != ENCODER_FORMAT:
            raise ConfigError(f"{path}: 'format' must be {ENCODER_FORMAT!r}, got {raw.get('format')!r}")
        for name in ("intents", "tags", "intent_slots", "max_length"):
            if name not in raw:
                raise ConfigError(f"{path}: missing field '{name}'")
        if not raw["tags"] or raw["tags"][0] != "O":
            raise ConfigError(f"{path}: 'tags' must start with 'O'")
        tags = set(raw["tags"])
        for intent, slots in raw["intent_slots"].items():
            missing = [s for s in slots if f"B-{s}" not in tags or f"I-{s}" not in tags]
            if missing:
                raise ConfigError(f"{path}: intent_slots['{intent}'] names slots without B-/I- tags: {missing}")
        known = {
            "format",
            "family",
            "max_length",
            "intents",
            "tags",
            "intent_slots",
            "intent_repeatable",
            "pooling",
            "value_heads",
            "number_slots",
            "word_spans",
        }
        word_spans = raw.get("word_spans", False)
        if not isinstance(word_spans, bool):
            raise ConfigError(f"{path}: 'word_spans' must be true or false, got {word_spans!r}")
        numbers = raw.get("number_slots", {})
        if not isinstance(numbers, dict) or any(
            intent not in raw["intent_slots"]
            or not isinstance(slots, dict)
            or not set(slots) <= set(raw["intent_slots"][intent])
            or not set(slots.values()) <= {"integer", "number"}
            for intent, slots in numbers.items()
        ):
            raise ConfigError(
                f'{path}: \'number_slots\' must map intents to some of their intent_slots, each "integer" or "number"'
            )
        heads = raw.get("value_heads", [])
        if not isinstance(heads, list):
            raise ConfigError(f"{path}: 'value_heads' must be a list")
        offset = 0
        for i, head in enumerate(heads):
            problem = value_head_problem(head)
            if problem is None and head["function"] not in raw["intent_slots"]:
                problem = f"names function {head['function']!r}, which is not among the intents"
            if problem is None and head["offset"] != offset:
                problem = (
                    f"'offset' must be {offset} (the heads' logits are contiguous, in order), got {head['offset']}"
                )
            if problem is None and head["argument"] in raw["intent_slots"][head["function"]]:
                problem = f"argument {head['argument']!r} is also a tagged slot of {head['function']!r}"
            if problem:
                raise ConfigError(f"{path}: value_heads[{i}] {problem}")
            offset += 1 + len(head["values"])
        repeatable = raw.get("intent_repeatable", {})
        if not isinstance(repeatable, dict) or any(
            intent not in raw["intent_slots"] or not set(slots) <= set(raw["intent_slots"][intent])
            for intent, slots in repeatable.items()
        ):
            raise ConfigError(f"{path}: 'intent_repeatable' must map intents to some of their intent_slots")
        pooling = raw.get("pooling", "cls")
        if pooling not in POOLINGS:
            raise ConfigError(f"{path}: 'pooling' must be one of {list(POOLINGS)}, got {pooling!r}")
        return cls(
            list(raw["intents"]),
            list(raw["tags"]),
            {k: list(v) for k, v in raw["intent_slots"].items()},
            int(raw["max_length"]),
            pooling,
            {k: v for k, v in raw.items() if k not in known},
            {k: list(v) for k, v in repeatable.items()},
            [dict(h) for h in heads],
            {k: dict(v) for k, v in numbers.items()},
            word_spans,
        )


def load_encoder_tokenizer(folder: str | Path, max_length: int) -> Any:
    """The folder's tokenizer.json (HF tokenizers, as the TypeScript runtime reads it), padding off."""
    from tokenizers import Tokenizer

    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise MissingModelError(f"encoder folder {folder} has no tokenizer.json (a BERT folder needs one)")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def _torch_module():
    import torch

    class EncoderStudent(torch.nn.Module):
        """BERT + an intent classifier on the pooled sequence + a tag classifier on every token (+ with value
        heads, one linear layer on the pooled sequence whose outputs are every head's logits side by side)."""

        def __init__(self, bert: Any, num_intents: int, num_tags: int, pooling: str, num_values: int = 0):
            super().__init__()
            self.bert = bert
            hidden = bert.config.hidden_size
            self.dropout = torch.nn.Dropout(bert.config.hidden_dropout_prob)
            self.intent_head = torch.nn.Linear(hidden, num_intents)
            self.tag_head = torch.nn.Linear(hidden, num_tags)
            # Created after the other heads, so a model without value heads draws the same initial weights.
            self.value_head = torch.nn.Linear(hidden, num_values) if num_values else None
            self.pooling = pooling

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if self.pooling == "mean":
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            else:
                pooled = hidden[:, 0]
            pooled = self.dropout(pooled)
            if self.value_head is None:
                return self.intent_head(pooled), self.tag_head(self.dropout(hidden))
            return self.intent_head(pooled), self.tag_head(self.dropout(hidden)), self.value_head(pooled)

        def head_state(self) -> dict:
            heads = {"intent_head": self.intent_head, "tag_head": self.tag_head}
            if self.value_head is not None:
                heads["value_head"] = self.value_head
            return {f"{name}.{k}": v for name, head in heads.items() for k, v in head.state_dict().items()}

    return EncoderStudent


def load_bert(folder: str | Path, role: str = "base model") -> Any:
    """Any BERT-architecture transformers folder, without its pooler (the heads pool themselves)."""
    import torch
    from transformers import AutoConfig, BertModel

    folder = Path(folder)
    if not folder.is_dir():
        raise MissingModelError(f"{role} folder not found: {folder}")
    if not (folder / "config.json").is_file():
        raise MissingModelError(f"{role} folder {folder} has no config.json")
    config = AutoConfig.from_pretrained(str(folder))
    if config.model_type != "bert":
        raise ConfigError(
            f"{role} folder {folder} holds a '{config.model_type}' model; the encoder student needs a BERT "
            "architecture (config.json model_type 'bert')"
        )
    try:
        return BertModel.from_pretrained(str(folder), add_pooling_layer=False, dtype=torch.float32)
    except OSError as e:
        raise MissingModelError(f"{role} folder {folder} has no loadable weights: {e}") from e


def build_encoder_student(bert: Any, labels: EncoderLabels) -> Any:
    return _torch_module()(bert, len(labels.intents), len(labels.tags), labels.pooling, labels.num_values)


@dataclass
class EncoderStudentFolder:
    model: Any  # EncoderStudent
    tokenizer: Any  # tokenizers.Tokenizer
    labels: EncoderLabels
    path: Path


def load_encoder_student(folder: str | Path, role: str = "model") -> EncoderStudentFolder:
    from safetensors.torch import load_file

    folder = Path(folder)
    labels = EncoderLabels.load(folder)
    model = build_encoder_student(load_bert(folder, role), labels)
    heads_path = folder / HEADS_FILE
    if not heads_path.is_file():
        raise MissingModelError(f"encoder folder {folder} has no {HEADS_FILE}")
    missing, unexpected = model.load_state_dict(load_file(str(heads_path)), strict=False)
    missing = [k for k in missing if not k.startswith("bert.")]
    if missing or unexpected:
        raise ConfigError(f"{heads_path} does not match supertiny.json: missing {missing}, unexpected {unexpected}")
    return EncoderStudentFolder(model.eval(), load_encoder_tokenizer(folder, labels.max_length), labels, folder)


def warm_start_heads(model: Any, labels: EncoderLabels, folder: str | Path) -> dict[str, int] | None:
    """Copies a trained student's head rows into `model` for the intents and tags both label spaces have, and the
    value heads when they are the same (a refresh continues from the deployed student; an intent or tag that is
    new keeps its fresh initial weights). None when `folder` is not a trained student (a base encoder)."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    heads_path = folder / HEADS_FILE
    if not heads_path.is_file() or not (folder / LABELS_FILE).is_file():
        return None
    old = EncoderLabels.load(folder)
    state = load_file(str(heads_path))
    copied = {"intents": 0, "tags": 0, "value_heads": 0}
    with torch.no_grad():
        for head, old_names, new_names, key in (
            ("intent_head", old.intents, labels.intents, "intents"),
            ("tag_head", old.tags, labels.tags, "tags"),
        ):
            weight, bias = state.get(f"{head}.weight"), state.get(f"{head}.bias")
            layer = getattr(model, head)
            if weight is None or bias is None or weight.shape != (len(old_names), layer.weight.shape[1]):
                raise ConfigError(f"{heads_path}: {head} does not match the labels of {folder / LABELS_FILE}")
            row_of = {name: i for i, name in enumerate(old_names)}
            for j, name in enumerate(new_names):
                i = row_of.get(name)
                if i is not None:
                    layer.weight[j].copy_(weight[i])
                    layer.bias[j].copy_(bias[i])
                    copied[key] += 1
        if model.value_head is not None and old.value_heads == labels.value_heads and "value_head.weight" in state:
            model.value_head.weight.copy_(state["value_head.weight"])
            model.value_head.bias.copy_(state["value_head.bias"])
            copied["value_heads"] = len(labels.value_heads)
    return copied


def save_encoder_student(model: Any, tokenizer: Any, labels: EncoderLabels, destination: str | Path) -> Path:
    """Write the training folder atomically: BERT (save_pretrained), heads, tokenizer.json, supertiny.json."""
    from safetensors.torch import save_file

    destination = Path(destination)
    with atomic_output_dir(destination) as staging:
        model.bert.save_pretrained(str(staging))
        save_file({k: v.detach().contiguous() for k, v in model.head_state().items()}, str(staging / HEADS_FILE))
        tokenizer.save(str(staging / "tokenizer.json"))
        labels.save(staging)
    return destination
