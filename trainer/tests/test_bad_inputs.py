"""Bad input ends in one `error` event naming the problem and a non-zero exit."""

import json
import subprocess
import sys

from cli_harness import cli_env, run_in_process, write_config
from massive_fixtures import massive_records, sft_line, write_jsonl


def _sft_file(tmp_path, lines):
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _good_line():
    return json.dumps(sft_line(massive_records("train", limit=1)[0]))


def test_empty_dataset_line_is_a_data_error_naming_the_line(tiny, tmp_path):
    data = _sft_file(tmp_path, [_good_line(), "", _good_line()])
    run = run_in_process("sft", {"model": str(tiny.init_model), "data": str(data)}, tmp_path / "run")
    assert run.returncode != 0
    assert run.error["kind"] == "data" and "line 2 is empty" in run.error["message"]


def test_malformed_dataset_line_is_a_data_error_naming_the_line(tiny, tmp_path):
    data = _sft_file(tmp_path, [_good_line(), _good_line(), '{"messages": [}'])
    run = run_in_process("sft", {"model": str(tiny.init_model), "data": str(data)}, tmp_path / "run")
    assert run.error["kind"] == "data" and "line 3 is not valid JSON" in run.error["message"]


def test_dataset_without_accepted_samples_is_a_data_error(tiny, tmp_path):
    line = sft_line(massive_records("train", limit=1)[0])
    line["messages"][-1] = {"role": "assistant", "content": "no tool call here"}
    data = write_jsonl(tmp_path / "sft.jsonl", [line, line])
    run = run_in_process("sft", {"model": str(tiny.init_model), "data": str(data)}, tmp_path / "run")
    assert run.error["kind"] == "data" and "no accepted samples" in run.error["message"]
    assert "no tool call: 2" in run.error["message"]


def test_missing_model_folder_is_a_missing_model_error_naming_the_path(tiny, tmp_path):
    missing = tmp_path / "Qwen2.5-0.5B-Instruct"
    run = run_in_process("init", {"base_model": str(missing)}, tmp_path / "run")
    assert run.error["kind"] == "missing_model" and str(missing) in run.error["message"]
    run = run_in_process("sft", {"model": str(missing), "data": str(tiny.sft_data)}, tmp_path / "run2")
    assert run.error["kind"] == "missing_model" and str(missing) in run.error["message"]


def test_hidden_size_not_divisible_by_heads_is_a_config_error(tiny, tmp_path):
    run = run_in_process(
        "init",
        {"tokenizer": str(tiny.tokenizer_dir), "hidden_size": 100, "num_heads": 3, "num_kv_heads": 1},
        tmp_path / "run",
    )
    assert run.error["kind"] == "config" and "not divisible" in run.error["message"]


def test_unknown_config_field_is_a_config_error(tiny, tmp_path):
    run = run_in_process(
        "sft", {"model": str(tiny.init_model), "data": str(tiny.sft_data), "lr": 0.1}, tmp_path / "run"
    )
    assert run.error["kind"] == "config" and "lr" in run.error["message"]


def test_quantize_without_an_exported_model_is_a_missing_model_error(tmp_path):
    (tmp_path / "empty").mkdir()
    run = run_in_process("quantize", {"model": str(tmp_path / "empty")}, tmp_path / "run")
    assert run.error["kind"] == "missing_model" and "model.onnx" in run.error["message"]


def test_cli_prints_only_the_error_event_on_stdout_and_exits_non_zero(tmp_path):
    config = write_config(tmp_path, "init", {"tokenizer": str(tmp_path), "hidden_size": 64, "num_heads": 5})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "supertiny_trainer",
            "init",
            "--config",
            str(config),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert proc.returncode != 0
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event == {"event": "error", "kind": "config", "message": event["message"]}
    assert "divisible" in event["message"]


def test_config_file_that_is_not_json_is_a_config_error(tmp_path):
    import io

    from cli_harness import CliRun, parse_events
    from supertiny_trainer.__main__ import main

    config = tmp_path / "cfg.json"
    config.write_text("{model: ")
    stream = io.StringIO()
    code = main(["predict", "--config", str(config), "--run-dir", str(tmp_path / "run")], events_stream=stream)
    run = CliRun(code, parse_events(stream.getvalue()), stream.getvalue(), "")
    assert code != 0 and run.error["kind"] == "config" and "not valid JSON" in run.error["message"]


def test_out_of_memory_failures_are_reported_as_oom(tmp_path, monkeypatch):
    import io

    import torch

    from cli_harness import CliRun, parse_events
    from supertiny_trainer import __main__ as cli
    from supertiny_trainer.commands import predict

    def exhausted(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(predict.Predictor, "run", exhausted)
    config = write_config(tmp_path, "predict", {"model": str(tmp_path), "data": str(tmp_path / "u.jsonl")})
    stream = io.StringIO()
    code = cli.main(["predict", "--config", str(config), "--run-dir", str(tmp_path / "run")], events_stream=stream)
    run = CliRun(code, parse_events(stream.getvalue()), stream.getvalue(), "")
    assert code != 0 and run.error["kind"] == "oom" and "2.00 GiB" in run.error["message"]
