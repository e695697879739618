"""grpo: the task reward, progress with reward statistics, bad configs, and SIGKILL/resume to identical weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_harness import run_cli, run_cli_until_checkpoint, run_in_process
from massive_fixtures import gold_arguments
from supertiny_trainer.student.task_description import TaskDescription, schema_errors
from supertiny_trainer.student.task_reward import TaskReward, is_span
from supertiny_trainer.student.text_format import CallParseError, compact_call, parse_compact_call

ALARM = {
    "type": "object",
    "properties": {"time": {"type": "string"}, "date": {"type": "string"}},
    "additionalProperties": False,
}
CURRENCY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "currency_name": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 2}]}
    },
}


def _description(functions: dict, spans: dict) -> TaskDescription:
    """A task description (tasks/task-description.ts): the spans given, every other argument free text."""
    return TaskDescription.from_json(
        {
            "format": "supertiny-task/1",
            "task": "test",
            "functions": [
                {
                    "name": name,
                    "description": "",
                    "parameters": parameters,
                    "arguments": [
                        {
                            "name": key,
                            "kind": "span" if key in spans.get(name, []) else "free text",
                            "type": "string",
                            "required": False,
                        }
                        for key in parameters["properties"]
                    ],
                }
                for name, parameters in functions.items()
            ],
        },
        "test",
    )


@pytest.fixture
def reward() -> TaskReward:
    return TaskReward(
        _description(
            {"alarm_set": ALARM, "qa_currency": CURRENCY},
            {"alarm_set": ["time", "date"], "qa_currency": ["currency_name"]},
        )
    )


def write_task(path: Path, records: list[dict]) -> Path:
    """The description the TypeScript side writes, for the fixture's intents (every slot is a span)."""
    slots: dict[str, set] = {}
    for record in records:
        slots.setdefault(record["intent"], set()).update(gold_arguments(record))
    functions = [
        {
            "name": name,
            "description": "",
            "parameters": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in sorted(keys)},
                "additionalProperties": False,
            },
            "arguments": [{"name": k, "kind": "span", "type": "string", "required": False} for k in sorted(keys)],
        }
        for name, keys in slots.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "supertiny-task/1", "task": "massive", "functions": functions}))
    return path


def test_parse_compact_call_inverts_compact_call_and_names_the_error():
    arguments = {"time": 'five "am"', "currency_name": ["dollars", "euros"]}
    assert parse_compact_call(compact_call("alarm_set", arguments)) == (
        "alarm_set",
        [("time", 'five "am"'), ("currency_name", "dollars"), ("currency_name", "euros")],
    )
    assert parse_compact_call(" weather_query( ) ") == ("weather_query", [])
    with pytest.raises(CallParseError, match='expected "=" after slot name "time"'):
        parse_compact_call("alarm_set(time)")
    with pytest.raises(CallParseError, match="unexpected text after"):
        parse_compact_call('alarm_set(time="x") extra')


def test_spans_must_occur_as_whole_words():
    assert is_span("wake me up at five am", "five am")
    assert not is_span("wake me up at five am", "fiv")
    assert not is_span("wake me up at five am", "")


def test_schema_errors_cover_unknown_arguments_repeats_and_types():
    functions = _description({"alarm_set": ALARM, "qa_currency": CURRENCY}, {}).functions
    alarm, currency = functions["alarm_set"], functions["qa_currency"]
    assert schema_errors(alarm, {"time": "x"}) == []
    assert schema_errors(alarm, {"volume": "x"}) == ["arguments have an argument that is not a parameter"]
    assert schema_errors(alarm, {"time": ["a", "b"]}) == ['argument "time" fails "type"']
    assert schema_errors(currency, {"currency_name": ["dollars", "euros"]}) == []
    assert schema_errors(currency, {"currency_name": ["dollars"]}) == ['argument "currency_name" fails "anyOf"']


def test_reward_scores_the_verifier_and_agreement_with_the_teacher(reward):
    utterance = "wake me up at five am this week"
    teacher = 'alarm_set(time="five am", date="this week")'
    exact = reward.review('alarm_set(date="this week", time="five am")', utterance, teacher)
    assert (exact.verified, exact.agreement, exact.exact) == (True, 1.0, True)
    partial = reward.review('alarm_set(time="five am")', utterance, teacher)
    assert partial.verified and not partial.exact and partial.agreement == pytest.approx(0.5 + 0.5 * 2 / 3)
    not_a_span = reward.review('alarm_set(time="six am", date="this week")', utterance, teacher)
    assert not_a_span.schema_valid and not not_a_span.verified and "not a span" in not_a_span.reason
    unknown_slot = reward.review('alarm_set(volume="five am")', utterance, teacher)
    assert not unknown_slot.schema_valid and unknown_slot.agreement == 0.5
    other_function = reward.review('qa_currency(currency_name="week")', utterance, teacher)
    assert other_function.verified and other_function.agreement == 0.0
    garbage = reward.review("alarm_set(time=", utterance, teacher)
    assert (garbage.parsed, garbage.verified, garbage.agreement) == (False, False, 0.0)


def test_grpo_reports_reward_statistics_and_saves_a_model(tiny, tmp_path):
    task = write_task(tmp_path / "task.json", tiny.records)
    config = {
        "model": str(tiny.sft_model),
        "data": str(tiny.sft_data),
        "task": str(task),
        "max_steps": 4,
        "batch_size": 8,
        "num_generations": 4,
        "logging_steps": 1,
        "num_threads": 1,
    }
    run = run_cli("grpo", config, tmp_path / "grpo")
    assert run.returncode == 0, run.stderr[-3000:]
    progress = run.of("progress")
    assert [p["step"] for p in progress] == [1, 2, 3, 4]
    for p in progress:
        assert 0 <= p["reward"] <= 1 and 0 <= p["valid_share"] <= 1 and p["kl"] >= 0
    # The sft model has learnt these 24 samples: most sampled calls are schema-valid and earn reward.
    assert sum(p["valid_share"] for p in progress) / len(progress) > 0.5
    assert run.done["metrics"]["task_functions"] == 3
    assert (Path(run.done["outputs"]["model"]) / "model.safetensors").is_file()


def test_grpo_without_a_description_takes_the_functions_from_the_rows_tools(tiny, tmp_path):
    # The fixture's rows offer only a routing tool, so no intent is a known function: nothing is valid.
    config = {
        "model": str(tiny.sft_model),
        "data": str(tiny.sft_data),
        "max_steps": 1,
        "batch_size": 4,
        "num_generations": 2,
        "logging_steps": 1,
        "num_threads": 1,
    }
    run = run_cli("grpo", config, tmp_path / "grpo")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.done["metrics"]["task_functions"] == 1 and run.of("progress")[0]["valid_share"] == 0


@pytest.mark.parametrize(
    "override, message",
    [
        ({"batch_size": 6, "num_generations": 4}, "'batch_size' (6) must be a multiple of 'num_generations' (4)"),
        ({"num_generations": 1, "batch_size": 4}, "'num_generations' must be at least 2"),
        ({"verifier_weight": 1.5}, "'verifier_weight' must be in [0, 1]"),
    ],
)
def test_grpo_refuses_a_bad_config_naming_the_field(tiny, tmp_path, override, message):
    config = {"model": str(tiny.sft_model), "data": str(tiny.sft_data), **override}
    run = run_in_process("grpo", config, tmp_path / "bad")
    assert run.returncode == 2 and run.error["kind"] == "config" and message in run.error["message"]


def test_grpo_with_a_missing_task_description_is_a_data_error(tiny, tmp_path):
    config = {
        "model": str(tiny.sft_model),
        "data": str(tiny.sft_data),
        "task": str(tmp_path / "none.json"),
        "batch_size": 4,
        "num_generations": 2,
        "max_steps": 1,
    }
    run = run_in_process("grpo", config, tmp_path / "bad")
    assert run.returncode == 2 and run.error["kind"] == "data" and "task description not found" in run.error["message"]


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_grpo_killed_after_a_checkpoint_and_resumed_ends_with_identical_weights(tiny, tmp_path):
    import torch

    task = write_task(tmp_path / "task.json", tiny.records)
    # 24 prompts, 2 per step: 12 steps an epoch, so the resumed part crosses into a second epoch. Logging
    # every 3 steps aligns the logged means with the checkpoint, so the resumed reward curve can be compared.
    config = {
        "model": str(tiny.sft_model),
        "data": str(tiny.sft_data),
        "task": str(task),
        "max_steps": 16,
        "batch_size": 8,
        "num_generations": 4,
        "learning_rate": 5e-4,
        "save_steps": 6,
        "logging_steps": 3,
        "num_threads": 1,
        "seed": 3,
    }
    uninterrupted = run_cli("grpo", config, tmp_path / "uninterrupted")
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    run_dir = tmp_path / "interrupted"
    checkpoint, returncode = run_cli_until_checkpoint("grpo", config, run_dir)
    assert returncode == -9 and checkpoint["step"] == 6
    resumed = run_cli("grpo", config, run_dir, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.done["metrics"]["resumed_from_step"] >= 6
    assert [p["reward"] for p in resumed.of("progress")] == [
        p["reward"] for p in uninterrupted.of("progress") if p["step"] > resumed.done["metrics"]["resumed_from_step"]
    ]

    expected = _weights(Path(uninterrupted.done["outputs"]["model"]))
    actual = _weights(Path(resumed.done["outputs"]["model"]))
    assert expected.keys() == actual.keys()
    assert [name for name in expected if not torch.equal(expected[name], actual[name])] == []


def test_the_prompt_order_of_an_epoch_does_not_depend_on_the_epochs_iterated_before():
    # A resumed run starts a fresh sampler in the middle of training: its epoch must match the long-lived one's.
    from trl.trainer.utils import RepeatSampler

    from supertiny_trainer.commands.grpo import epoch_seeded_repeat_sampler_class

    def order(sampler_class, epochs_before: int) -> list[int]:
        sampler = sampler_class(
            data_source=list(range(24)), mini_repeat_count=4, batch_size=2, repeat_count=1, shuffle=True, seed=3
        )
        for epoch in range(epochs_before):
            getattr(sampler, "set_epoch", lambda e: None)(epoch)
            list(sampler)
        getattr(sampler, "set_epoch", lambda e: None)(epochs_before)
        return list(sampler)

    seeded = epoch_seeded_repeat_sampler_class()
    assert order(seeded, 1) != order(seeded, 0)  # epochs differ from each other
    fresh_second_epoch = seeded(
        data_source=list(range(24)), mini_repeat_count=4, batch_size=2, repeat_count=1, shuffle=True, seed=3
    )
    fresh_second_epoch.set_epoch(1)
    assert list(fresh_second_epoch) == order(seeded, 1)
    # TRL's own sampler does not have this property, which is why grpo replaces it.
    assert order(RepeatSampler, 1) != list(
        RepeatSampler(
            data_source=list(range(24)), mini_repeat_count=4, batch_size=2, repeat_count=1, shuffle=True, seed=3
        )
    )
