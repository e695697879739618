"""`tokenizer`: a byte-level BPE tokenizer trained on the task's text, with the student's special tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError
from ..student.datasets import load_tokenizer_texts
from ..student.text_format import (
    BOS_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    SEP_TOKEN,
    SPECIAL_TOKENS,
    StudentTemplate,
    call_tokens,
)


@dataclass
class TokenizerConfig:
    data: str = ""  # jsonl of {"text"} / {"utterance"} lines, or an sft.jsonl
    vocab_size: int = 2048
    min_frequency: int = 2
    model_max_length: int = 256
    # A space as its own token gives a word the same tokens in the utterance (" vegas") and inside a quoted
    # slot value ("vegas"). On MASSIVE it cost 25% more tokens and did not raise dev accuracy, so it is off.
    isolate_spaces: bool = False
    # Function names with their "(" and slot names with their '="' (seen in the sft targets at least
    # min_frequency times) become single tokens, within vocab_size. On MASSIVE: 10.7 -> ~6 tokens per call.
    call_tokens: bool = True

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("config field 'data' is required (a jsonl file)")
        require_positive(self, "vocab_size", "min_frequency", "model_max_length")
        if self.vocab_size < 256 + len(SPECIAL_TOKENS):
            raise ConfigError(
                f"config field 'vocab_size' must be at least {256 + len(SPECIAL_TOKENS)} (bytes + special tokens)"
            )


class TokenizerTrainer:
    def __init__(self, config: TokenizerConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

        texts, calls, report = load_tokenizer_texts(self.config.data)
        pieces = call_tokens(calls, self.config.min_frequency) if self.config.call_tokens else []
        bpe_size = self.config.vocab_size - len(pieces)
        if bpe_size < 256 + len(SPECIAL_TOKENS):
            raise ConfigError(
                f"config field 'vocab_size' ({self.config.vocab_size}) leaves no room for the byte alphabet next to "
                f"{len(pieces)} call tokens; raise it to at least {256 + len(SPECIAL_TOKENS) + len(pieces)} "
                "or set call_tokens false"
            )
        tokenizer = Tokenizer(models.BPE())
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.pre_tokenizer = (
            pre_tokenizers.Sequence([pre_tokenizers.Split(" ", behavior="isolated"), byte_level])
            if self.config.isolate_spaces
            else byte_level
        )
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=bpe_size,
            min_frequency=self.config.min_frequency,
            special_tokens=SPECIAL_TOKENS,  # ids 0..3 in this order: pad, bos, sep, eos
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        # Added (not special) tokens: matched in the raw text before byte-level splitting, kept by
        # decode(skip_special_tokens=True), and seen by the runtime as their UTF-8 bytes.
        tokenizer.add_tokens([AddedToken(piece, normalized=False, special=False) for piece in pieces])

        from transformers import PreTrainedTokenizerFast

        wrapped = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            bos_token=BOS_TOKEN,
            eos_token=EOS_TOKEN,
            pad_token=PAD_TOKEN,
            sep_token=SEP_TOKEN,
            model_max_length=self.config.model_max_length,
        )
        destination = self.context.run_dir / "tokenizer"
        with atomic_output_dir(destination) as staging:
            wrapped.save_pretrained(str(staging))
            StudentTemplate().save(staging)

        token_count = sum(len(e.ids) for e in tokenizer.encode_batch(texts))
        return CommandResult(
            metrics={
                "vocab_size": tokenizer.get_vocab_size(),
                "call_tokens": len(pieces),
                "texts": len(texts),
                "mean_tokens_per_text": round(token_count / len(texts), 2),
                **report.as_metrics("samples"),
            },
            outputs={
                "tokenizer": str(destination),
                "tokenizer_json": str(Path(destination) / "tokenizer.json"),
            },
        )
