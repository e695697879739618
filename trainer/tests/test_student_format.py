"""The student's text contract and the dataset readers."""

import json

import pytest

from massive_fixtures import gold_call, massive_records, preference_line, sft_line, write_jsonl
from supertiny_trainer.core.errors import DataError
from supertiny_trainer.student.datasets import load_preference_pairs, load_sft_samples, load_utterances
from supertiny_trainer.student.text_format import StudentTemplate, compact_call


def test_compact_call_keeps_argument_order_and_prints_json_string_literals():
    call = compact_call("alarm_set", {"time": "five am", "date": "this week"})
    assert call == 'alarm_set(time="five am", date="this week")'


def test_compact_call_without_arguments_has_empty_parentheses():
    assert compact_call("lists_query", {}) == "lists_query()"


def test_compact_call_escapes_quotes_and_keeps_non_ascii():
    assert compact_call("say", {"text": 'he said "hi" to José'}) == 'say(text="he said \\"hi\\" to José")'


def test_template_wraps_prompt_and_target_with_special_tokens(tmp_path):
    template = StudentTemplate()
    assert template.prompt("wake me up") == "<|bos|>wake me up<|sep|>"
    assert template.target('alarm_set(time="five")') == 'alarm_set(time="five")<|eos|>'
    template.save(tmp_path)
    saved = json.loads((tmp_path / "supertiny.json").read_text())
    assert (
        saved["prompt_prefix"] == "<|bos|>" and saved["prompt_suffix"] == "<|sep|>" and saved["eos_token"] == "<|eos|>"
    )
    assert StudentTemplate.load(tmp_path) == template


def test_sft_target_is_the_last_assistant_tool_call_ignoring_routing_steps(tmp_path):
    records = massive_records("train", limit=3)
    path = write_jsonl(tmp_path / "sft.jsonl", [sft_line(r, with_routing_step=True) for r in records])
    samples, report = load_sft_samples(path)
    assert [s.call for s in samples] == [gold_call(r) for r in records]
    assert [s.utterance for s in samples] == [r["utt"] for r in records]
    assert report.accepted == 3


def test_sft_line_without_final_tool_call_is_rejected_and_counted(tmp_path):
    records = massive_records("train", limit=2)
    lines = [sft_line(r) for r in records]
    lines[1]["messages"][-1] = {"role": "assistant", "content": "I cannot help with that."}
    samples, report = load_sft_samples(write_jsonl(tmp_path / "sft.jsonl", lines))
    assert len(samples) == 1
    assert report.rejected == {"the last assistant message has no tool call": 1}


def test_sft_dataset_with_no_accepted_samples_is_a_data_error(tmp_path):
    line = sft_line(massive_records("train", limit=1)[0])
    line["messages"][-1]["tool_calls"][0]["function"]["arguments"] = "{not json"
    with pytest.raises(DataError, match="no accepted samples"):
        load_sft_samples(write_jsonl(tmp_path / "sft.jsonl", [line]))


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("", "line 2 is empty"),
        ('{"messages": [', "line 2 is not valid JSON"),
        ("[1, 2]", "line 2 must be a JSON object"),
        ('{"messages": []}', "line 2: 'messages' must be a non-empty list"),
    ],
)
def test_malformed_sft_line_is_reported_by_line_number(tmp_path, bad_line, message):
    good = json.dumps(sft_line(massive_records("train", limit=1)[0]))
    path = tmp_path / "sft.jsonl"
    path.write_text(good + "\n" + bad_line + "\n" + good + "\n")
    with pytest.raises(DataError, match=message):
        load_sft_samples(path)


def test_preference_pairs_render_both_outputs_as_compact_calls(tmp_path):
    record = massive_records("train", limit=1, intents=["alarm_set"])[0]
    pairs, _ = load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", [preference_line(record, "alarm_query")]))
    assert pairs[0].utterance == record["utt"]
    assert pairs[0].chosen_call == gold_call(record)
    assert pairs[0].rejected_call.startswith("alarm_query(")


def test_identical_preference_outputs_are_rejected(tmp_path):
    record = massive_records("train", limit=1, intents=["alarm_set"])[0]
    with pytest.raises(DataError, match="identical"):
        load_preference_pairs(write_jsonl(tmp_path / "p.jsonl", [preference_line(record, "alarm_set")]))


def test_utterance_file_rejects_duplicate_ids(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [{"id": "1", "utterance": "a"}, {"id": "1", "utterance": "b"}])
    with pytest.raises(DataError, match="line 2: duplicate id"):
        load_utterances(path)


def test_a_repeated_slot_prints_as_a_repeated_key_like_the_typescript_printer():
    from supertiny_trainer.student.text_format import compact_call

    assert (
        compact_call("qa_currency", {"currency_name": ["dollars", "euros"], "date": "today"})
        == 'qa_currency(currency_name="dollars", currency_name="euros", date="today")'
    )
