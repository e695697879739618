"""The encoder student (ENCODER_FORMAT.md): a BERT encoder with an intent head and a BIO tag head.

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

    @classmethod
    def from_schema(cls, functions: dict[str, list[str]], max_length: int, pooling: str) -> "EncoderLabels":
        slot_types = sorted({slot for slots in functions.values() for slot in slots})
        return cls(sorted(functions), bio_tags(slot_types), {name: sorted(functions[name]) for name in sorted(functions)},
                   max_length, pooling)

    @property
    def slot_types(self) -> list[str]:
        return [tag[2:] for tag in self.tags[1::2]]

    def to_json(self) -> dict[str, Any]:
        return {"format": ENCODER_FORMAT, "family": "encoder", "max_length": self.max_length, "intents": self.intents,
                "tags": self.tags, "intent_slots": self.intent_slots, "intent_repeatable": self.intent_repeatable,
                "pooling": self.pooling, **self.extra}

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / LABELS_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "EncoderLabels":
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
        known = {"format", "family", "max_length", "intents", "tags", "intent_slots", "intent_repeatable", "pooling"}
        repeatable = raw.get("intent_repeatable", {})
        if not isinstance(repeatable, dict) or any(
                intent not in raw["intent_slots"] or not set(slots) <= set(raw["intent_slots"][intent])
                for intent, slots in repeatable.items()):
            raise ConfigError(f"{path}: 'intent_repeatable' must map intents to some of their intent_slots")
        pooling = raw.get("pooling", "cls")
        if pooling not in POOLINGS:
            raise ConfigError(f"{path}: 'pooling' must be one of {list(POOLINGS)}, got {pooling!r}")
        return cls(list(raw["intents"]), list(raw["tags"]), {k: list(v) for k, v in raw["intent_slots"].items()},
                   int(raw["max_length"]), pooling, {k: v for k, v in raw.items() if k not in known},
                   {k: list(v) for k, v in repeatable.items()})


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
        """BERT + an intent classifier on the pooled sequence + a tag classifier on every token."""

        def __init__(self, bert: Any, num_intents: int, num_tags: int, pooling: str):
            super().__init__()
            self.bert = bert
            hidden = bert.config.hidden_size
            self.dropout = torch.nn.Dropout(bert.config.hidden_dropout_prob)
            self.intent_head = torch.nn.Linear(hidden, num_intents)
            self.tag_head = torch.nn.Linear(hidden, num_tags)
            self.pooling = pooling

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            if self.pooling == "mean":
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            else:
                pooled = hidden[:, 0]
            return self.intent_head(self.dropout(pooled)), self.tag_head(self.dropout(hidden))

        def head_state(self) -> dict:
            return {f"intent_head.{k}": v for k, v in self.intent_head.state_dict().items()} | {
                f"tag_head.{k}": v for k, v in self.tag_head.state_dict().items()}

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
        raise ConfigError(f"{role} folder {folder} holds a '{config.model_type}' model; the encoder student needs a BERT "
                          "architecture (config.json model_type 'bert')")
    try:
        return BertModel.from_pretrained(str(folder), add_pooling_layer=False, dtype=torch.float32)
    except OSError as e:
        raise MissingModelError(f"{role} folder {folder} has no loadable weights: {e}") from e


def build_encoder_student(bert: Any, labels: EncoderLabels) -> Any:
    return _torch_module()(bert, len(labels.intents), len(labels.tags), labels.pooling)


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
