"""`init`: the student's starting model folder.

Either a tiny Qwen2-architecture decoder built from a config (nothing downloaded) over a trained tokenizer,
or a local base model folder (e.g. Qwen2.5-0.5B-Instruct) given the student's special tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError
from ..core.runtime import set_threads
from ..student.model_folder import load_tokenizer, parameter_count, require_model_folder, save_student
from ..student.text_format import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, SEP_TOKEN, SPECIAL_TOKENS, StudentTemplate

ARCHITECTURE_DEFAULTS = {
    "hidden_size": 256,
    "num_layers": 4,
    "num_heads": 4,
    "num_kv_heads": 2,
    "intermediate_size": 768,
    "max_position_embeddings": 256,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}


@dataclass
class InitConfig:
    tokenizer: str | None = None  # folder written by `tokenizer` (required without base_model)
    base_model: str | None = None  # local model folder to start from instead of a fresh tiny model
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    intermediate_size: int | None = None
    max_position_embeddings: int | None = None
    rope_theta: float | None = None
    tie_word_embeddings: bool | None = None
    seed: int = 0

    def architecture(self) -> dict:
        return {
            name: getattr(self, name) if getattr(self, name) is not None else default
            for name, default in ARCHITECTURE_DEFAULTS.items()
        }

    def validate(self) -> None:
        given = [f.name for f in fields(self) if f.name in ARCHITECTURE_DEFAULTS and getattr(self, f.name) is not None]
        if self.base_model:
            if given:
                raise ConfigError(
                    f"config field(s) {', '.join(given)} do not apply with 'base_model' (its config is used)"
                )
            return
        if not self.tokenizer:
            raise ConfigError("config field 'tokenizer' is required unless 'base_model' is given")
        require_positive(self, *[n for n in ARCHITECTURE_DEFAULTS if n != "tie_word_embeddings"])
        arch = self.architecture()
        if arch["hidden_size"] % arch["num_heads"]:
            raise ConfigError(f"hidden_size {arch['hidden_size']} is not divisible by num_heads {arch['num_heads']}")
        if arch["num_heads"] % arch["num_kv_heads"]:
            raise ConfigError(f"num_heads {arch['num_heads']} is not divisible by num_kv_heads {arch['num_kv_heads']}")
        if (arch["hidden_size"] // arch["num_heads"]) % 2:
            raise ConfigError(
                f"head dim {arch['hidden_size'] // arch['num_heads']} (hidden_size / num_heads) must be even "
                "for rotary embeddings"
            )


class ModelInitializer:
    def __init__(self, config: InitConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        set_threads(None)
        if self.config.base_model:
            model, tokenizer, added, copied = self._from_base_model(Path(self.config.base_model))
            source = {
                "base_model": str(self.config.base_model),
                "added_special_tokens": added,
                "special_token_rows_from": copied,
            }
        else:
            model, tokenizer = self._from_config()
            source = {"base_model": None, "architecture": self.config.architecture()}
        destination = self.context.run_dir / "model"
        save_student(model, tokenizer, StudentTemplate(), destination)
        bytes_on_disk = sum(p.stat().st_size for p in destination.iterdir() if p.is_file())
        return CommandResult(
            metrics={
                "parameters": parameter_count(model),
                "vocab_size": len(tokenizer),
                "num_layers": model.config.num_hidden_layers,
                "hidden_size": model.config.hidden_size,
                "bytes_on_disk": bytes_on_disk,
                **source,
            },
            outputs={"model": str(destination)},
        )

    def _from_config(self):
        import torch
        from transformers import Qwen2Config, Qwen2ForCausalLM

        folder = Path(self.config.tokenizer)
        if not folder.is_dir():
            raise ConfigError(f"tokenizer folder not found: {folder}")
        tokenizer = load_tokenizer(folder)
        vocab = tokenizer.get_vocab()
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ConfigError(f"tokenizer {folder} lacks the special tokens {missing}")
        arch = self.config.architecture()
        config = Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=arch["hidden_size"],
            num_hidden_layers=arch["num_layers"],
            num_attention_heads=arch["num_heads"],
            num_key_value_heads=arch["num_kv_heads"],
            intermediate_size=arch["intermediate_size"],
            max_position_embeddings=arch["max_position_embeddings"],
            rope_theta=arch["rope_theta"],
            tie_word_embeddings=arch["tie_word_embeddings"],
            bos_token_id=vocab[BOS_TOKEN],
            eos_token_id=vocab[EOS_TOKEN],
            pad_token_id=vocab[PAD_TOKEN],
            attention_dropout=0.0,
        )
        torch.manual_seed(self.config.seed)
        model = Qwen2ForCausalLM(config)
        return model, tokenizer

    def _from_base_model(self, folder: Path):
        import torch
        from transformers import AutoModelForCausalLM

        require_model_folder(folder, "base model")
        tokenizer = load_tokenizer(folder, "base model")
        vocab = tokenizer.get_vocab()
        # The base's own end token: the student's <|eos|> starts as a copy of it, so a base that learned to stop
        # there stops at the student's end of answer from the first step. A new token with the mean row scores
        # low everywhere: after one epoch on 1,000 examples SmolLM2 never ended an answer (0% parsed; with the
        # copy, 27%: BENCHMARKS.md, "SmolLM2-135M as the decoder student"). The other new tokens keep the mean.
        counterparts = {EOS_TOKEN: tokenizer.eos_token}
        to_add = [t for t in SPECIAL_TOKENS if t not in vocab]
        if to_add:
            tokenizer.add_special_tokens({"additional_special_tokens": to_add}, replace_extra_special_tokens=False)
        tokenizer.pad_token = PAD_TOKEN
        tokenizer.bos_token = BOS_TOKEN
        tokenizer.eos_token = EOS_TOKEN
        tokenizer.sep_token = SEP_TOKEN
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            torch.manual_seed(self.config.seed)
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        copied = self._copy_counterpart_rows(model, tokenizer, to_add, counterparts, vocab)
        return model, tokenizer, to_add, copied

    @staticmethod
    def _copy_counterpart_rows(
        model, tokenizer, added: list[str], counterparts: dict, base_vocab: dict
    ) -> dict[str, str]:
        """Each added student token whose base counterpart exists starts with its embedding (and output) row."""
        import torch

        copied: dict[str, str] = {}
        rows = [model.get_input_embeddings().weight]
        output = model.get_output_embeddings()
        if output is not None and output.weight.data_ptr() != rows[0].data_ptr():
            rows.append(output.weight)
        with torch.no_grad():
            for token in added:
                source = counterparts.get(token)
                if not source or source not in base_vocab:
                    continue
                target_id, source_id = tokenizer.convert_tokens_to_ids(token), base_vocab[source]
                for weight in rows:
                    weight[target_id] = weight[source_id]
                copied[token] = source
        return copied
