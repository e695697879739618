"""`quantize` for an exported encoder folder: int8 dynamic quantization of the MatMul (and embedding Gather)
weights, or int4 (the feed-forward MatMuls and embeddings in 4-bit blocks, the rest as int8), checked against the
float graph on fixed sentences (intent and tag agreement, logit drift)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.errors import ConfigError, MissingModelError
from ..student.encoder import EncoderLabels, load_encoder_tokenizer
from .encoder_convert import CHECK_SENTENCES
from .encoder_predict import encode_batch, output_names
from .quantize import four_bit_weights, model_folder, size_metrics


class EncoderQuantizer:
    """`quantize` when the folder's supertiny.json says family "encoder" (__main__.FAMILY_RUNNERS): int8, or int4."""

    def __init__(self, config: Any, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        folder = model_folder(self.config.model)
        if self.config.int8_method == "blocks":
            raise ConfigError(
                "config field 'int8_method' 'blocks' is the decoder's; the encoder's int8 is 'dynamic' (its int4 keeps "
                "attention and heads in dynamic int8)"
            )
        self.config.family_defaults(per_channel=True, embedding_block_size=128, symmetric=True, int8_method="dynamic")
        source_model = folder / "model.onnx"
        if not source_model.is_file():
            raise MissingModelError(f"no model.onnx in {folder} (run `export` on the encoder folder first)")
        scheme = self.config.scheme
        destination = self.context.run_dir / f"onnx-{scheme}"
        started = time.monotonic()
        with atomic_output_dir(destination) as staging:
            target = staging / "model.onnx"
            weight_type = QuantType.QInt8 if self.config.weight_type == "int8" else QuantType.QUInt8
            if scheme == "int4":
                four_bit = staging / "model.int4-stage.onnx"
                feed_forward = self._four_bit(source_model, four_bit)
                # The rest (attention and head MatMuls) as in "int8"; the 4-bit nodes are left as they are.
                quantize_dynamic(
                    str(four_bit),
                    str(target),
                    weight_type=weight_type,
                    per_channel=self.config.per_channel,
                    reduce_range=self.config.reduce_range,
                    op_types_to_quantize=["MatMul"],
                    extra_options={"DefaultTensorType": 1},  # FLOAT: shape inference cannot type the contrib ops
                )
                four_bit.unlink()
            else:
                feed_forward = 0
                quantize_dynamic(
                    str(source_model),
                    str(target),
                    weight_type=weight_type,
                    per_channel=self.config.per_channel,
                    reduce_range=self.config.reduce_range,
                    op_types_to_quantize=["MatMul", "Gather"] if self.config.quantize_embeddings else ["MatMul"],
                )
            quantize_s = time.monotonic() - started
            check = self._check(folder, source_model, target)
            for name in folder.iterdir():
                if name.is_file() and not name.name.startswith("model.onnx"):
                    shutil.copy2(name, staging / name.name)
        return CommandResult(
            metrics={
                **size_metrics(
                    self.config, source_model.stat().st_size, (destination / "model.onnx").stat().st_size, quantize_s
                ),
                "scheme": scheme,
                **(
                    {
                        "four_bit_matmuls": feed_forward,
                        "block_size": self.config.block_size,
                        "embedding_block_size": self.config.embedding_block_size,
                        "symmetric": self.config.symmetric,
                    }
                    if scheme == "int4"
                    else {}
                ),
                "family": "encoder",
                **check,
            },
            outputs={"model": str(destination), "onnx": str(destination / "model.onnx")},
        )

    def _four_bit(self, source: Path, target: Path) -> int:
        """4-bit block weights (symmetric unless the config says otherwise) for the feed-forward MatMuls and the
        embedding Gathers; returns how many MatMuls. The feed-forward weights are the MatMul weights that have the
        widest dimension of all (the intermediate size: 1536 in MiniLM); attention and the heads stay for the int8
        pass."""
        import onnx

        model = onnx.load(str(source))
        dims = {i.name: tuple(i.dims) for i in model.graph.initializer if len(i.dims) == 2}
        matmuls = [(n.name, dims[n.input[1]]) for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in dims]
        if not matmuls:
            raise RuntimeError("the exported encoder has no MatMul with a constant weight to quantize")
        widest = max(max(shape) for _, shape in matmuls)
        feed_forward = {name for name, shape in matmuls if widest in shape}
        quantized = four_bit_weights(
            model,
            self.config.block_size,
            self.config.embedding_block_size,
            exclude=[name for name, _ in matmuls if name not in feed_forward],
            symmetric=self.config.symmetric,
        )
        quantized.save_model_to_file(str(target), False)
        return len(feed_forward)

    def _check(self, folder: Path, float_model: Path, int8_model: Path) -> dict:
        import numpy as np
        import onnxruntime as ort

        labels = EncoderLabels.load(folder)
        tokenizer = load_encoder_tokenizer(folder, labels.max_length)
        sentences = (CHECK_SENTENCES * self.config.check_batch_size)[: max(self.config.check_batch_size, 2)]
        feed, _ = encode_batch(tokenizer, sentences, tokenizer.token_to_id("[PAD]") or 0)
        real = feed["attention_mask"].astype(bool)
        outputs = {}
        for label, path in (("float", float_model), ("int8", int8_model)):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            result = session.run(output_names(labels), feed)
            intents, tags = result[0], result[1]
            if (
                intents.shape != (len(sentences), len(labels.intents))
                or tags.shape[-1] != len(labels.tags)
                or (labels.value_heads and result[2].shape != (len(sentences), labels.num_values))
            ):
                raise RuntimeError(f"{label} model returned logits of shapes {[r.shape for r in result]}")
            outputs[label] = result
        (fi, ft, *fv), (qi, qt, *qv) = outputs["float"], outputs["int8"]
        if not all(np.isfinite(q).all() for q in (qi, qt, *qv)):
            raise RuntimeError("the int8 model produced non-finite logits")
        check = {
            "check_max_abs_diff": float(
                max(
                    np.abs(fi - qi).max(),
                    np.abs(ft - qt)[real].max(),
                    *(np.abs(f - q).max() for f, q in zip(fv, qv, strict=True)),
                )
            ),
            "check_intent_agreement": round(float((fi.argmax(-1) == qi.argmax(-1)).mean()), 4),
            "check_tag_agreement": round(float((ft.argmax(-1) == qt.argmax(-1))[real].mean()), 4),
        }
        if fv:
            same = [(fv[0][:, a:b].argmax(-1) == qv[0][:, a:b].argmax(-1)).mean() for a, b in labels.value_slices()]
            check["check_value_agreement"] = round(float(np.mean(same)), 4)
        return check
