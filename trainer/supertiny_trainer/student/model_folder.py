"""A decoder student's model folder: config.json, model.safetensors, tokenizer files and supertiny.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.errors import ConfigError, MissingModelError
from .text_format import SPECIAL_TOKENS, StudentTemplate


@dataclass
class DecoderStudent:
    """A loaded decoder student (a Hugging Face causal LM); the encoder's is EncoderStudentFolder (encoder.py)."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers tokenizer
    template: StudentTemplate
    path: Path


def require_model_folder(path: str | Path, role: str = "model") -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise MissingModelError(f"{role} folder not found: {folder}")
    if not (folder / "config.json").is_file():
        raise MissingModelError(f"{role} folder {folder} has no config.json")
    return folder


def load_tokenizer(path: str | Path, role: str = "tokenizer") -> Any:
    from transformers import AutoTokenizer

    folder = Path(path)
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        raise MissingModelError(f"{role} folder {folder} has no tokenizer.json")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return tokenizer


def check_student_tokens(tokenizer: Any, template: StudentTemplate, where: Path) -> None:
    vocab = tokenizer.get_vocab()
    missing = [
        t
        for t in {template.prompt_prefix, template.prompt_suffix, template.eos_token, template.pad_token}
        if t and t not in vocab
    ]
    if missing:
        raise ConfigError(f"the tokenizer in {where} lacks the student tokens {missing}; run `init` on it first")


def load_student(path: str | Path, role: str = "model", device: str | None = None) -> DecoderStudent:
    """Load model, tokenizer and template in float32; a missing folder is a missing_model error."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = require_model_folder(path, role)
    template = StudentTemplate.load(folder)
    tokenizer = load_tokenizer(folder, role)
    check_student_tokens(tokenizer, template, folder)
    tokenizer.pad_token = template.pad_token
    tokenizer.eos_token = template.eos_token
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    except OSError as e:
        raise MissingModelError(f"{role} folder {folder} has no loadable weights: {e}") from e
    if device:
        model.to(device)
    return DecoderStudent(model, tokenizer, template, folder)


def save_student(model: Any, tokenizer: Any, template: StudentTemplate, destination: str | Path) -> Path:
    """Write the folder atomically; generation defaults stop at the template's eos token."""
    destination = Path(destination)
    eos_id = tokenizer.convert_tokens_to_ids(template.eos_token)
    pad_id = tokenizer.convert_tokens_to_ids(template.pad_token)
    model.config.eos_token_id = eos_id
    model.config.pad_token_id = pad_id
    if model.generation_config is not None:
        model.generation_config.eos_token_id = eos_id
        model.generation_config.pad_token_id = pad_id
        model.generation_config.do_sample = False
    with atomic_output_dir(destination) as staging:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        template.save(staging)
    return destination


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "SPECIAL_TOKENS",
    "DecoderStudent",
    "check_student_tokens",
    "load_student",
    "load_tokenizer",
    "parameter_count",
    "require_model_folder",
    "save_student",
]
