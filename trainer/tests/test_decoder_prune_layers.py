"""decoder-prune-layers: the decoder student loses layers and recovers by distillation from itself unpruned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_harness import run_cli, run_cli_until_checkpoint, run_in_process
from test_commands import _teacher_student_kl

PRUNE = {
    "layers": 1,
    "max_steps": 40,
    "batch_size": 8,
    "learning_rate": 0.005,
    "top_k": 16,
    "logging_steps": 10,
    "save_steps": 20,
    "num_threads": 1,
}


def _config(tiny) -> dict:
    return {"model": str(tiny.sft_model), "data": str(tiny.sft_data), **PRUNE}


def test_drop_layers_keeps_the_chosen_layers_renumbered_for_the_kv_cache(tiny):
    import torch

    from supertiny_trainer.commands.decoder_prune_layers import drop_layers
    from supertiny_trainer.student.model_folder import load_student

    model = load_student(tiny.sft_model).model
    pruned = drop_layers(model, [1])
    assert pruned.config.num_hidden_layers == 1 and len(pruned.model.layers) == 1
    assert pruned.model.layers[0].self_attn.layer_idx == 0
    assert len(model.model.layers) == 2 and model.config.num_hidden_layers == 2  # the original is untouched
    kept, original = pruned.model.layers[0].state_dict(), model.model.layers[1].state_dict()
    assert kept.keys() == original.keys() and all(torch.equal(kept[k], original[k]) for k in kept)
    # Generation with the KV cache runs on the pruned model (each kept layer writes its own cache slot).
    out = pruned.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)


def test_decoder_prune_layers_distils_the_pruned_student_toward_the_unpruned_one_and_exports(tiny, tmp_path):
    from supertiny_trainer.commands.decoder_prune_layers import drop_layers
    from supertiny_trainer.student.datasets import load_sft_samples
    from supertiny_trainer.student.model_folder import load_student, save_student

    run = run_cli("decoder-prune-layers", _config(tiny), tmp_path / "prune")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.done["metrics"]
    assert metrics["layers_before"] == 2 and metrics["layers_after"] == 1 and metrics["kept_layers"] == [1]
    assert metrics["parameters"] < metrics["parameters_before"]
    assert {"kd_ce", "kd_kl"} <= run.of("progress")[-1].keys()
    folder = Path(run.done["outputs"]["model"])
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 1

    # Against the same layers dropped without distillation, the trained one is closer to the unpruned model.
    teacher = load_student(tiny.sft_model)
    untrained = tmp_path / "untrained"
    save_student(drop_layers(teacher.model, [1]), teacher.tokenizer, teacher.template, untrained)
    samples, _ = load_sft_samples(tiny.sft_data)
    before = _teacher_student_kl(tiny.sft_model, untrained, samples[:8])
    after = _teacher_student_kl(tiny.sft_model, folder, samples[:8])
    assert after < 0.6 * before

    # The export checks the ONNX graph's logits against PyTorch's, with the KV cache over new tokens.
    exported = run_cli("export", {"model": str(folder), "num_threads": 1}, tmp_path / "export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    io = json.loads((Path(exported.done["outputs"]["model"]) / "onnx_io.json").read_text())
    assert io["num_layers"] == 1 and len(io["inputs"]) == 3 + 2


def test_decoder_prune_layers_killed_after_a_checkpoint_resumes_to_the_same_weights(tiny, tmp_path):
    import torch
    from safetensors.torch import load_file

    config = _config(tiny)
    run_dir = tmp_path / "interrupted"
    checkpoint, returncode = run_cli_until_checkpoint("decoder-prune-layers", config, run_dir)
    assert returncode == -9 and checkpoint["step"] == 20 and not (run_dir / "model").exists()
    resumed = run_cli("decoder-prune-layers", config, run_dir, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.done["metrics"]["resumed_from_step"] == 20
    straight = run_cli("decoder-prune-layers", config, tmp_path / "straight")
    a = load_file(str(run_dir / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert straight.done["metrics"]["kept_layers"] == [1]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"layers": 2}, "layers"), ({"keep_layers": [0, 1]}, "keep_layers"), ({"keep_layers": [1, 0]}, "keep_layers")],
)
def test_decoder_prune_layers_refuses_to_keep_every_layer_or_a_bad_list(tiny, tmp_path, change, field):
    bad = run_in_process("decoder-prune-layers", {**_config(tiny), **change}, tmp_path / "bad")
    assert bad.error["kind"] == "config" and field in bad.error["message"]
