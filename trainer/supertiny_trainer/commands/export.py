"""`export`: ONNX export of the student with an explicit KV cache, checked against PyTorch.

Graph I/O (the TypeScript runtime's contract, also written to onnx_io.json):
  inputs   input_ids [b,s] int64, attention_mask [b,past+s] int64, position_ids [b,s] int64,
           past_key_values.{i}.key / .value [b, kv_heads, past, head_dim] float32 (past may be 0)
  outputs  logits [b,s,vocab] float32, present.{i}.key / .value [b, kv_heads, past+s, head_dim]
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError, TrainerError
from ..core.runtime import set_threads
from ..student.model_folder import load_student, require_model_folder
from ..student.text_format import TEMPLATE_FILE

# Above this many bytes of float32 weights the graph keeps its weights in a side file (protobuf's 2 GiB limit).
SINGLE_FILE_LIMIT_BYTES = 1_500_000_000


@dataclass
class ExportConfig:
    model: str = ""  # model folder (an encoder folder runs EncoderOnnxExporter: __main__.FAMILY_RUNNERS)
    opset: int = 18
    atol: float = 1e-3  # max abs logit difference accepted between ONNX Runtime and PyTorch
    check_batch_size: int = 2
    check_prompt_length: int = 7
    check_new_tokens: int = 3
    seed: int = 0
    num_threads: int | None = None

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("config field 'model' is required (a model folder)")
        require_positive(
            self, "opset", "atol", "check_batch_size", "check_prompt_length", "check_new_tokens", "num_threads"
        )


class ExportMismatch(TrainerError):
    kind = "internal"


def io_names(num_layers: int) -> tuple[list[str], list[str]]:
    inputs = ["input_ids", "attention_mask", "position_ids"]
    outputs = ["logits"]
    for i in range(num_layers):
        inputs += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        outputs += [f"present.{i}.key", f"present.{i}.value"]
    return inputs, outputs


def strip_debug_info(path: Path, external_data: bool) -> None:
    """Drops the exporter's per-node debug metadata (stack traces, module paths) and doc strings.

    torch's dynamo exporter records about 2 KB of it on every node: 0.6 MB on the embedded-default
    student, a quarter of its int8 file. Inference never reads it.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=external_data)
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        graph.doc_string = ""
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                graphs.extend([attr.g] if attr.HasField("g") else [])
                graphs.extend(attr.graphs)
    if external_data:
        for stale in path.parent.glob(path.name + "*"):
            stale.unlink()
        onnx.save_model(model, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save_model(model, str(path))


def _kv_cache_wrapper(model: Any) -> Any:
    """A module whose flat tensor signature is the ONNX graph's: past tensors in, present tensors out."""
    import torch
    from transformers import DynamicCache

    class KvCacheCausalLM(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.num_layers = model.config.num_hidden_layers

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(config=self.model.config)
            for i in range(self.num_layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
            present = []
            for layer in out.past_key_values.layers[: self.num_layers]:
                present += [layer.keys, layer.values]
            return (out.logits, *present)

    return KvCacheCausalLM(model).eval()


class OnnxExporter:
    def __init__(self, config: ExportConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        set_threads(self.config.num_threads)
        folder = require_model_folder(self.config.model)
        student = load_student(folder)
        model = student.model.eval()
        # The eager attention path exports to plain ONNX ops; numerically it matches sdpa within float error.
        model.config._attn_implementation = "eager"
        cfg = model.config
        num_layers, kv_heads = cfg.num_hidden_layers, cfg.num_key_value_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        input_names, output_names = io_names(num_layers)
        weight_bytes = sum(p.numel() * 4 for p in model.parameters())
        external_data = weight_bytes > SINGLE_FILE_LIMIT_BYTES

        destination = self.context.run_dir / "onnx"
        started = time.monotonic()
        with atomic_output_dir(destination) as staging:
            onnx_path = staging / "model.onnx"
            self._export(model, onnx_path, input_names, output_names, kv_heads, head_dim, external_data)
            export_s = time.monotonic() - started
            diffs = self._check(model, onnx_path, input_names, kv_heads, head_dim, student.tokenizer)
            worst = max(diffs.values())
            if not worst <= self.config.atol:
                raise ExportMismatch(
                    f"ONNX logits differ from PyTorch by {worst:.3g} (> atol {self.config.atol}): {diffs}"
                )
            for name in ("tokenizer.json", "tokenizer_config.json", TEMPLATE_FILE):
                if (folder / name).is_file():
                    shutil.copy2(folder / name, staging / name)
            io = {
                "format": "supertiny-onnx-kv-cache/1",
                "num_layers": num_layers,
                "num_attention_heads": cfg.num_attention_heads,
                "num_kv_heads": kv_heads,
                "head_dim": head_dim,
                "hidden_size": cfg.hidden_size,
                "vocab_size": int(model.get_output_embeddings().weight.shape[0]),
                "max_position_embeddings": cfg.max_position_embeddings,
                "dtype": "float32",
                "inputs": input_names,
                "outputs": output_names,
                "past_key": "past_key_values.{i}.key",
                "past_value": "past_key_values.{i}.value",
                "present_key": "present.{i}.key",
                "present_value": "present.{i}.value",
                "past_shape": ["batch", "num_kv_heads", "past", "head_dim"],
                "position_ids": "cumsum(attention_mask) - 1 over the sequence, clamped at 0 (left padding)",
                "eos_token_id": int(student.tokenizer.convert_tokens_to_ids(student.template.eos_token)),
                "pad_token_id": int(student.tokenizer.convert_tokens_to_ids(student.template.pad_token)),
                "external_data": external_data,
            }
            (staging / "onnx_io.json").write_text(json.dumps(io, indent=2) + "\n", encoding="utf-8")
        files = {p.name: p.stat().st_size for p in destination.iterdir() if p.is_file()}
        return CommandResult(
            metrics={
                **diffs,
                "max_abs_diff": worst,
                "atol": self.config.atol,
                "opset": self.config.opset,
                "export_s": round(export_s, 2),
                "bytes": sum(size for name, size in files.items() if name.startswith("model.onnx")),
            },
            outputs={
                "model": str(destination),  # the folder, like every other command's "model"
                "onnx": str(destination / "model.onnx"),
                "onnx_io": str(destination / "onnx_io.json"),
                "tokenizer": str(destination / "tokenizer.json"),
                "template": str(destination / TEMPLATE_FILE),
            },
        )

    def _export(self, model, path: Path, input_names, output_names, kv_heads, head_dim, external_data) -> None:
        import torch

        wrapper = _kv_cache_wrapper(model)
        num_layers = wrapper.num_layers
        batch, seq, past = 2, 3, 4  # example sizes above 1 so torch.export keeps the axes symbolic
        example = (
            torch.randint(0, model.config.vocab_size, (batch, seq)),
            torch.ones(batch, past + seq, dtype=torch.long),
            torch.arange(past, past + seq).expand(batch, seq).contiguous(),
            *[torch.zeros(batch, kv_heads, past, head_dim) for _ in range(2 * num_layers)],
        )
        b, s, p, t = (torch.export.Dim(n) for n in ("batch", "seq", "past", "total"))
        dynamic_shapes = (
            {0: b, 1: s},
            {0: b, 1: t},
            {0: b, 1: s},
            tuple({0: b, 2: p} for _ in range(2 * num_layers)),
        )
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                example,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                opset_version=self.config.opset,
                dynamo=True,
                external_data=external_data,
                verbose=False,
            )
        strip_debug_info(path, external_data)

    def _check(self, model, path: Path, input_names, kv_heads, head_dim, tokenizer) -> dict[str, float]:
        """Max abs logit difference on a left-padded batch, first without a past, then continuing with it."""
        import numpy as np
        import onnxruntime as ort
        import torch

        cfg = self.config
        num_layers = model.config.num_hidden_layers
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        generator = torch.Generator().manual_seed(cfg.seed)
        low = 4 if len(tokenizer) > 8 else 0
        ids = torch.randint(low, len(tokenizer), (cfg.check_batch_size, cfg.check_prompt_length), generator=generator)
        mask = torch.ones_like(ids)
        if cfg.check_batch_size > 1 and cfg.check_prompt_length > 2:
            mask[1:, : cfg.check_prompt_length // 2] = 0  # left padding
        positions = (mask.cumsum(-1) - 1).clamp(min=0)

        def run_onnx(ids, mask, positions, past):
            feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "position_ids": positions.numpy()}
            feed.update(zip(input_names[3:], past, strict=True))
            return session.run(None, feed)

        empty = [np.zeros((ids.shape[0], kv_heads, 0, head_dim), dtype=np.float32) for _ in range(2 * num_layers)]
        onnx_first = run_onnx(ids, mask, positions, empty)
        with torch.no_grad():
            torch_first = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        valid = mask.numpy().astype(bool)  # padded query rows are undefined in both
        no_past = float(np.abs(onnx_first[0] - torch_first.logits.numpy())[valid].max())

        new = torch.randint(low, len(tokenizer), (ids.shape[0], cfg.check_new_tokens), generator=generator)
        mask2 = torch.cat([mask, torch.ones_like(new)], dim=1)
        positions2 = positions[:, -1:] + torch.arange(1, cfg.check_new_tokens + 1)
        onnx_second = run_onnx(new, mask2, positions2, onnx_first[1:])
        with torch.no_grad():
            torch_second = model(
                input_ids=new,
                attention_mask=mask2,
                position_ids=positions2,
                past_key_values=torch_first.past_key_values,
                use_cache=True,
            )
        with_past = float(np.abs(onnx_second[0] - torch_second.logits.numpy()).max())
        present_shape_ok = onnx_second[1].shape == (ids.shape[0], kv_heads, mask2.shape[1], head_dim)
        if not present_shape_ok:
            raise ExportMismatch(f"present.0.key has shape {onnx_second[1].shape}, expected past+s on axis 2")
        return {"max_abs_diff_no_past": no_past, "max_abs_diff_with_past": with_past}
