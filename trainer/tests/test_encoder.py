"""The encoder student end to end: MiniLM conversion, training with soft vote targets, resume after SIGKILL,
predict, ONNX export and int8 quantization, on tiny MASSIVE slices (a tiny random BERT keeps it to seconds)."""

from __future__ import annotations

import json
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from cli_harness import run_cli, run_cli_until_checkpoint, run_in_process
from massive_fixtures import (
    arguments_object,
    call_metrics,
    call_pairs_from_compact,
    encoder_sft_line,
    gold_pairs,
    massive_records,
    massive_schema,
    utterance_line,
    write_jsonl,
)

MINILM = Path(__file__).resolve().parents[2] / ".tools" / "minilm"
INTENTS = ["alarm_set", "weather_query", "play_music"]
SENTENCES = ["wake me up at five am this week", "What's the weather in Paris tomorrow?", "play some jazz"]
# A tiny random BERT memorizes 24 samples in this many steps (its random word vectors must train, unlike
# pretrained ones); the resume test kills it after step 20.
ENCODER_SFT = {
    "max_steps": 60,
    "batch_size": 8,
    "learning_rate": 3e-3,
    "head_learning_rate": 1e-2,
    "save_steps": 20,
    "logging_steps": 10,
    "num_threads": 1,
    "seed": 0,
    "warmup_ratio": 0.0,
    "freeze_word_embeddings": False,
}


@pytest.fixture(scope="session")
def minilm_converted(tmp_path_factory) -> Path:
    assert (MINILM / "all-minilm-l6-v2.onnx").is_file(), (
        f"{MINILM} is missing: run scripts/setup.sh (it fetches MiniLM)"
    )
    run = run_cli("encoder-convert", {"num_threads": 1}, tmp_path_factory.mktemp("convert"))
    assert run.returncode == 0, run.stderr[-3000:]
    return Path(run.done["outputs"]["model"])


@pytest.fixture(scope="session")
def tiny_bert(minilm_converted, tmp_path_factory) -> Path:
    """A random 2-layer BERT with MiniLM's tokenizer: any BERT-architecture folder is a base model."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
        add_pooling_layer=False,
    ).save_pretrained(folder)
    shutil.copy(minilm_converted / "tokenizer.json", folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="session")
def encoder_data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("encoder-data")
    train = massive_records("train", limit=2000)
    slots, scenarios = massive_schema(train)
    records = [r for intent in INTENTS for r in [x for x in train if x["intent"] == intent][:8]]
    rows = []
    for i, record in enumerate(records):
        votes = None
        if i % 2 == 0:  # the teacher agreed 3 to 1 with an answer that missed the last slot
            pairs = gold_pairs(record)
            votes = [
                {"name": record["intent"], "arguments": json.dumps(arguments_object(pairs)), "share": 0.75},
                {"name": record["intent"], "arguments": json.dumps(arguments_object(pairs[:-1])), "share": 0.25},
            ]
        rows.append(encoder_sft_line(record, slots, scenarios, votes))
    return {
        "root": root,
        "records": records,
        "slots": slots,
        "scenarios": scenarios,
        "sft": write_jsonl(root / "sft.jsonl", rows),
        "utterances": write_jsonl(root / "utterances.jsonl", [utterance_line(r) for r in records]),
    }


@pytest.fixture(scope="session")
def encoder_run(tiny_bert, encoder_data, tmp_path_factory):
    config = {"model": str(tiny_bert), "data": str(encoder_data["sft"]), **ENCODER_SFT}
    run = run_cli("encoder-sft", config, tmp_path_factory.mktemp("encoder-sft"))
    assert run.returncode == 0, run.stderr[-3000:]
    return run, config


def _predict(model: Path | str, data: Path, run_dir: Path) -> list[str]:
    run = run_cli("predict", {"model": str(model), "data": str(data), "num_threads": 1}, run_dir)
    assert run.returncode == 0, run.stderr[-3000:]
    return [row["prediction"] for row in map(json.loads, Path(run.done["outputs"]["predictions"]).open())]


# ---- encoder-convert -------------------------------------------------------------------------------------


def test_converted_minilm_hidden_states_match_onnxruntime_on_fixed_sentences(minilm_converted):
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    tokenizer = Tokenizer.from_file(str(minilm_converted / "tokenizer.json"))
    assert tokenizer.padding is None  # the jar's file pads to 128
    session = ort.InferenceSession(str(MINILM / "all-minilm-l6-v2.onnx"), providers=["CPUExecutionProvider"])
    model = BertModel.from_pretrained(str(minilm_converted), add_pooling_layer=False).eval()
    assert sum(p.numel() for p in model.parameters()) == 22_565_376
    for sentence in SENTENCES:  # one at a time: no padding in either
        encoding = tokenizer.encode(sentence)
        feed = {
            "input_ids": np.array([encoding.ids]),
            "attention_mask": np.array([encoding.attention_mask]),
            "token_type_ids": np.array([encoding.type_ids]),
        }
        expected = session.run(None, feed)[0]
        with torch.no_grad():
            actual = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
        assert expected.shape == actual.shape == (1, len(encoding.ids), 384)
        assert np.abs(expected - actual).max() < 1e-4


def test_encoder_convert_names_a_missing_onnx_file(tmp_path):
    run = run_in_process("encoder-convert", {"onnx": str(tmp_path / "nope.onnx")}, tmp_path / "run")
    assert run.returncode == 2 and run.error["kind"] == "missing_model"
    assert "nope.onnx" in run.error["message"] and "'onnx'" in run.error["message"]


# ---- data: spans, tags, soft targets, schema ----------------------------------------------------------------


def test_slot_values_are_found_case_insensitively_preferring_whole_words():
    from supertiny_trainer.student.encoder_data import locate_values

    spans, missing = locate_values(
        "Set an alarm at Ten am, then at ten", (("time", "ten"), ("time", "TEN AM"), ("date", "monday"))
    )
    assert spans == [("time", 16, 22), ("time", 32, 35)] and missing == 1
    spans, _ = locate_values("often at ten", (("time", "ten"),))
    assert spans == [("time", 9, 12)]  # not the "ten" inside "often"


def test_bio_tags_follow_token_offsets_and_skip_special_tokens(minilm_converted):
    from supertiny_trainer.student.encoder import bio_tags, load_encoder_tokenizer
    from supertiny_trainer.student.encoder_data import bio_tag_ids, locate_values

    tokenizer = load_encoder_tokenizer(minilm_converted, 64)
    text = "wake me up at five am this week"
    encoding = tokenizer.encode(text)
    tags = bio_tags(["date", "time"])
    spans, _ = locate_values(text, (("time", "five am"), ("date", "this week")))
    ids, lost = bio_tag_ids(
        spans, encoding.offsets, [not s for s in encoding.special_tokens_mask], {t: i for i, t in enumerate(tags)}
    )
    assert lost == 0
    assert [tags[i] if i >= 0 else None for i in ids] == [
        None,
        "O",
        "O",
        "O",
        "O",
        "B-time",
        "I-time",
        "B-date",
        "I-date",
        None,
    ]


def test_votes_become_soft_intent_and_tag_targets(minilm_converted):
    from collections import Counter

    from supertiny_trainer.commands.encoder_sft import EncoderCollator
    from supertiny_trainer.student.encoder import EncoderLabels, load_encoder_tokenizer
    from supertiny_trainer.student.encoder_data import EncoderExample, TargetCall, encode_examples

    labels = EncoderLabels.from_schema({"alarm_set": ["date", "time"], "alarm_query": ["date"]}, 64, "mean")
    example = EncoderExample(
        "wake me up at five am this week",
        [
            TargetCall("alarm_set", (("time", "five am"), ("date", "this week")), 0.6),
            TargetCall("alarm_query", (("date", "this week"),), 0.4),
        ],
    )
    encoded = encode_examples([example], load_encoder_tokenizer(minilm_converted, 64), labels, Counter())
    batch = EncoderCollator(len(labels.intents), len(labels.tags), 0)(encoded)
    assert batch["intent_targets"][0].tolist() == pytest.approx([0.4, 0.6])  # intents sorted: alarm_query, alarm_set
    tag = {t: i for i, t in enumerate(labels.tags)}
    five, this = batch["tag_targets"][0, 5], batch["tag_targets"][0, 7]
    assert five[tag["B-time"]] == pytest.approx(0.6) and five[tag["O"]] == pytest.approx(0.4)
    assert this[tag["B-date"]] == pytest.approx(1.0)
    assert batch["word_mask"][0].tolist() == [False] + [True] * 8 + [False]
    assert batch["tag_targets"][0, 0].sum() == 0  # [CLS] has no target


def test_viterbi_allows_only_the_intents_slots_and_valid_bio_transitions():
    from supertiny_trainer.student.encoder import EncoderLabels
    from supertiny_trainer.student.tag_decoding import TagDecoder

    labels = EncoderLabels.from_schema({"alarm_set": ["time"], "play_music": ["artist_name"]}, 64, "cls")
    decoder = TagDecoder(labels)
    tag = {t: i for i, t in enumerate(labels.tags)}
    logits = np.full((3, len(labels.tags)), -5.0)
    logits[:, tag["O"]] = 0
    logits[0, [tag["I-time"], tag["B-time"]]] = 5, 3  # an I- at the start is invalid
    logits[1, [tag["B-artist_name"], tag["I-time"]]] = 5, 3  # artist_name is not a slot of alarm_set
    logits[2, tag["I-time"]] = 5
    assert [labels.tags[i] for i in logits.argmax(-1)] == ["I-time", "B-artist_name", "I-time"]
    path = [labels.tags[i] for i in decoder.viterbi(logits, "alarm_set")]
    assert path[0] != "I-time" and "B-artist_name" not in path
    assert all(not t.startswith("I-") or prev in ("B-" + t[2:], t) for prev, t in pairwise(["O", *path]))
    assert path == ["B-time", "I-time", "I-time"]  # the best valid path keeps the I-time evidence


def test_a_slot_that_may_not_repeat_keeps_its_most_probable_span_and_repeatable_ones_keep_all():
    from supertiny_trainer.student.encoder import EncoderLabels
    from supertiny_trainer.student.encoder_data import EncoderExample, TargetCall, repeated_slots
    from supertiny_trainer.student.tag_decoding import TagDecoder

    examples = [
        EncoderExample(
            "x",
            [
                TargetCall("alarm_set", (("time", "5"), ("time", "6")), 0.5),
                TargetCall("alarm_set", (("date", "today"),), 0.5),
            ],
        )
    ]
    assert repeated_slots(examples) == {"alarm_set": ["time"]}
    labels = EncoderLabels.from_schema({"alarm_set": ["date", "time"]}, 64, "cls")
    tag = {t: i for i, t in enumerate(labels.tags)}
    text = "today or tomorrow at five"
    offsets = [(0, 5), (6, 8), (9, 17), (18, 20), (21, 25)]
    logits = np.full((5, len(labels.tags)), -5.0)
    logits[:, tag["O"]] = 0
    logits[0, tag["B-date"]] = 1  # today: less sure
    logits[2, tag["B-date"]] = 4  # tomorrow: surer
    logits[4, tag["B-time"]] = 4
    decoded = TagDecoder(labels).decode(text, np.array([1.0]), logits, offsets, list(range(5)))
    assert decoded.arguments == [("date", "tomorrow"), ("time", "five")]
    labels.intent_repeatable = {"alarm_set": ["date"]}
    decoded = TagDecoder(labels).decode(text, np.array([1.0]), logits, offsets, list(range(5)))
    assert decoded.arguments == [("date", "today"), ("date", "tomorrow"), ("time", "five")]


def test_with_word_spans_a_words_tokens_share_one_span_or_none():
    from supertiny_trainer.student.encoder import EncoderLabels
    from supertiny_trainer.student.tag_decoding import TagDecoder

    labels = EncoderLabels.from_schema({"general_joke": ["joke_type"]}, 64, "cls")
    labels.intent_repeatable = {"general_joke": ["joke_type"]}
    tag = {t: i for i, t in enumerate(labels.tags)}
    text = "the funniest joke"
    offsets = [(0, 3), (4, 7), (7, 11), (11, 12), (13, 17)]  # the | fun nies t | joke
    logits = np.full((5, len(labels.tags)), -5.0)
    logits[:, tag["O"]] = 0
    logits[1:4, tag["B-joke_type"]] = 3  # each piece of "funniest" a span of its own
    logits[2:4, tag["I-joke_type"]] = 2  # the continuation is second best
    logits[4, tag["B-joke_type"]] = -1  # "joke": O wins
    free = TagDecoder(labels).decode(text, np.array([1.0]), logits, offsets, list(range(5)))
    assert free.arguments == [("joke_type", "fun"), ("joke_type", "nies"), ("joke_type", "t")]
    labels.word_spans = True
    tied = TagDecoder(labels).decode(text, np.array([1.0]), logits, offsets, list(range(5)))
    assert tied.arguments == [("joke_type", "funniest")]
    # A word whose first piece is O keeps O on the rest, however sure the rest's B-.
    logits[1, tag["B-joke_type"]] = -5
    logits[2, tag["B-joke_type"]] = 4
    assert TagDecoder(labels).decode(text, np.array([1.0]), logits, offsets, list(range(5))).arguments == []
    # Words are read from the offsets of the word tokens: special tokens between are skipped.
    logits = np.vstack([np.zeros((1, len(labels.tags))), logits])
    cls_offsets = [(0, 0), *offsets]
    assert TagDecoder(labels).decode(text, np.array([1.0]), logits, cls_offsets, list(range(1, 6))).arguments == []


def test_word_spans_is_set_only_when_every_training_span_covers_whole_words(minilm_converted):
    from collections import Counter

    from supertiny_trainer.student.encoder import EncoderLabels, load_encoder_tokenizer
    from supertiny_trainer.student.encoder_data import EncoderExample, TargetCall, covers_words, encode_examples

    assert covers_words("pay $50 now", 4, 7) and not covers_words("pay $50 now", 5, 7)
    assert covers_words("50", 0, 2) and not covers_words("often", 2, 5)
    labels = EncoderLabels.from_schema({"pay": ["amount"]}, 64, "cls")
    tokenizer = load_encoder_tokenizer(minilm_converted, 64)
    counts = Counter()
    whole = EncoderExample("pay 50 now", [TargetCall("pay", (("amount", "50"),), 1.0)])
    encode_examples([whole], tokenizer, labels, counts)
    assert counts["spans_located"] == 1 and counts["spans_inside_words"] == 0
    inside = EncoderExample("pay $50 now", [TargetCall("pay", (("amount", "50"),), 1.0)])
    encode_examples([inside], tokenizer, labels, counts)
    assert counts["spans_located"] == 2 and counts["spans_inside_words"] == 1


def test_word_spans_round_trips_through_supertiny_json_and_must_be_a_boolean(tmp_path):
    from supertiny_trainer.core.errors import ConfigError
    from supertiny_trainer.student.encoder import EncoderLabels

    labels = EncoderLabels.from_schema({"pay": ["amount"]}, 64, "cls")
    labels.save(tmp_path)
    assert "word_spans" not in json.loads((tmp_path / "supertiny.json").read_text())
    assert EncoderLabels.load(tmp_path).word_spans is False
    labels.word_spans = True
    labels.save(tmp_path)
    assert EncoderLabels.load(tmp_path).word_spans is True
    raw = json.loads((tmp_path / "supertiny.json").read_text())
    raw["word_spans"] = "yes"
    (tmp_path / "supertiny.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="'word_spans' must be true or false"):
        EncoderLabels.load(tmp_path)


def test_a_label_outside_the_offered_tools_is_a_data_error_naming_the_line(encoder_data, tiny_bert, tmp_path):
    record = encoder_data["records"][0]
    row = encoder_sft_line(record, encoder_data["slots"], encoder_data["scenarios"])
    row["messages"][-1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"song_name": "x"})
    data = write_jsonl(
        tmp_path / "sft.jsonl",
        [encoder_sft_line(r, encoder_data["slots"], encoder_data["scenarios"]) for r in encoder_data["records"][1:3]]
        + [row],
    )
    run = run_in_process("encoder-sft", {"model": str(tiny_bert), "data": str(data), "max_steps": 1}, tmp_path / "run")
    assert run.returncode == 2 and run.error["kind"] == "data"
    assert "line 3" in run.error["message"] and "song_name" in run.error["message"]


def test_a_bad_vote_share_is_a_data_error_naming_the_line(encoder_data, tiny_bert, tmp_path):
    row = encoder_sft_line(
        encoder_data["records"][0],
        encoder_data["slots"],
        encoder_data["scenarios"],
        votes=[{"name": "alarm_set", "arguments": "{}", "share": 1.5}],
    )
    data = write_jsonl(tmp_path / "sft.jsonl", [row])
    run = run_in_process("encoder-sft", {"model": str(tiny_bert), "data": str(data), "max_steps": 1}, tmp_path / "run")
    assert run.returncode == 2 and run.error["kind"] == "data"
    assert "line 1" in run.error["message"] and "votes[0]" in run.error["message"] and "share" in run.error["message"]


def test_a_tools_file_replaces_the_schema_of_the_rows(encoder_data, tiny_bert, tmp_path):
    from massive_fixtures import tool_definitions

    used = {r["intent"] for r in encoder_data["records"]}
    extra = next(name for name in sorted(encoder_data["slots"]) if name not in used and encoder_data["slots"][name])
    names = sorted(used | {extra})
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(tool_definitions(names, encoder_data["slots"])))
    run = run_in_process(
        "encoder-sft",
        {
            "model": str(tiny_bert),
            "data": str(encoder_data["sft"]),
            "max_steps": 1,
            "tools": str(tools),
            "num_threads": 1,
        },
        tmp_path / "run",
    )
    assert run.returncode == 0, run.events
    labels = json.loads((Path(run.done["outputs"]["model"]) / "supertiny.json").read_text())
    assert labels["intents"] == names
    assert labels["intent_slots"][extra] == encoder_data["slots"][extra]


def test_a_non_bert_base_model_is_refused_by_name(encoder_data, tmp_path):
    from transformers import Qwen2Config

    Qwen2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "qwen")
    run = run_in_process(
        "encoder-sft",
        {"model": str(tmp_path / "qwen"), "data": str(encoder_data["sft"]), "max_steps": 1},
        tmp_path / "run",
    )
    assert run.returncode == 2 and "qwen2" in run.error["message"] and "BERT" in run.error["message"]


# ---- encoder-sft, predict -----------------------------------------------------------------------------------


def test_encoder_sft_streams_events_and_writes_the_encoder_folder(encoder_run, encoder_data):
    run, _ = encoder_run
    progress = run.of("progress")
    assert progress[0]["step"] == 1 and progress[-1]["step"] == 60 and "loss/intent" in progress[0]
    assert progress[-1]["loss"] < progress[0]["loss"]
    assert [e["step"] for e in run.of("checkpoint")] == [20, 40, 60]
    metrics = run.done["metrics"]
    assert metrics["samples_accepted"] == 24 and metrics["votes_used"] == 24 and metrics["slot_values_not_found"] == 0
    assert metrics["spans_inside_words"] == 0 and metrics["word_spans"] == 1
    folder = Path(run.done["outputs"]["model"])
    assert {"config.json", "model.safetensors", "heads.safetensors", "tokenizer.json", "supertiny.json"} <= {
        p.name for p in folder.iterdir()
    }
    labels = json.loads((folder / "supertiny.json").read_text())
    offered = {i for r in encoder_data["records"] for i in encoder_data["scenarios"][r["scenario"]]}
    assert labels["format"] == "supertiny-encoder/1" and labels["family"] == "encoder" and labels["max_length"] == 64
    assert labels["intents"] == sorted(offered) and labels["tags"][0] == "O"
    assert labels["intent_slots"]["alarm_set"] == encoder_data["slots"]["alarm_set"]
    assert labels["word_spans"] is True  # every span of the MASSIVE-like rows covers whole words
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"


def test_predict_on_an_encoder_folder_gives_schema_valid_compact_calls_that_fit_the_training_data(
    encoder_run, encoder_data, tmp_path
):
    run, _ = encoder_run
    folder = Path(run.done["outputs"]["model"])
    predictions = _predict(folder, encoder_data["utterances"], tmp_path / "predict")
    labels = json.loads((folder / "supertiny.json").read_text())
    for prediction in predictions:
        name, pairs = call_pairs_from_compact(prediction)
        assert name in labels["intents"] and {k for k, _ in pairs} <= set(labels["intent_slots"][name])
    metrics = call_metrics(predictions, encoder_data["records"])
    assert metrics["intent_accuracy"] == 1.0 and metrics["exact_match"] >= 0.75, metrics


def test_encoder_sft_killed_after_a_checkpoint_and_resumed_ends_with_identical_weights(encoder_run, tmp_path):
    import torch
    from safetensors.torch import load_file

    run, config = encoder_run
    run_dir = tmp_path / "interrupted"
    checkpoint, returncode = run_cli_until_checkpoint("encoder-sft", config, run_dir)
    assert returncode == -9 and checkpoint["step"] == 20 and not (run_dir / "model").exists()
    resumed = run_cli("encoder-sft", config, run_dir, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.done["metrics"]["resumed_from_step"] >= 20 and resumed.of("progress")[0]["step"] > 20
    for name in ("model.safetensors", "heads.safetensors"):
        expected = load_file(str(Path(run.done["outputs"]["model"]) / name))
        actual = load_file(str(Path(resumed.done["outputs"]["model"]) / name))
        assert expected.keys() == actual.keys()
        assert [k for k in expected if not torch.equal(expected[k], actual[k])] == []


def test_encoder_sft_trains_the_converted_minilm_with_frozen_word_embeddings(minilm_converted, encoder_data, tmp_path):
    import torch
    from safetensors.torch import load_file

    run = run_cli(
        "encoder-sft",
        {
            "model": str(minilm_converted),
            "data": str(encoder_data["sft"]),
            "max_steps": 2,
            "batch_size": 4,
            "num_threads": 1,
        },
        tmp_path,
    )  # frozen by default
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.done["metrics"]
    assert metrics["parameters"] - metrics["trainable_parameters"] == 30522 * 384
    before, after = (
        load_file(str(minilm_converted / "model.safetensors")),
        load_file(str(Path(run.done["outputs"]["model"]) / "model.safetensors")),
    )
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(before[key], after[key])
    assert not torch.equal(
        before["encoder.layer.0.attention.self.query.weight"], after["encoder.layer.0.attention.self.query.weight"]
    )


# ---- export, quantize -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def encoder_exported(encoder_run, tmp_path_factory):
    run, _ = encoder_run
    exported = run_cli(
        "export", {"model": run.done["outputs"]["model"], "num_threads": 1}, tmp_path_factory.mktemp("encoder-export")
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    return exported


def test_export_writes_one_onnx_file_with_the_format_io_matching_pytorch(
    encoder_exported, encoder_run, encoder_data, tmp_path
):
    import onnx

    folder = Path(encoder_exported.done["outputs"]["model"])
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "supertiny.json", "tokenizer.json"]
    graph = onnx.load(str(folder / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in graph.input)
    assert [o.name for o in graph.output] == ["intent_logits", "tag_logits"]
    labels = json.loads((folder / "supertiny.json").read_text())
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == len(labels["intents"])
    assert graph.output[1].type.tensor_type.shape.dim[2].dim_value == len(labels["tags"])
    assert encoder_exported.done["metrics"]["max_abs_diff"] <= 1e-3
    run, _ = encoder_run
    torch_predictions = _predict(run.done["outputs"]["model"], encoder_data["utterances"], tmp_path / "torch")
    assert _predict(folder, encoder_data["utterances"], tmp_path / "onnx") == torch_predictions


def test_quantize_makes_the_encoder_int8_and_keeps_its_answers(encoder_exported, encoder_data, tmp_path):
    quantized = run_cli("quantize", {"model": encoder_exported.done["outputs"]["model"]}, tmp_path / "q")
    assert quantized.returncode == 0, quantized.stderr[-3000:]
    metrics = quantized.done["metrics"]
    assert metrics["family"] == "encoder" and metrics["bytes_after"] < metrics["bytes_before"] / 3
    assert metrics["check_intent_agreement"] == 1.0
    folder = Path(quantized.done["outputs"]["model"])
    assert {"model.onnx", "supertiny.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    float_predictions = _predict(encoder_exported.done["outputs"]["model"], encoder_data["utterances"], tmp_path / "f")
    int8_predictions = _predict(folder, encoder_data["utterances"], tmp_path / "i")
    same = sum(a == b for a, b in zip(float_predictions, int8_predictions, strict=True)) / len(int8_predictions)
    assert same >= 0.9
    # The decoder's weight-only int8 blocks are not the encoder's: asked for them, it says so.
    blocks = run_in_process(
        "quantize", {"model": encoder_exported.done["outputs"]["model"], "int8_method": "blocks"}, tmp_path / "b"
    )
    assert blocks.error["kind"] == "config" and "'blocks' is the decoder's" in blocks.error["message"]


def test_quantize_int4_puts_the_feed_forward_and_embeddings_in_4_bits_and_keeps_its_answers(
    encoder_exported, encoder_data, tmp_path
):
    import onnx

    source = encoder_exported.done["outputs"]["model"]
    int8 = run_cli("quantize", {"model": source}, tmp_path / "q8")
    int4 = run_cli("quantize", {"model": source, "scheme": "int4"}, tmp_path / "q4")
    assert int4.returncode == 0, int4.stderr[-3000:]
    metrics = int4.done["metrics"]
    assert metrics["scheme"] == "int4" and metrics["four_bit_matmuls"] > 0
    # Every command reports what it used, for the report's one-off cost.
    assert metrics["compute_cpu_s"] > 0 and metrics["compute_wall_s"] > 0 and metrics["compute_gpu"] == 0
    # Smaller than int8, not only than float.
    assert metrics["bytes_after"] < int8.done["metrics"]["bytes_after"]
    folder = Path(int4.done["outputs"]["model"])
    assert folder.name == "onnx-int4" and not any(p.name.endswith(".int4-stage.onnx") for p in folder.iterdir())
    ops = {n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node}
    assert {"MatMulNBits", "GatherBlockQuantized", "MatMulInteger"} <= ops
    float_predictions = _predict(source, encoder_data["utterances"], tmp_path / "f")
    int4_predictions = _predict(folder, encoder_data["utterances"], tmp_path / "i")
    same = sum(a == b for a, b in zip(float_predictions, int4_predictions, strict=True)) / len(int4_predictions)
    assert same >= 0.9


def test_quantize_refuses_an_unknown_scheme_and_bad_block_sizes(tmp_path):
    for field, value in (("block_size", 48), ("embedding_block_size", 8), ("scheme", "int3")):
        bad = run_in_process("quantize", {"model": str(tmp_path / "x"), field: value}, tmp_path / f"run-{field}")
        assert bad.error["kind"] == "config" and field in bad.error["message"]


# ---- encoder-prune-layers ----------------------------------------------------------------------------------

PRUNE_LAYERS = {
    "layers": 1,
    "max_steps": 30,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "head_learning_rate": 1e-3,
    "save_steps": 10,
    "logging_steps": 5,
    "num_threads": 1,
    "seed": 0,
    "warmup_ratio": 0.0,
}


def test_layers_to_keep_spreads_the_kept_layers_and_refuses_nothing_to_prune():
    from supertiny_trainer.commands.encoder_prune_layers import layers_to_keep
    from supertiny_trainer.core.errors import ConfigError

    assert layers_to_keep(6, 4, []) == [0, 2, 3, 5]
    assert layers_to_keep(6, 3, []) == [0, 2, 5] or layers_to_keep(6, 3, []) == [0, 3, 5]
    assert layers_to_keep(6, 1, []) == [5]
    assert layers_to_keep(6, 4, [0, 1, 2, 3]) == [0, 1, 2, 3]
    for total, layers, keep in ((6, 6, []), (6, 4, [0, 1, 2, 3, 4, 5]), (6, 4, [0, 6])):
        with pytest.raises(ConfigError):
            layers_to_keep(total, layers, keep)


def test_encoder_prune_layers_distils_a_shallower_student_that_still_answers(encoder_run, encoder_data, tmp_path):
    run, _ = encoder_run
    source = Path(run.done["outputs"]["model"])
    pruned = run_cli(
        "encoder-prune-layers",
        {"model": str(source), "data": str(encoder_data["sft"]), **PRUNE_LAYERS},
        tmp_path / "prune",
    )
    assert pruned.returncode == 0, pruned.stderr[-3000:]
    metrics = pruned.done["metrics"]
    assert (metrics["layers_before"], metrics["layers_after"], metrics["kept_layers"]) == (2, 1, [1])
    assert metrics["parameters"] < metrics["parameters_before"]
    losses = [e["loss"] for e in pruned.of("progress")]
    assert losses[-1] < losses[0]  # the distillation learns
    folder = Path(pruned.done["outputs"]["model"])
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 1
    # The pruned folder is an encoder folder like any other: predict, export and quantize take it.
    predictions = _predict(folder, encoder_data["utterances"], tmp_path / "predict")
    assert len(predictions) == len(encoder_data["records"]) and all(isinstance(p, str) and p for p in predictions)
    exported = run_cli("export", {"model": str(folder)}, tmp_path / "export")
    assert exported.returncode == 0, exported.stderr[-3000:]


def test_encoder_prune_layers_killed_after_a_checkpoint_and_resumed_ends_with_identical_weights(
    encoder_run, encoder_data, tmp_path
):
    import torch
    from safetensors.torch import load_file

    run, _ = encoder_run
    config = {"model": run.done["outputs"]["model"], "data": str(encoder_data["sft"]), **PRUNE_LAYERS}
    whole = run_cli("encoder-prune-layers", config, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    run_dir = tmp_path / "interrupted"
    checkpoint, returncode = run_cli_until_checkpoint("encoder-prune-layers", config, run_dir)
    assert returncode == -9 and checkpoint["step"] == 10 and not (run_dir / "model").exists()
    resumed = run_cli("encoder-prune-layers", config, run_dir, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.done["metrics"]["resumed_from_step"] >= 10
    for name in ("model.safetensors", "heads.safetensors"):
        expected = load_file(str(Path(whole.done["outputs"]["model"]) / name))
        actual = load_file(str(Path(resumed.done["outputs"]["model"]) / name))
        assert [k for k in expected if not torch.equal(expected[k], actual[k])] == []


def test_encoder_prune_layers_refuses_data_from_another_task(encoder_run, tmp_path):
    run, _ = encoder_run
    other = write_jsonl(
        tmp_path / "other.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"type": "function", "function": {"name": "not_an_intent", "arguments": "{}"}}],
                    },
                ],
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "not_an_intent", "parameters": {"type": "object", "properties": {}}},
                    }
                ],
            }
        ],
    )
    bad = run_in_process(
        "encoder-prune-layers",
        {"model": run.done["outputs"]["model"], "data": str(other), **PRUNE_LAYERS},
        tmp_path / "run",
    )
    assert bad.error["kind"] == "data" and "not_an_intent" in bad.error["message"]


# ---- value heads: enum, boolean and small-range integer arguments ---------------------------------------------

VALUE_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "set_timer",
            "description": "Starts a timer.",
            "parameters": {
                "type": "object",
                "required": ["amount", "unit"],
                "properties": {
                    "amount": {"type": "integer", "minimum": 1},  # unbounded above: a number tagged as a span
                    "unit": {"type": "string", "enum": ["seconds", "minutes", "hours"]},
                    "loud": {"type": "boolean"},
                    "label": {"type": "string", "x-span": True},
                },
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Forecast.",
            "parameters": {
                "type": "object",
                "required": ["city", "days"],
                "properties": {
                    "city": {"type": "string", "x-span": True},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},  # a small range: a value head
                    "scale": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
            },
        },
    },
]


def value_task_rows() -> list[tuple[str, str, dict]]:
    """(utterance, function, typed arguments): the numbers as the teacher writes them (3, true), not strings."""
    rows = []
    for i, (amount, unit) in enumerate(
        [
            (5, "minutes"),
            (30, "seconds"),
            (2, "hours"),
            (10, "minutes"),
            (45, "seconds"),
            (3, "hours"),
            (15, "minutes"),
            (20, "seconds"),
        ]
    ):
        loud, label = i % 2 == 0, ["pasta", "tea", None, "eggs"][i % 4]
        text = f"set a {'loud ' if loud else ''}timer for {amount} {unit}" + (f" for the {label}" if label else "")
        arguments = {
            "amount": amount,
            "unit": unit,
            **({"loud": True} if loud else {}),
            **({"label": label} if label else {}),
        }
        rows.append((text, "set_timer", arguments))
    for i, (city, when, days) in enumerate(
        [
            ("paris", "tomorrow", 1),
            ("berlin", "this week", 7),
            ("rome", "tomorrow", 1),
            ("oslo", "this week", 7),
            ("lima", "the weekend", 3),
            ("tokyo", "the weekend", 3),
            ("cairo", "tomorrow", 1),
            ("quito", "this week", 7),
        ]
    ):
        fahrenheit = i % 3 == 0
        text = f"weather in {city} {when}" + (" in fahrenheit" if fahrenheit else "")
        rows.append(
            (text, "get_weather", {"city": city, "days": days, **({"scale": "fahrenheit"} if fahrenheit else {})})
        )
    return rows


def value_sft_line(text: str, name: str, arguments: dict, votes: list[dict] | None = None, tools=None) -> dict:
    row = {
        "messages": [
            {"role": "system", "content": "Call one function."},
            {"role": "user", "content": text},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
                ],
            },
        ],
        "tools": tools or VALUE_TOOLS,
    }
    if votes is not None:
        row["votes"] = votes
    return row


@pytest.fixture(scope="session")
def value_data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("value-data")
    rows = value_task_rows() * 2  # twice: a tiny random BERT memorizes them within the steps below
    lines = []
    for i, (text, name, arguments) in enumerate(rows):
        votes = None
        if i % 4 == 0:  # the teacher agreed 3 to 1; the outvoted call dropped an optional argument
            fewer = (
                {k: v for k, v in arguments.items() if k not in ("loud", "scale")} if len(arguments) > 2 else arguments
            )
            votes = [
                {"name": name, "arguments": json.dumps(arguments), "share": 0.75},
                {"name": name, "arguments": json.dumps(fewer), "share": 0.25},
            ]
        lines.append(value_sft_line(text, name, arguments, votes))
    return {
        "root": root,
        "rows": value_task_rows(),
        "sft": write_jsonl(root / "sft.jsonl", lines),
        "utterances": write_jsonl(
            root / "utterances.jsonl",
            [{"id": f"v{i}", "utterance": t} for i, (t, _, _) in enumerate(value_task_rows())],
        ),
    }


VALUE_SFT = {**ENCODER_SFT, "max_steps": 120, "save_steps": 60}


@pytest.fixture(scope="session")
def value_run(tiny_bert, value_data, tmp_path_factory):
    run = run_cli(
        "encoder-sft",
        {"model": str(tiny_bert), "data": str(value_data["sft"]), **VALUE_SFT},
        tmp_path_factory.mktemp("value-sft"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _schema_problems(prediction: str) -> list[str]:
    """Why a predicted compact call breaks VALUE_TOOLS' schema (the string form: "3", "true")."""
    name, pairs = call_pairs_from_compact(prediction)
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in VALUE_TOOLS}
    if name not in tools:
        return [f"unknown function {name}"]
    params, problems = tools[name], []
    keys = [k for k, _ in pairs]
    problems += [f"{k} repeated" for k in set(keys) if keys.count(k) > 1]
    problems += [f"{k} missing" for k in params["required"] if k not in keys]
    for key, value in pairs:
        prop = params["properties"].get(key)
        if prop is None:
            problems.append(f"{key} unknown")
        elif "enum" in prop and value not in prop["enum"]:
            problems.append(f"{key}={value!r} not in enum")
        elif prop["type"] == "boolean" and value not in ("true", "false"):
            problems.append(f"{key}={value!r} not a boolean")
        elif prop["type"] == "integer" and not (
            value.isdigit() and prop.get("minimum", -1e9) <= int(value) <= prop.get("maximum", 1e9)
        ):
            problems.append(f"{key}={value!r} not an integer in range")
    return problems


def _expected_compact_pairs(name: str, arguments: dict) -> tuple[str, list[tuple[str, str]]]:
    from supertiny_trainer.student.encoder_data import string_form

    return name, sorted((k, string_form(v)) for k, v in arguments.items())


def test_value_heads_argument_kinds_come_from_the_json_schema():
    from supertiny_trainer.student.encoder_data import span_slots, tool_schema, value_heads

    schema = tool_schema(VALUE_TOOLS, "tools")
    assert {k: s.kind for k, s in schema["set_timer"].items()} == {
        "amount": "number",
        "unit": "enum",
        "loud": "boolean",
        "label": "span",
    }
    assert schema["get_weather"]["days"].kind == "integer" and schema["get_weather"]["days"].values == tuple("1234567")
    assert schema["set_timer"]["unit"].required and not schema["set_timer"]["loud"].required
    assert span_slots(schema) == {"set_timer": ["amount", "label"], "get_weather": ["city"]}
    assert [(h["function"], h["argument"], h["kind"]) for h in value_heads(schema)] == [
        ("get_weather", "days", "integer"),
        ("get_weather", "scale", "enum"),
        ("set_timer", "loud", "boolean"),
        ("set_timer", "unit", "enum"),
    ]
    # A schema that marks no span (MASSIVE's): every plain string is a span. One that marks some: the rest is free text.
    plain = tool_schema(
        [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"a": {"type": "string"}}}}}], "t"
    )
    assert plain["f"]["a"].kind == "span"
    marked = tool_schema(
        [
            *VALUE_TOOLS,
            {
                "type": "function",
                "function": {"name": "note", "parameters": {"properties": {"text": {"type": "string"}}}},
            },
        ],
        "t",
    )
    assert marked["note"]["text"].kind == "free text"
    wide = tool_schema(
        [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {
                        "properties": {
                            "n": {"type": "integer", "minimum": 0, "maximum": 1000},
                            "x": {"type": "number", "minimum": 0, "maximum": 3},
                        }
                    },
                },
            }
        ],
        "t",
    )
    assert wide["f"]["n"].kind == "number" and wide["f"]["x"].kind == "number"


def test_value_heads_get_soft_targets_from_the_votes_over_their_own_functions_calls(minilm_converted):
    from collections import Counter

    from supertiny_trainer.commands.encoder_sft import EncoderCollator
    from supertiny_trainer.student.encoder import EncoderLabels, load_encoder_tokenizer
    from supertiny_trainer.student.encoder_data import (
        EncoderExample,
        TargetCall,
        encode_examples,
        span_slots,
        tool_schema,
        value_heads,
    )

    schema = tool_schema(VALUE_TOOLS, "tools")
    labels = EncoderLabels.from_schema(span_slots(schema), 64, "mean")
    labels.set_value_heads(value_heads(schema))
    assert labels.value_slices() == [(0, 8), (8, 11), (11, 14), (14, 18)] and labels.num_values == 18
    example = EncoderExample(
        "set a loud timer for 5 minutes",
        [
            TargetCall("set_timer", (("amount", "5"), ("unit", "minutes"), ("loud", "true")), 0.5),
            TargetCall("set_timer", (("amount", "5"), ("unit", "seconds")), 0.3),
            TargetCall("get_weather", (("city", "set"), ("days", "2")), 0.2),
        ],
    )
    counts = Counter()
    encoded = encode_examples([example], load_encoder_tokenizer(minilm_converted, 64), labels, counts)
    assert counts["slot_values_not_found"] == 0  # "minutes", "true" and "2" are not looked for in the text
    batch = EncoderCollator(len(labels.intents), len(labels.tags), 0, labels.num_values)(encoded)
    targets = batch["value_targets"][0].tolist()
    assert targets[0:8] == pytest.approx([0, 0, 0.2, 0, 0, 0, 0, 0])  # days: only the get_weather vote speaks
    assert targets[8:11] == pytest.approx([0.2, 0, 0])  # scale: absent in that call
    assert targets[11:14] == pytest.approx([0.3, 0, 0.5])  # loud: absent, false, true
    assert targets[14:18] == pytest.approx([0, 0.3, 0.5, 0])  # unit: absent, seconds, minutes, hours
    tag = {t: i for i, t in enumerate(labels.tags)}
    assert batch["tag_targets"][0, 6, tag["B-amount"]] == pytest.approx(0.8)  # the number is a span
    assert batch["tag_targets"][0, 7, tag["O"]] == pytest.approx(1.0)  # the enum's word is not tagged
    assert batch["tag_targets"][0, 1, tag["B-city"]] == pytest.approx(0.2)


def test_value_heads_decode_only_the_intents_heads_and_never_leave_a_required_one_absent():
    from supertiny_trainer.student.encoder import EncoderLabels
    from supertiny_trainer.student.encoder_data import number_slots, span_slots, tool_schema, value_heads
    from supertiny_trainer.student.tag_decoding import TagDecoder

    schema = tool_schema(VALUE_TOOLS, "tools")
    labels = EncoderLabels.from_schema(span_slots(schema), 64, "mean")
    labels.set_value_heads(value_heads(schema))
    decoder = TagDecoder(labels)
    values = np.zeros(labels.num_values)
    values[[0, 8, 11, 14]] = 5.0  # "absent" wins everywhere
    values[[2, 15]] = 4.0  # days=2, unit=seconds: the best values of the required heads
    intents = np.array([0.0, 3.0])  # set_timer (intents sorted: get_weather, set_timer)
    text, offsets = "go", [(0, 2)]
    tags = np.zeros((1, len(labels.tags)))
    tags[0, 0] = 5
    assert decoder.decode(text, intents, tags, offsets, [0], values).arguments == [("unit", "seconds")]
    assert decoder.decode(text, intents[::-1], tags, offsets, [0], values).arguments == [("days", "2")]
    values[13] = 6.0  # loud=true beats absent
    assert (
        decoder.decode(text, intents, tags, offsets, [0], values).compact() == 'set_timer(loud="true", unit="seconds")'
    )
    # A number span must parse: "five" tagged as the integer amount is dropped, "5" is kept.
    labels.number_slots = number_slots(schema)
    assert labels.number_slots == {"set_timer": {"amount": "integer"}}
    tag = {t: i for i, t in enumerate(labels.tags)}
    tags = np.zeros((2, len(labels.tags)))
    tags[:, tag["B-amount"]] = 5
    for text, kept in (("five 5", [("amount", "5")]), ("five x", [])):
        arguments = TagDecoder(labels).decode(text, intents, tags, [(0, 4), (5, 6)], [0, 1], values).arguments
        assert [a for a in arguments if a[0] == "amount"] == kept


def test_value_heads_train_predict_schema_valid_calls_and_export_with_the_same_answers(value_run, value_data, tmp_path):
    import onnx

    folder = Path(value_run.done["outputs"]["model"])
    labels = json.loads((folder / "supertiny.json").read_text())
    assert [(h["function"], h["argument"], h["offset"]) for h in labels["value_heads"]] == [
        ("get_weather", "days", 0),
        ("get_weather", "scale", 8),
        ("set_timer", "loud", 11),
        ("set_timer", "unit", 14),
    ]
    assert labels["intent_slots"] == {"get_weather": ["city"], "set_timer": ["amount", "label"]}
    assert labels["number_slots"] == {"set_timer": {"amount": "integer"}}
    assert value_run.done["metrics"]["value_heads"] == 4 and value_run.done["metrics"]["slot_values_not_found"] == 0
    assert "loss/values" in value_run.of("progress")[0]
    predictions = _predict(folder, value_data["utterances"], tmp_path / "torch")
    assert [p for p in predictions if _schema_problems(p)] == []
    expected = [_expected_compact_pairs(name, arguments) for _, name, arguments in value_data["rows"]]
    actual = [(n, sorted(pairs)) for n, pairs in map(call_pairs_from_compact, predictions)]
    assert sum(a == e for a, e in zip(actual, expected, strict=True)) / len(expected) >= 0.75, list(
        zip(actual, expected, strict=True)
    )
    # Every value kind is predicted right somewhere: an enum, a boolean, a small-range integer and a span number.
    assert any(("unit", "hours") in a[1] for a in actual) and any(("loud", "true") in a[1] for a in actual)
    assert any(("days", "7") in a[1] for a in actual) and any(("amount", "45") in a[1] for a in actual)

    exported = run_cli("export", {"model": str(folder), "num_threads": 1}, tmp_path / "export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    onnx_folder = Path(exported.done["outputs"]["model"])
    graph = onnx.load(str(onnx_folder / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["intent_logits", "tag_logits", "value_logits"]
    assert graph.output[2].type.tensor_type.shape.dim[1].dim_value == 18
    assert exported.done["metrics"]["max_abs_diff_values"] <= 1e-3
    assert _predict(onnx_folder, value_data["utterances"], tmp_path / "onnx") == predictions

    quantized = run_cli("quantize", {"model": str(onnx_folder)}, tmp_path / "q")
    assert quantized.returncode == 0, quantized.stderr[-3000:]
    assert quantized.done["metrics"]["check_value_agreement"] >= 0.9
    int8 = _predict(quantized.done["outputs"]["model"], value_data["utterances"], tmp_path / "int8")
    assert [p for p in int8 if _schema_problems(p)] == []
    assert sum(a == b for a, b in zip(int8, predictions, strict=True)) / len(predictions) >= 0.8
    int4 = run_cli("quantize", {"model": str(onnx_folder), "scheme": "int4"}, tmp_path / "q4")
    assert int4.returncode == 0, int4.stderr[-3000:]
    assert [
        p
        for p in _predict(int4.done["outputs"]["model"], value_data["utterances"], tmp_path / "int4")
        if _schema_problems(p)
    ] == []


def test_value_heads_survive_vocabulary_and_layer_pruning(value_run, value_data, tmp_path):
    folder = Path(value_run.done["outputs"]["model"])
    before = _predict(folder, value_data["utterances"], tmp_path / "before")
    vocab = run_cli("encoder-prune-vocab", {"model": str(folder), "data": str(value_data["sft"])}, tmp_path / "vocab")
    assert vocab.returncode == 0, vocab.stderr[-3000:]
    pruned = Path(vocab.done["outputs"]["model"])
    assert (
        json.loads((pruned / "supertiny.json").read_text())["value_heads"]
        == json.loads((folder / "supertiny.json").read_text())["value_heads"]
    )
    assert _predict(pruned, value_data["utterances"], tmp_path / "vocab-predict") == before  # same pieces, same answers
    layers = run_cli(
        "encoder-prune-layers",
        {"model": str(pruned), "data": str(value_data["sft"]), **PRUNE_LAYERS},
        tmp_path / "layers",
    )
    assert layers.returncode == 0, layers.stderr[-3000:]
    assert "loss/values" in layers.of("progress")[0]
    after = _predict(layers.done["outputs"]["model"], value_data["utterances"], tmp_path / "layers-predict")
    assert [p for p in after if _schema_problems(p)] == []


def test_value_heads_refuse_free_text_and_numbers_not_written_in_the_input(tiny_bert, tmp_path):
    note = {
        "type": "function",
        "function": {
            "name": "note",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "who": {"type": "string", "x-span": True}},
            },
        },
    }
    data = write_jsonl(
        tmp_path / "free.jsonl",
        [value_sft_line("note for bob", "note", {"who": "bob", "text": "call him"}, tools=[note])],
    )
    run = run_in_process("encoder-sft", {"model": str(tiny_bert), "data": str(data), "max_steps": 1}, tmp_path / "free")
    assert run.returncode == 2 and run.error["kind"] == "config"
    assert (
        "argument 'text' of function 'note' is free text" in run.error["message"] and "decoder" in run.error["message"]
    )

    count = {
        "type": "function",
        "function": {
            "name": "count",
            "parameters": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}},
        },
    }
    rows = [
        value_sft_line(text, "count", {"n": n}, tools=[count])
        for text, n in (("two apples and a pear", 3), ("one dog", 1), ("I have 4 cats", 4), ("a few birds", 3))
    ]
    run = run_in_process(
        "encoder-sft",
        {"model": str(tiny_bert), "data": str(write_jsonl(tmp_path / "n.jsonl", rows)), "max_steps": 1},
        tmp_path / "count",
    )
    assert run.returncode == 2 and run.error["kind"] == "data"
    assert "argument 'n' of function 'count'" in run.error["message"] and "3 of its 4" in run.error["message"]
    assert "minimum and maximum" in run.error["message"]


def test_the_free_text_guard_fires_on_pipeline_rows_whose_tools_lost_their_span_marks(tiny_bert, tmp_path):
    from supertiny_trainer.student.encoder_data import free_text_arguments, tool_schema

    # The sft rows carry the tools the teacher saw, where "x-span" is said in words (tasks/from-files/task.ts
    # teacherSchema), so the rows alone make every string a span; the task description says which is free text.
    golden = json.loads(
        (Path(__file__).resolve().parents[2] / "test" / "golden" / "task-rules" / "from-files.json").read_text(
            encoding="utf-8"
        )
    )
    task = tmp_path / "task.json"
    task.write_text(json.dumps(golden["description"]))
    send = next(f for f in golden["description"]["functions"] if f["name"] == "send_message")
    tools = [
        {"type": "function", "function": {"name": "send_message", "description": "", "parameters": send["parameters"]}}
    ]
    assert "x-span" not in json.dumps(tools)
    assert free_text_arguments(tool_schema(tools, "the rows' tools")) == []  # what the rows alone say
    data = write_jsonl(
        tmp_path / "sft.jsonl",
        [value_sft_line("text bob that I am late", "send_message", {"to": "bob", "text": "running late"}, tools=tools)],
    )
    run = run_in_process(
        "encoder-sft",
        {"model": str(tiny_bert), "data": str(data), "max_steps": 1, "task": str(task), "num_threads": 1},
        tmp_path / "run",
    )
    assert run.returncode == 2 and run.error["kind"] == "config", run.events
    assert "argument 'text' of function 'send_message' is free text" in run.error["message"]


def test_for_a_task_the_encoder_can_learn_the_description_gives_the_schema_the_rows_gave():
    # MASSIVE's description (every slot a span, a repeatable one as a list) and a typed task's (enum, boolean,
    # bounded integer, span): the same specs as the pipeline rows' tools gave, so the same heads and numbers.
    from supertiny_trainer.student.encoder_data import description_schema, tool_schema
    from supertiny_trainer.student.task_description import TaskDescription

    golden = Path(__file__).resolve().parents[2] / "test" / "golden" / "task-rules"
    massive = json.loads((golden / "massive.json").read_text(encoding="utf-8"))["description"]
    tools = [
        {"type": "function", "function": {"name": f["name"], "parameters": f["parameters"]}}
        for f in massive["functions"]
    ]
    assert description_schema(TaskDescription.from_json(massive, "massive")) == tool_schema(tools, "rows")
    typed = {
        "format": "supertiny-task/1",
        "task": "t",
        "functions": [
            {
                "name": "get_weather",
                "description": "",
                "parameters": VALUE_TOOLS[1]["function"]["parameters"],
                "arguments": [
                    {"name": "city", "kind": "span", "type": "string", "required": True},
                    {"name": "days", "kind": "number", "type": "integer", "required": True, "minimum": 1, "maximum": 7},
                    {
                        "name": "scale",
                        "kind": "enum",
                        "type": "string",
                        "required": False,
                        "values": ["celsius", "fahrenheit"],
                    },
                ],
            }
        ],
    }
    assert description_schema(TaskDescription.from_json(typed, "typed")) == tool_schema([VALUE_TOOLS[1]], "rows")


def test_encoder_sft_from_a_trained_student_keeps_its_heads_for_the_intents_and_tags_it_knows(encoder_run):
    """A refresh trains from the deployed student: its head rows carry over by label name, new labels start fresh."""
    import dataclasses

    from safetensors.torch import load_file

    from supertiny_trainer.student.encoder import EncoderLabels, build_encoder_student, load_bert, warm_start_heads

    run, _ = encoder_run
    folder = Path(run.done["outputs"]["model"])
    old = EncoderLabels.load(folder)
    trained = load_file(str(folder / "heads.safetensors"))
    # The new label space: the known intents in another order, one of them gone, one new.
    intents = ["a_new_intent", *reversed(old.intents[1:])]
    labels = dataclasses.replace(old, intents=intents)
    model = build_encoder_student(load_bert(folder), labels)
    copied = warm_start_heads(model, labels, folder)
    assert copied == {"intents": len(old.intents) - 1, "tags": len(old.tags), "value_heads": 0}
    for j, name in enumerate(intents[1:], start=1):
        i = old.intents.index(name)
        assert (model.intent_head.weight[j] == trained["intent_head.weight"][i]).all()
        assert model.intent_head.bias[j] == trained["intent_head.bias"][i]
    assert not (model.intent_head.weight[0] == trained["intent_head.weight"][0]).all()  # fresh
    assert (model.tag_head.weight == trained["tag_head.weight"]).all()
    # A base encoder (no heads) is not a trained student: nothing to carry over.
    assert warm_start_heads(model, labels, folder.parent / "missing") is None


def test_the_export_check_scales_its_tolerance_with_large_logits():
    import numpy as np

    from supertiny_trainer.commands.encoder_export import scaled_diff

    # A model with large logits agrees to float32's digits while differing by more than 1e-3 in absolute terms.
    large = np.array([[50.0, -80.0, 3.0]], dtype=np.float32)
    assert scaled_diff(large + np.array([[1.2e-3, -1.5e-3, 0.0]], dtype=np.float32), large) <= 1e-3
    # Near zero the tolerance stays absolute: a real mismatch is still caught.
    small = np.array([[0.5, -0.2, 0.0]], dtype=np.float32)
    assert scaled_diff(small + np.array([[0.0, 2e-3, 0.0]], dtype=np.float32), small) > 1e-3
    assert scaled_diff(large + np.array([[0.0, 0.5, 0.0]], dtype=np.float32), large) > 1e-3
