"""`quantize`: weight quantization of an exported ONNX decoder student, checked against the float graph.

"int8": for the decoder by default (`int8_method` "blocks") every MatMul with a constant weight becomes an 8-bit
MatMulNBits in blocks of `block_size` with a zero point per block, the embedding Gather a 4-bit GatherBlockQuantized
as in int4; with "dynamic" (the encoder's, EncoderQuantizer) onnxruntime's quantize_dynamic: weights of MatMul (and,
by default, the embedding Gather) become int8, activations are quantized on the fly at run time. "int4": every
MatMul with a constant weight (attention, MLP and the LM head) becomes a 4-bit MatMulNBits in blocks of
`block_size` (with a zero point per block by default, activations int8 inside the kernel) and the embedding Gather a
4-bit GatherBlockQuantized. The result must load and run with the same I/O; its logits are compared with float32.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.checkpoints import atomic_output_dir
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError, MissingModelError


@dataclass
class QuantizeConfig:
    model: str = ""  # folder written by `export` (or its model.onnx)
    weight_type: str = "int8"  # "int8" or "uint8"
    # One scale per output channel of a MatMul weight, not one per tensor. None: the family's default, True for
    # the encoder (over 3 seeds of the embedded default: int8 +0.37 test exact-match points, BENCHMARKS.md),
    # False for the decoder (not measured there).
    per_channel: bool | None = None
    reduce_range: bool = False
    quantize_embeddings: bool = True  # also quantize the token embedding Gather (tied to the LM head)
    # "int8": dynamic int8 for every MatMul (and the embeddings). "int4": 4-bit block-quantized weights
    # (MatMulNBits, GatherBlockQuantized) for the embedding tables and, in the encoder, the feed-forward MatMuls (its
    # other MatMuls int8: about 0.63x the bytes of "int8"), in the decoder every MatMul (0.68x on SmolLM2-135M).
    scheme: str = "int8"
    # int4: weights per scale in the feed-forward MatMuls (a power of two, >= 16). 32, not 64: over 3 seeds of the
    # embedded default the int4 model lost 0.25 dev exact-match points to the float one instead of 0.73, for
    # 0.44 MB more (14.54 MB; BENCHMARKS.md).
    block_size: int = 32
    # int4: values per scale in the embedding tables. None: the family's default, 128 for the encoder, 256 for the
    # decoder (its answers within noise of 128 on the SmolLM2 router student; 0.14 MB less, BENCHMARKS.md).
    embedding_block_size: int | None = None
    # int4: symmetric 4-bit MatMul weights (no zero point) or a zero point per block. None: the family's default,
    # symmetric for the encoder (a zero point measured no better on the embedded default: dev -0.69, test +0.2
    # exact-match points, 0.11 MB more), a zero point for the decoder: on the SmolLM2 router student +2.0 test /
    # +2.4 dev exact-match points over symmetric (102 and 62 answers changed; 1.8 MB more; BENCHMARKS.md).
    symmetric: bool | None = None
    # int8: "blocks" (weight-only 8-bit blocks of block_size, MatMulNBits) or "dynamic" (quantize_dynamic: per-tensor
    # or per-channel weights, activations quantized per call). None: the family's default, "blocks" for the decoder
    # (on the SmolLM2 router student 10 of 500 dev answers changed against 54 for int4, where "dynamic" lost 2.0 dev
    # points; BENCHMARKS.md), "dynamic" for the encoder (the only one it has).
    int8_method: str | None = None
    check_batch_size: int = 2
    check_prompt_length: int = 8
    seed: int = 0

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("config field 'model' is required (an exported ONNX folder)")
        if self.weight_type not in ("int8", "uint8"):
            raise ConfigError(f"config field 'weight_type' must be 'int8' or 'uint8', got {self.weight_type!r}")
        if self.scheme not in ("int8", "int4"):
            raise ConfigError(f"config field 'scheme' must be 'int8' or 'int4', got {self.scheme!r}")
        for field in ("block_size", "embedding_block_size"):
            value = getattr(self, field)
            if value is None and field == "embedding_block_size":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 16 or value & (value - 1):
                raise ConfigError(f"config field '{field}' must be a power of two >= 16, got {value}")
        if self.symmetric is not None and not isinstance(self.symmetric, bool):
            raise ConfigError(f"config field 'symmetric' must be true, false or null, got {self.symmetric!r}")
        if self.int8_method not in (None, "blocks", "dynamic"):
            raise ConfigError(
                f"config field 'int8_method' must be 'blocks', 'dynamic' or null, got {self.int8_method!r}"
            )
        require_positive(self, "check_batch_size", "check_prompt_length")

    def family_defaults(
        self, *, per_channel: bool, embedding_block_size: int, symmetric: bool, int8_method: str
    ) -> None:
        """Fills the fields left None with the student family's measured defaults (the result reports them)."""
        if self.int8_method is None:
            self.int8_method = int8_method
        if self.per_channel is None:
            self.per_channel = per_channel
        if self.embedding_block_size is None:
            self.embedding_block_size = embedding_block_size
        if self.symmetric is None:
            self.symmetric = symmetric


def model_folder(model: str) -> Path:
    """The folder `model` names: itself, or the folder of a model.onnx file."""
    source = Path(model)
    return source.parent if source.suffix == ".onnx" else source


def size_metrics(config: QuantizeConfig, bytes_before: int, bytes_after: int, quantize_s: float) -> dict:
    """The metrics every quantization reports: sizes before and after, time, and the weight settings."""
    return {
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
        "compression": round(bytes_before / max(bytes_after, 1), 3),
        "quantize_s": round(quantize_s, 2),
        "weight_type": config.weight_type,
        "per_channel": config.per_channel,
    }


def fold_constant_transposes(model) -> int:
    """Replaces Transpose nodes of initializers by the transposed initializer; returns how many.

    torch's exporter writes a tied LM head as MatMul(hidden, Transpose(embedding)): the 4-bit quantizer takes
    only a constant weight, so the LM head gets its own (transposed) copy, quantized apart from the embedding.
    """
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    folded = 0
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.input[0] not in initializers:
            continue
        weight = numpy_helper.to_array(initializers[node.input[0]])
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight.transpose(perm)), node.output[0]))
        graph.node.remove(node)
        folded += 1
    return folded


def four_bit_weights(
    model, block_size: int, embedding_block_size: int, exclude: list[str], symmetric: bool = True, bits: int = 4
):
    """Block weights: MatMuls with a constant weight (but those named in `exclude`) become `bits`-bit (4 or 8)
    MatMulNBits (int8 activations inside the kernel: accuracy_level 4; a zero point per block unless `symmetric`),
    embedding Gathers a symmetric 4-bit GatherBlockQuantized. Returns onnxruntime's ONNXModel (its
    save_model_to_file sorts the nodes topologically)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
    from onnxruntime.quantization.quant_utils import QuantFormat

    axes = (("MatMul", 0), ("Gather", 1))
    matmul_config = DefaultWeightOnlyQuantConfig(
        block_size=block_size,
        is_symmetric=symmetric,
        accuracy_level=4,
        quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",),
        quant_axes=axes,
        bits=bits,
    )
    quantizer = MatMulNBitsQuantizer(model, algo_config=matmul_config, nodes_to_exclude=exclude)
    quantizer.process()
    gather_config = DefaultWeightOnlyQuantConfig(
        block_size=embedding_block_size,
        is_symmetric=True,
        quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("Gather",),
        quant_axes=axes,
    )
    quantizer = MatMulNBitsQuantizer(quantizer.model.model, algo_config=gather_config)
    quantizer.process()
    return quantizer.model


def _onnx_files(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name.startswith("model.onnx"))


class Quantizer:
    """`quantize`: a decoder folder to int8 or int4 (an encoder folder runs EncoderQuantizer)."""

    def __init__(self, config: QuantizeConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        folder = model_folder(self.config.model)
        self.config.family_defaults(per_channel=False, embedding_block_size=256, symmetric=False, int8_method="blocks")
        source_model = folder / "model.onnx"
        if not source_model.is_file():
            raise MissingModelError(f"no model.onnx in {folder} (run `export` first)")
        io_path = folder / "onnx_io.json"
        if not io_path.is_file():
            raise MissingModelError(f"no onnx_io.json in {folder} (run `export` first)")
        io = json.loads(io_path.read_text(encoding="utf-8"))

        scheme = self.config.scheme
        destination = self.context.run_dir / f"onnx-{scheme}"
        started = time.monotonic()
        with atomic_output_dir(destination) as staging:
            target = staging / "model.onnx"
            if scheme == "int4" or self.config.int8_method == "blocks":
                bits = 4 if scheme == "int4" else 8
                scheme_metrics = self._block_weights(source_model, target, bits)
                io.update(
                    {
                        "weights": scheme,
                        "quantization": "weight-only",
                        "block_size": self.config.block_size,
                        "embedding_block_size": self.config.embedding_block_size,
                        "symmetric": self.config.symmetric,
                        "external_data": False,
                    }
                )
            else:
                scheme_metrics = {"int8_method": "dynamic"}
                quantize_dynamic(
                    str(source_model),
                    str(target),
                    weight_type=QuantType.QInt8 if self.config.weight_type == "int8" else QuantType.QUInt8,
                    per_channel=self.config.per_channel,
                    reduce_range=self.config.reduce_range,
                    op_types_to_quantize=["MatMul", "Gather"] if self.config.quantize_embeddings else ["MatMul"],
                    use_external_data_format=bool(io.get("external_data")),
                )
                io.update(
                    {
                        "weights": self.config.weight_type,
                        "quantization": "dynamic",
                        "per_channel": self.config.per_channel,
                    }
                )
            quantize_s = time.monotonic() - started
            check = self._check(source_model, target, io)
            for name in folder.iterdir():
                if name.is_file() and not name.name.startswith("model.onnx") and name.name != "onnx_io.json":
                    shutil.copy2(name, staging / name.name)
            (staging / "onnx_io.json").write_text(json.dumps(io, indent=2) + "\n", encoding="utf-8")

        return CommandResult(
            metrics={
                **size_metrics(self.config, _onnx_files(folder), _onnx_files(destination), quantize_s),
                "scheme": scheme,
                **scheme_metrics,
                **check,
            },
            outputs={
                "model": str(destination),  # the folder, like every other command's "model"
                "onnx": str(destination / "model.onnx"),
                "onnx_io": str(destination / "onnx_io.json"),
            },
        )

    def _block_weights(self, source: Path, target: Path, bits: int) -> dict:
        """Every constant-weight MatMul (the tied LM head given its own copy) in `bits`-bit blocks and the embeddings
        in 4 bits; the result is one file (block weights of a model whose float graph needed a side file fit in one)."""
        import onnx

        model = onnx.load(str(source))
        folded = fold_constant_transposes(model)
        quantized = four_bit_weights(
            model,
            self.config.block_size,
            self.config.embedding_block_size,
            exclude=[],
            symmetric=self.config.symmetric,
            bits=bits,
        )
        blocked = sum(1 for node in quantized.model.graph.node if node.op_type == "MatMulNBits")
        if blocked == 0:
            raise RuntimeError("the exported decoder has no MatMul with a constant weight to quantize")
        quantized.save_model_to_file(str(target), False)
        return {
            **({"four_bit_matmuls": blocked} if bits == 4 else {"int8_method": "blocks", "eight_bit_matmuls": blocked}),
            "folded_transposes": folded,
            "block_size": self.config.block_size,
            "embedding_block_size": self.config.embedding_block_size,
            "symmetric": self.config.symmetric,
        }

    def _check(self, float_model: Path, int8_model: Path, io: dict) -> dict:
        """Both graphs run on the same prompt batch; report logit drift and next-token agreement."""
        import numpy as np
        import onnxruntime as ort

        rng = np.random.default_rng(self.config.seed)
        batch, length = self.config.check_batch_size, self.config.check_prompt_length
        low = 4 if io["vocab_size"] > 8 else 0
        feed = {
            "input_ids": rng.integers(low, io["vocab_size"], size=(batch, length), dtype=np.int64),
            "attention_mask": np.ones((batch, length), dtype=np.int64),
            "position_ids": np.tile(np.arange(length, dtype=np.int64), (batch, 1)),
        }
        for name in io["inputs"][3:]:
            feed[name] = np.zeros((batch, io["num_kv_heads"], 0, io["head_dim"]), dtype=np.float32)
        logits = {}
        for label, path in (("float", float_model), ("int8", int8_model)):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            outputs = session.run(None, feed)
            if outputs[0].shape != (batch, length, io["vocab_size"]):
                raise RuntimeError(f"{label} model returned logits of shape {outputs[0].shape}")
            logits[label] = outputs[0]
        if not np.isfinite(logits["int8"]).all():
            raise RuntimeError("the int8 model produced non-finite logits")
        agreement = float((logits["float"].argmax(-1) == logits["int8"].argmax(-1)).mean())
        return {
            "check_max_abs_diff": float(np.abs(logits["float"] - logits["int8"]).max()),
            "check_top1_agreement": round(agreement, 4),
        }
