"""`decoder-prune-vocab`: shrinks a decoder student's byte-level BPE vocabulary to what its sft data uses.

Kept: every added token (the student's <|bos|> ... and the base's own), the byte symbols, the tokens the
training text tokenizes into (prompt and answer, as sft renders them; at least `min_count` times), the ids the
config names (bos, eos, pad), the vocabulary's first `keep_first` tokens (the base's commonest), and,
recursively, the two parts of every merge that builds a kept token. A merge stays when its parts and its result
do. BPE applies the lowest-ranked applicable merge first; on a kept word every merge of its original path is kept
and every other kept merge was applicable there too, so the word takes the same path and gives the same tokens.
Any other text is spelled in smaller pieces, down to bytes. Ids are renumbered in their original order; the
embedding rows and the LM head (tied or not) follow.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.errors import ConfigError, DataError
from ..core.runtime import set_threads
from ..student.datasets import load_sft_samples
from ..student.model_folder import load_student, parameter_count
from ..student.text_format import StudentTemplate
from ..student.vocabulary import renumbered_tokenizer

# Weights are written from the pruned model; any other file of the folder (a chat template, ...) is copied.
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")


@dataclass
class DecoderPruneVocabConfig:
    model: str = ""  # a decoder student folder (init's or sft's output)
    data: str = ""  # sft.jsonl: the utterances and calls whose tokens are kept
    min_count: int = 1  # keep a data token only when it occurs at least this often (bytes always stay)
    # Also keep the vocabulary's first N model tokens: a byte-level BPE numbers its tokens in merge order, so the
    # lowest ids are the base's commonest pieces, and words the training data lacks are spelled as the base knows them.
    keep_first: int = 0
    num_threads: int | None = None

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("config field 'model' is required (a decoder student folder)")
        if not self.data:
            raise ConfigError("config field 'data' is required (an sft.jsonl file)")
        if self.min_count < 1:
            raise ConfigError(f"config field 'min_count' must be >= 1, got {self.min_count}")
        if not isinstance(self.keep_first, int) or isinstance(self.keep_first, bool) or self.keep_first < 0:
            raise ConfigError(f"config field 'keep_first' must be an integer >= 0, got {self.keep_first!r}")


def _is_byte_level(tokenizer_json: dict[str, Any]) -> bool:
    def byte_level(step: dict[str, Any] | None) -> bool:
        if not step:
            return False
        if step.get("type") == "Sequence":
            return any(byte_level(s) for s in step.get("pretokenizers", []))
        return step.get("type") == "ByteLevel"

    return tokenizer_json.get("model", {}).get("type") == "BPE" and byte_level(tokenizer_json.get("pre_tokenizer"))


def merge_pairs(model: dict[str, Any]) -> list[tuple[str, str]]:
    """The BPE merges in rank order, from either serialization ("a b" strings or [a, b] lists)."""
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in model["merges"]]


def training_texts(samples: list[Any], template: StudentTemplate) -> list[str]:
    """What sft tokenizes per sample: the rendered prompt followed by the answer (compact call + eos)."""
    return [template.prompt(s.utterance) + template.target(s.call) for s in samples]


def token_counts(tokenizer: Any, texts: list[str]) -> Counter:
    tokenizer.no_truncation()  # every token of every text, also beyond max_length
    tokenizer.no_padding()
    counts: Counter = Counter()
    for encoding in tokenizer.encode_batch(texts):
        counts.update(encoding.tokens)
    return counts


def token_ids(tokenizer_json: dict[str, Any]) -> dict[str, int]:
    """Every token's id: the model's vocabulary and the added tokens (a BPE model lists <|bos|> ... outside it)."""
    return {
        **tokenizer_json["model"]["vocab"],
        **{t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])},
    }


def select_vocabulary(
    tokenizer_json: dict[str, Any], counts: Counter, min_count: int, named_ids: set[int], keep_first: int = 0
) -> tuple[list[str], dict[str, int]]:
    """Kept tokens in their original id order, plus counts of why each group was kept; `named_ids` and the model
    vocabulary's tokens with ids below `keep_first` always stay."""
    from tokenizers.pre_tokenizers import ByteLevel

    vocab: dict[str, int] = tokenizer_json["model"]["vocab"]
    old_id = token_ids(tokenizer_json)
    by_id = {i: token for token, i in old_id.items()}
    added = {t["content"] for t in tokenizer_json.get("added_tokens", [])}
    missing = sorted(i for i in named_ids if i not in by_id)
    if missing:
        raise DataError(f"config.json names token ids {missing} that tokenizer.json does not have")
    named = {by_id[i] for i in named_ids}
    byte_symbols = set(ByteLevel.alphabet()) & set(vocab)  # a base may lack the bytes UTF-8 never uses
    data = {t for t, n in counts.items() if n >= min_count}
    first = {t for t, i in vocab.items() if i < keep_first}
    parts: dict[str, list[tuple[str, str]]] = {}
    for left, right in merge_pairs(tokenizer_json["model"]):
        parts.setdefault(left + right, []).append((left, right))
    kept = added | byte_symbols | data | named | first
    pending = list(kept)
    while pending:
        for pair in parts.get(pending.pop(), []):
            for part in pair:
                if part not in kept:
                    kept.add(part)
                    pending.append(part)
    order = sorted(kept, key=old_id.__getitem__)
    return order, {
        "added": len(added),
        "bytes": len(byte_symbols - added),
        "data": len(data - byte_symbols - added),
        "first": len(first - data - byte_symbols - added),
        "merge_parts": len(kept) - len(added | byte_symbols | data | named | first),
    }


def pruned_tokenizer_json(tokenizer_json: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """renumbered_tokenizer plus the merges whose parts and result are all kept, in their original ranks."""
    out = renumbered_tokenizer(tokenizer_json, kept)
    vocab = out["model"]["vocab"]
    merges = tokenizer_json["model"]["merges"]
    out["model"]["merges"] = [
        merge
        for merge, (left, right) in zip(merges, merge_pairs(tokenizer_json["model"]), strict=True)
        if left in vocab and right in vocab and left + right in vocab
    ]
    return out


def renumbered_tokenizer_config(config: dict[str, Any], new_id: dict[str, int]) -> dict[str, Any]:
    """tokenizer_config.json names tokens by content, except the older added_tokens_decoder keyed by id."""
    decoder = config.get("added_tokens_decoder")
    if not decoder:
        return config
    return {
        **config,
        "added_tokens_decoder": {str(new_id[entry["content"]]): entry for entry in decoder.values()},
    }


def _slice_vocabulary(model: Any, index: Any) -> None:
    """Keeps the embedding rows (and LM head rows) of `index`, in its order."""
    import torch

    embedding = model.get_input_embeddings()
    pruned = torch.nn.Embedding(len(index), embedding.embedding_dim)
    pruned.weight.data.copy_(embedding.weight.data[index])
    model.set_input_embeddings(pruned)
    head = model.get_output_embeddings()
    if model.config.tie_word_embeddings:
        head.weight = pruned.weight
    else:
        sliced = torch.nn.Linear(head.in_features, len(index), bias=head.bias is not None)
        sliced.weight.data.copy_(head.weight.data[index])
        if head.bias is not None:
            sliced.bias.data.copy_(head.bias.data[index])
        model.set_output_embeddings(sliced)
    head = model.get_output_embeddings()
    head.out_features = len(index)
    model.config.vocab_size = len(index)


def _renumber_ids(config: Any, new_of_old: dict[int, int]) -> None:
    if config is None:
        return
    for name in _ID_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int):
            setattr(config, name, new_of_old[value])
        elif isinstance(value, list):
            setattr(config, name, [new_of_old[v] for v in value])


def _named_ids(config: Any) -> set[int]:
    ids: set[int] = set()
    for name in _ID_FIELDS:
        value = getattr(config, name, None)
        ids.update([value] if isinstance(value, int) else value or [])
    return ids


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


class DecoderVocabPruner:
    def __init__(self, config: DecoderPruneVocabConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        import torch
        from tokenizers import Tokenizer

        set_threads(self.config.num_threads)
        started = time.monotonic()
        student = load_student(self.config.model)
        folder = student.path
        tokenizer_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        if not _is_byte_level(tokenizer_json):
            raise DataError(
                f"{folder}/tokenizer.json: a {tokenizer_json.get('model', {}).get('type')!r} model without a "
                "ByteLevel pre-tokenizer; decoder vocabulary pruning needs a byte-level BPE tokenizer"
            )
        samples, report = load_sft_samples(self.config.data)
        texts = training_texts(samples, student.template)
        original = Tokenizer.from_str(json.dumps(tokenizer_json))
        counts = token_counts(original, texts)
        model = student.model
        old_size, old_id = model.config.vocab_size, token_ids(tokenizer_json)
        if old_size != len(old_id):
            raise DataError(f"{folder}: config.json vocab_size {old_size} but tokenizer.json has {len(old_id)} tokens")
        named = _named_ids(model.config) | _named_ids(model.generation_config)
        kept, groups = select_vocabulary(tokenizer_json, counts, self.config.min_count, named, self.config.keep_first)
        pruned_json = pruned_tokenizer_json(tokenizer_json, kept)

        parameters_before = parameter_count(model)
        _slice_vocabulary(model, torch.tensor([old_id[t] for t in kept], dtype=torch.long))
        new_of_name = {t: i for i, t in enumerate(kept)}
        new_of_old = {old_id[t]: i for t, i in new_of_name.items()}
        _renumber_ids(model.config, new_of_old)
        _renumber_ids(model.generation_config, new_of_old)

        destination = self.context.run_dir / "model"
        with atomic_output_dir(destination) as staging:
            model.save_pretrained(str(staging))
            # The tokenizer files are written, not saved through transformers: its save may rename the class.
            for file in folder.iterdir():
                if file.is_file() and not (staging / file.name).exists() and file.suffix not in _WEIGHT_SUFFIXES:
                    shutil.copy2(file, staging / file.name)
            (staging / "tokenizer.json").write_text(json.dumps(pruned_json, ensure_ascii=False), encoding="utf-8")
            if (folder / "tokenizer_config.json").is_file():
                tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
                (staging / "tokenizer_config.json").write_text(
                    json.dumps(renumbered_tokenizer_config(tokenizer_config, new_of_name), indent=2) + "\n",
                    encoding="utf-8",
                )
        load_student(destination)  # a folder the trainer cannot load fails here, not in the next step
        self._check_same_tokens(original, Tokenizer.from_file(str(destination / "tokenizer.json")), texts, set(kept))
        return CommandResult(
            metrics={
                "vocab_before": old_size,
                "vocab_after": len(kept),
                **{f"kept_{k}": v for k, v in groups.items()},
                "merges_before": len(tokenizer_json["model"]["merges"]),
                "merges_after": len(pruned_json["model"]["merges"]),
                "data_samples": report.accepted,
                "data_tokens": sum(counts.values()),
                "min_count": self.config.min_count,
                "keep_first": self.config.keep_first,
                "parameters_before": parameters_before,
                "parameters_after": parameter_count(model),
                "bytes_before": _folder_bytes(folder),
                "bytes_after": _folder_bytes(destination),
                "prune_s": round(time.monotonic() - started, 2),
            },
            outputs={"model": str(destination), "tokenizer_json": str(destination / "tokenizer.json")},
        )

    def _check_same_tokens(self, original: Any, pruned: Any, texts: list[str], kept: set[str]) -> None:
        """A training text whose tokens were all kept keeps them: a pruning bug fails here, not in a later model."""
        pruned.no_truncation()
        pruned.no_padding()
        for text, old, new in zip(texts, original.encode_batch(texts), pruned.encode_batch(texts), strict=True):
            if old.tokens != new.tokens and kept.issuperset(old.tokens):
                raise DataError(f"pruning changed the tokens of {text!r}: {old.tokens} -> {new.tokens}")
