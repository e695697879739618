"""`export` for an encoder folder: one ONNX graph, weights inside (ENCODER_FORMAT.md).

inputs  input_ids, attention_mask, token_type_ids: int64 [batch, seq]
outputs intent_logits float32 [batch, n_intents], tag_logits float32 [batch, seq, n_tags]
        and, only when the student has value heads, value_logits float32 [batch, n_values]
Checked against PyTorch on a padded batch of fixed sentences; tokenizer.json and supertiny.json go beside it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.runtime import set_threads
from ..student.encoder import LABELS_FILE, load_encoder_student
from .encoder_convert import CHECK_SENTENCES
from .encoder_predict import encode_batch, output_names
from .export import ExportMismatch, strip_debug_info

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUT_NAMES = ["intent_logits", "tag_logits"]


def strip_value_info(path: Path) -> None:
    """Drops the exporter's stored intermediate shapes: onnxruntime's quantizer re-infers them and trips on
    the symbolic ones it left (and inference never reads them)."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    onnx.save_model(model, str(path))


def scaled_diff(onnx_logits: Any, torch_logits: Any) -> float:
    """The largest difference between two logit arrays, relative to the logit's size where it is above 1: float32
    keeps about 7 digits, so a model with large logits (e.g. one trained at a high learning rate) differs by more
    than a fixed tolerance in absolute terms while agreeing to the same digits."""
    import numpy as np

    return float((np.abs(onnx_logits - torch_logits) / np.maximum(1.0, np.abs(torch_logits))).max(initial=0.0))


class EncoderOnnxExporter:
    """Called by `export` when the model folder's supertiny.json says family "encoder"."""

    def __init__(self, config: Any, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        set_threads(self.config.num_threads)
        folder = Path(self.config.model)
        student = load_encoder_student(folder)
        model = student.model.eval()
        # The eager attention path exports to plain ONNX ops; numerically it matches sdpa within float error.
        model.bert.config._attn_implementation = "eager"
        destination = self.context.run_dir / "onnx"
        started = time.monotonic()
        with atomic_output_dir(destination) as staging:
            onnx_path = staging / "model.onnx"
            self._export(model, onnx_path, student.tokenizer, student.labels)
            export_s = time.monotonic() - started
            diffs, worst = self._check(model, onnx_path, student.tokenizer, student.labels)
            if not worst <= self.config.atol:
                raise ExportMismatch(
                    f"ONNX logits differ from PyTorch by {worst:.3g} (relative above 1; > atol {self.config.atol}): "
                    f"{diffs}"
                )
            for name in ("tokenizer.json", LABELS_FILE):
                shutil.copy2(folder / name, staging / name)
        return CommandResult(
            metrics={
                **diffs,
                "max_abs_diff": max(diffs.values()),
                "max_scaled_diff": worst,
                "atol": self.config.atol,
                "opset": self.config.opset,
                "export_s": round(export_s, 2),
                "bytes": (destination / "model.onnx").stat().st_size,
                "family": "encoder",
            },
            outputs={
                "model": str(destination),
                "onnx": str(destination / "model.onnx"),
                "tokenizer": str(destination / "tokenizer.json"),
                "labels": str(destination / LABELS_FILE),
            },
        )

    def _export(self, model: Any, path: Path, tokenizer: Any, labels: Any) -> None:
        import torch

        pad_id = tokenizer.token_to_id("[PAD]") or 0
        feed, _ = encode_batch(tokenizer, CHECK_SENTENCES[:2], pad_id)  # batch and seq above 1: symbolic axes
        example = tuple(torch.from_numpy(feed[name]) for name in INPUT_NAMES)
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
        dynamic_shapes = tuple({0: batch, 1: seq} for _ in INPUT_NAMES)
        with torch.no_grad():
            torch.onnx.export(
                model,
                example,
                str(path),
                input_names=INPUT_NAMES,
                output_names=output_names(labels),
                dynamic_shapes=dynamic_shapes,
                opset_version=self.config.opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        strip_debug_info(path, external_data=False)
        strip_value_info(path)
        for stale in path.parent.glob(path.name + ".data"):
            raise ExportMismatch(f"the exporter wrote external weights ({stale.name}); the format needs one file")

    def _check(self, model: Any, path: Path, tokenizer: Any, labels: Any) -> tuple[dict[str, float], float]:
        """Max abs logit differences on a padded batch (padding positions excluded for tags), and the largest
        difference scaled by the logit's size (scaled_diff), which the check compares with atol."""
        import numpy as np
        import onnxruntime as ort
        import torch

        pad_id = tokenizer.token_to_id("[PAD]") or 0
        sentences = (CHECK_SENTENCES * self.config.check_batch_size)[: max(self.config.check_batch_size, 2)]
        feed, _ = encode_batch(tokenizer, sentences, pad_id)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        onnx_outputs = session.run(output_names(labels), feed)
        with torch.no_grad():
            outputs = model(*(torch.from_numpy(feed[name]) for name in INPUT_NAMES))
        real = feed["attention_mask"].astype(bool)
        pairs = {
            "intent": (onnx_outputs[0], outputs[0].numpy()),
            "tags": (onnx_outputs[1][real], outputs[1].numpy()[real]),
        }
        if len(outputs) > 2:
            pairs["values"] = (onnx_outputs[2], outputs[2].numpy())
        diffs = {f"max_abs_diff_{name}": float(np.abs(a - b).max()) for name, (a, b) in pairs.items()}
        return diffs, max(scaled_diff(a, b) for a, b in pairs.values())
