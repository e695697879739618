"""A killed training run resumed from its newest checkpoint ends exactly where an uninterrupted one does."""

from pathlib import Path

from cli_harness import run_cli, run_cli_until_checkpoint


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_sft_killed_after_a_checkpoint_and_resumed_ends_with_identical_weights(tiny, tmp_path):
    import torch

    run_dir = tmp_path / "interrupted"
    checkpoint, returncode = run_cli_until_checkpoint("sft", tiny.sft_config, run_dir)
    assert returncode == -9 and checkpoint["step"] == 50
    assert not (run_dir / "model").exists()

    resumed = run_cli("sft", tiny.sft_config, run_dir, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_from = resumed.done["metrics"]["resumed_from_step"]
    assert resumed_from >= 50
    assert resumed.of("progress")[0]["step"] > resumed_from

    expected, actual = _weights(tiny.sft_model), _weights(Path(resumed.done["outputs"]["model"]))
    assert expected.keys() == actual.keys()
    mismatched = [name for name in expected if not torch.equal(expected[name], actual[name])]
    assert mismatched == []


def test_resume_without_a_checkpoint_starts_from_scratch(tiny, tmp_path):
    config = {**tiny.sft_config, "max_steps": 5, "save_steps": 100}
    run = run_cli("sft", config, tmp_path / "fresh", resume=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.done["metrics"]["resumed_from_step"] is None and run.done["metrics"]["steps"] == 5
