"""decoder-qat: a decoder student trained into the 4-bit grid that `quantize` int4 puts it on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_harness import run_cli, run_cli_until_checkpoint, run_in_process

# Pure distillation from the float model (alpha 0): the tiny sft model has learnt its 24 samples by heart, and the
# cross-entropy term would pull it away from itself (measured: the int4 graph's KL to the float model 0.00073 ->
# 0.00023 with alpha 0 at 3e-4, -> 0.0013 with alpha 0.5).
QAT = {
    "alpha": 0.0,
    "max_steps": 40,
    "batch_size": 8,
    "learning_rate": 3e-4,
    "top_k": 16,
    "logging_steps": 10,
    "save_steps": 20,
    "num_threads": 1,
}


def _config(tiny) -> dict:
    return {"model": str(tiny.sft_model), "data": str(tiny.sft_data), **QAT}


@pytest.mark.parametrize("symmetric", [False, True])
def test_block_rounding_is_onnxruntimes_matmul_rounding(symmetric):
    import torch
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        DefaultWeightOnlyQuantizer,
    )
    from onnxruntime.quantization.quant_utils import QuantFormat

    from supertiny_trainer.student.fake_quant import block_quantized

    rng = np.random.default_rng(0)
    k, n, block = 96, 10, 32
    weight = (rng.standard_normal((k, n)) * 0.05 + 0.01).astype(np.float32)  # ONNX layout [k, n]
    weight[:32, 3] = np.abs(weight[:32, 3])  # a block with no negative weight: its range still holds 0
    weight[32:64, 4] = 0.0  # an all-zero block
    quantizer = DefaultWeightOnlyQuantizer(
        DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, quant_format=QuantFormat.QOperator)
    )
    packed, scales, zero_points = quantizer.qbits_block_quant(weight.copy())
    codes = np.stack([packed & 0xF, packed >> 4], -1).reshape(n, k // block, block).astype(np.float32)
    if symmetric:
        zero = np.full((n, k // block), 8.0)
    else:
        zero = np.stack([zero_points & 0xF, zero_points >> 4], -1).reshape(n, -1)[:, : k // block].astype(np.float32)
    onnxruntime_weights = ((codes - zero[..., None]) * scales[..., None]).reshape(n, k).T

    ours = block_quantized(torch.tensor(weight.T), block, symmetric).numpy().T  # torch layout [n, k]
    np.testing.assert_allclose(ours, onnxruntime_weights, rtol=0, atol=1e-7)
    assert np.abs(ours - weight).max() > 1e-3  # it did round


def test_embedding_rounding_is_onnxruntimes_gather_rounding_with_a_partial_block():
    import torch
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantizer

    from supertiny_trainer.student.fake_quant import block_quantized

    rng = np.random.default_rng(1)
    table = rng.standard_normal((7, 80)).astype(np.float32)  # rows of 80: blocks of 32, 32 and 16
    codes, scales, _ = DefaultWeightOnlyQuantizer.quantize_ndarray(table, 1, 32, True)
    values = np.stack([codes & 0xF, codes >> 4], -1).reshape(-1).astype(np.int8)
    values = np.where(values > 7, values - 16, values).reshape(7, 80).astype(np.float32)  # signed 4-bit codes
    expanded = np.repeat(scales, 32, axis=1)[:, :80]
    onnxruntime_table = values * expanded

    ours = block_quantized(torch.tensor(table), 32, symmetric=True).numpy()
    np.testing.assert_allclose(ours, onnxruntime_table, rtol=0, atol=1e-6)


def _answer_kl(teacher_logits: np.ndarray, logits: np.ndarray) -> float:
    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    p, q = log_softmax(teacher_logits), log_softmax(logits)
    return float((np.exp(p) * (p - q)).sum(-1).mean())


def _int4_answer_kl(tiny, folder: Path, tmp_path: Path, samples) -> tuple[float, float]:
    """Exports and quantizes `folder` to int4 as the pipeline does; returns the mean KL from the float sft model
    to the int4 graph over answer positions, and the largest logit gap between the int4 graph and `folder` run in
    PyTorch with the same fake rounding."""
    import onnxruntime as ort
    import torch

    from supertiny_trainer.student.fake_quant import add_fake_quantization
    from supertiny_trainer.student.model_folder import load_student

    exported = run_cli("export", {"model": str(folder), "num_threads": 1}, tmp_path / "export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    quantized = run_cli("quantize", {"model": exported.done["outputs"]["model"], "scheme": "int4"}, tmp_path / "q4")
    assert quantized.returncode == 0, quantized.stderr[-3000:]
    q4 = Path(quantized.done["outputs"]["model"])
    io = json.loads((q4 / "onnx_io.json").read_text())
    session = ort.InferenceSession(str(q4 / "model.onnx"), providers=["CPUExecutionProvider"])
    teacher, rounded = load_student(tiny.sft_model), load_student(folder)
    add_fake_quantization(rounded.model, block_size=32, embedding_block_size=256, symmetric=False)
    t = teacher.template
    total, gap = 0.0, 0.0
    for s in samples:
        prompt = len(teacher.tokenizer(t.prompt(s.utterance), add_special_tokens=False)["input_ids"])
        ids = teacher.tokenizer(t.prompt(s.utterance) + t.target(s.call), add_special_tokens=False)["input_ids"]
        feed = {
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
            "position_ids": np.arange(len(ids), dtype=np.int64)[None],
        }
        for name in io["inputs"][3:]:
            feed[name] = np.zeros((1, io["num_kv_heads"], 0, io["head_dim"]), dtype=np.float32)
        graph = session.run(None, feed)[0][0, prompt - 1 : -1]
        with torch.no_grad():
            reference = teacher.model(torch.tensor([ids])).logits[0, prompt - 1 : -1].numpy()
            emulated = rounded.model(torch.tensor([ids])).logits[0, prompt - 1 : -1].numpy()
        total += _answer_kl(reference, graph)
        gap = max(gap, float(np.abs(graph - emulated).max()))
    return total / len(samples), gap


def test_decoder_qat_brings_the_int4_graph_closer_to_the_float_model(tiny, tmp_path):
    from supertiny_trainer.student.datasets import load_sft_samples

    run = run_cli("decoder-qat", _config(tiny), tmp_path / "qat")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.done["metrics"]
    assert metrics["fake_quantized_linears"] == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer; the LM head
    assert metrics["block_size"] == 32 and metrics["symmetric"] is False and metrics["embedding_block_size"] == 256
    assert {"kd_ce", "kd_kl"} <= run.of("progress")[-1].keys()
    folder = Path(run.done["outputs"]["model"])

    samples, _ = load_sft_samples(tiny.sft_data)
    before, _ = _int4_answer_kl(tiny, tiny.sft_model, tmp_path / "plain", samples[:8])
    after, gap = _int4_answer_kl(tiny, folder, tmp_path / "trained", samples[:8])
    # The int4 graph of the trained model answers closer to the float model than the int4 graph of the float model.
    assert after < 0.7 * before, (before, after)
    # And it computes what the training saw: PyTorch with the fake rounding gives the int4 graph's logits up to the
    # kernel's int8 activations.
    assert gap < 0.5, gap


def test_decoder_qat_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny, tmp_path):
    import torch
    from safetensors.torch import load_file

    config = _config(tiny)
    run_dir = tmp_path / "interrupted"
    checkpoint, returncode = run_cli_until_checkpoint("decoder-qat", config, run_dir)
    assert returncode == -9 and checkpoint["step"] == 20 and not (run_dir / "model").exists()
    resumed = run_cli("decoder-qat", config, run_dir, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.done["metrics"]["resumed_from_step"] == 20
    run_cli("decoder-qat", config, tmp_path / "straight")
    a = load_file(str(run_dir / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"block_size": 48}, "block_size"),
        ({"embedding_block_size": 8}, "embedding_block_size"),
        ({"symmetric": "yes"}, "symmetric"),
    ],
)
def test_decoder_qat_refuses_bad_block_settings(tiny, tmp_path, change, field):
    bad = run_in_process("decoder-qat", {**_config(tiny), **change}, tmp_path / "bad")
    assert bad.error["kind"] == "config" and field in bad.error["message"]


def test_decoder_qat_refuses_an_encoder_folder(tiny, tmp_path):
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "supertiny.json").write_text(json.dumps({"family": "encoder"}))
    bad = run_in_process("decoder-qat", {**_config(tiny), "model": str(encoder)}, tmp_path / "bad")
    assert bad.error["kind"] == "config" and "is an encoder student" in bad.error["message"]
