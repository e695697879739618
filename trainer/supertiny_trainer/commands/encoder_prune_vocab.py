"""`encoder-prune-vocab`: shrinks an encoder training folder's WordPiece vocabulary to what its data uses.

Kept: the special tokens, every single-character piece and its `##` form (so any word the original
vocabulary could spell is still spelled, in smaller pieces, never as [UNK]), the pieces the training
utterances tokenize into (at least `min_count` times), and any other piece the kept ones cannot rebuild.
Ids are renumbered in their original order; the word-embedding rows, config.json (vocab_size, pad_token_id)
and tokenizer.json (vocab, added tokens, post-processor ids, padding id) follow. WordPiece is greedy
longest-match-first, so an input whose original pieces were all kept tokenizes to the same pieces (and the
model gives the same logits); the heads never see the vocabulary and are copied as they are.
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
from ..core.errors import ConfigError, DataError, MissingModelError
from ..core.runtime import set_threads
from ..student.encoder import HEADS_FILE, LABELS_FILE, EncoderLabels, load_bert
from ..student.encoder_data import EncoderDataReport, read_encoder_rows
from ..student.vocabulary import renumbered_tokenizer


@dataclass
class EncoderPruneVocabConfig:
    model: str = ""  # an encoder training folder (encoder-sft's output)
    data: str = ""  # sft.jsonl: the utterances whose pieces are kept
    min_count: int = 1  # keep a data piece only when it occurs at least this often (single characters always stay)
    # Also keep the pieces with ids below this: BERT's WordPiece files list whole words roughly by corpus
    # frequency after the single characters, so these are the commonest words the data may lack.
    keep_lowest_ids: int = 0
    num_threads: int | None = None

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("config field 'model' is required (an encoder training folder)")
        if not self.data:
            raise ConfigError("config field 'data' is required (an sft.jsonl file)")
        if self.min_count < 1:
            raise ConfigError(f"config field 'min_count' must be >= 1, got {self.min_count}")
        if self.keep_lowest_ids < 0:
            raise ConfigError(f"config field 'keep_lowest_ids' must be >= 0, got {self.keep_lowest_ids}")


def wordpiece(
    word: str, vocab: set[str] | dict[str, int], prefix: str = "##", max_chars: int = 100
) -> list[str] | None:
    """HF WordPiece on one pre-tokenized word: greedy longest match first; None where it needs [UNK]."""
    if len(word) > max_chars:
        return None
    pieces, start = [], 0
    while start < len(word):
        end, piece = len(word), None
        while start < end:
            candidate = (prefix if start > 0 else "") + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return None
        pieces.append(piece)
        start = end
    return pieces


def _spellable(piece: str, kept: set[str], prefix: str) -> bool:
    """Whether `piece` can be rebuilt from kept pieces (a `##` piece as a continuation of a word)."""
    if piece.startswith(prefix) and len(piece) > len(prefix):
        # A continuation: spell "x" + rest and drop the first piece, so every piece after it is a `##` one.
        rest = piece[len(prefix) :]
        pieces = wordpiece("\0" + rest, kept | {"\0"}, prefix)
        return pieces is not None and pieces[0] == "\0"
    return wordpiece(piece, kept, prefix) is not None


def special_tokens(tokenizer_json: dict[str, Any]) -> list[str]:
    model = tokenizer_json["model"]
    names = [t["content"] for t in tokenizer_json.get("added_tokens", [])]
    if model.get("unk_token"):
        names.append(model["unk_token"])
    for entry in (tokenizer_json.get("post_processor") or {}).get("special_tokens", {}).values():
        names.extend(entry.get("tokens", []))
    return list(dict.fromkeys(names))


def select_vocabulary(
    tokenizer_json: dict[str, Any], piece_counts: Counter, min_count: int, keep_lowest_ids: int = 0
) -> tuple[list[str], dict[str, int]]:
    """Kept pieces in their original id order, plus counts of why each group was kept."""
    model = tokenizer_json["model"]
    vocab: dict[str, int] = model["vocab"]
    prefix = model.get("continuing_subword_prefix", "##")
    specials = set(special_tokens(tokenizer_json))
    missing = sorted(specials - set(vocab))
    if missing:
        raise DataError(f"tokenizer.json: special tokens {missing} are not in the WordPiece vocabulary")
    singles = {p for p in vocab if len(p) == 1 or (p.startswith(prefix) and len(p) == len(prefix) + 1)}
    data = {p for p, n in piece_counts.items() if n >= min_count}
    lowest = {p for p, i in vocab.items() if i < keep_lowest_ids}
    kept = specials | singles | data | lowest
    # A piece made of characters that have no single-character form stays, so every word stays spellable.
    respelled = {p for p in vocab if p not in kept and not _spellable(p, kept, prefix)}
    kept |= respelled
    order = sorted(kept, key=vocab.__getitem__)
    return order, {
        "special": len(specials),
        "single_char": len(singles - specials),
        "data": len(data - singles - specials),
        "lowest_ids": len(lowest - data - singles - specials),
        "unspellable": len(respelled),
    }


def data_piece_counts(tokenizer: Any, utterances: list[str]) -> Counter:
    tokenizer.no_truncation()  # every piece of every utterance, also beyond max_length
    counts: Counter = Counter()
    for encoding in tokenizer.encode_batch(utterances, add_special_tokens=False):
        counts.update(encoding.tokens)
    return counts


class EncoderVocabPruner:
    def __init__(self, config: EncoderPruneVocabConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        import torch
        from tokenizers import Tokenizer

        set_threads(self.config.num_threads)
        folder = Path(self.config.model)
        for name in ("config.json", "tokenizer.json", HEADS_FILE, LABELS_FILE):
            if not (folder / name).is_file():
                raise MissingModelError(f"config field 'model': {folder} has no {name} (an encoder training folder)")
        labels = EncoderLabels.load(folder)
        started = time.monotonic()
        tokenizer_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        if tokenizer_json.get("model", {}).get("type") != "WordPiece":
            raise DataError(
                f"{folder}/tokenizer.json: model type {tokenizer_json.get('model', {}).get('type')!r}; "
                "vocabulary pruning needs a WordPiece tokenizer"
            )
        rows, _ = read_encoder_rows(self.config.data, EncoderDataReport())
        counts = data_piece_counts(Tokenizer.from_file(str(folder / "tokenizer.json")), [r.utterance for r in rows])
        kept, groups = select_vocabulary(tokenizer_json, counts, self.config.min_count, self.config.keep_lowest_ids)
        old_vocab = tokenizer_json["model"]["vocab"]

        bert = load_bert(folder)
        old_size = bert.config.vocab_size
        if old_size != len(old_vocab):
            raise DataError(
                f"{folder}: config.json vocab_size {old_size} but tokenizer.json has {len(old_vocab)} pieces"
            )
        index = torch.tensor([old_vocab[p] for p in kept], dtype=torch.long)
        embedding = bert.get_input_embeddings()
        pruned = torch.nn.Embedding(len(kept), embedding.embedding_dim)
        pruned.weight.data.copy_(embedding.weight.data[index])
        bert.set_input_embeddings(pruned)
        bert.config.vocab_size = len(kept)
        pad = bert.config.pad_token_id
        # BERT has no output projection tied to the word embeddings (no LM head), so nothing else is indexed by id.
        if pad is not None:
            pad_piece = next((p for p, i in old_vocab.items() if i == pad), None)
            bert.config.pad_token_id = kept.index(pad_piece) if pad_piece in kept else None

        destination = self.context.run_dir / "model"
        with atomic_output_dir(destination) as staging:
            bert.save_pretrained(str(staging))
            (staging / "tokenizer.json").write_text(
                json.dumps(renumbered_tokenizer(tokenizer_json, kept), ensure_ascii=False), encoding="utf-8"
            )
            shutil.copy2(folder / HEADS_FILE, staging / HEADS_FILE)
            labels.extra = {**labels.extra, "vocab_pruned_from": old_size}
            labels.save(staging)
            Tokenizer.from_file(str(staging / "tokenizer.json"))  # a file the runtime cannot load fails here, not later
        data_tokens = sum(counts.values())
        return CommandResult(
            metrics={
                "vocab_before": old_size,
                "vocab_after": len(kept),
                **{f"kept_{k}": v for k, v in groups.items()},
                "data_utterances": len(rows),
                "data_tokens": data_tokens,
                "data_unk_tokens": counts.get(tokenizer_json["model"].get("unk_token", "[UNK]"), 0),
                "min_count": self.config.min_count,
                "keep_lowest_ids": self.config.keep_lowest_ids,
                "bytes_before": (folder / "model.safetensors").stat().st_size,
                "bytes_after": (destination / "model.safetensors").stat().st_size,
                "prune_s": round(time.monotonic() - started, 2),
            },
            outputs={"model": str(destination), "tokenizer_json": str(destination / "tokenizer.json")},
        )
