"""The encoder student end to end: MiniLM conversion, training with soft vote targets, resume after SIGKILL,
predict, ONNX export and int8 quantization, on tiny MASSIVE slices (a tiny random BERT keeps it to seconds)."""

from __future__ import annotations

import json
import shutil
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
ENCODER_SFT = {"max_steps": 60, "batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 1e-2,
               "save_steps": 20, "logging_steps": 10, "num_threads": 1, "seed": 0, "warmup_ratio": 0.0,
               "freeze_word_embeddings": False}


@pytest.fixture(scope="session")
def minilm_converted(tmp_path_factory) -> Path:
    assert (MINILM / "all-minilm-l6-v2.onnx").is_file(), f"{MINILM} is missing: run scripts/setup.sh (it fetches MiniLM)"
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
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False).save_pretrained(folder)
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
            votes = [{"name": record["intent"], "arguments": json.dumps(arguments_object(pairs)), "share": 0.75},
                     {"name": record["intent"], "arguments": json.dumps(arguments_object(pairs[:-1])), "share": 0.25}]
        rows.append(encoder_sft_line(record, slots, scenarios, votes))
    return {
        "root": root, "records": records, "slots": slots, "scenarios": scenarios,
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
        feed = {"input_ids": np.array([encoding.ids]), "attention_mask": np.array([encoding.attention_mask]),
                "token_type_ids": np.array([encoding.type_ids])}
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

    spans, missing = locate_values("Set an alarm at Ten am, then at ten", (("time", "ten"), ("time", "TEN AM"),
                                                                            ("date", "monday")))
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
    ids, lost = bio_tag_ids(spans, encoding.offsets, [not s for s in encoding.special_tokens_mask],
                            {t: i for i, t in enumerate(tags)})
    assert lost == 0
    assert [tags[i] if i >= 0 else None for i in ids] == [None, "O", "O", "O", "O", "B-time", "I-time", "B-date",
                                                          "I-date", None]


def test_votes_become_soft_intent_and_tag_targets(minilm_converted):
    from supertiny_trainer.commands.encoder_sft import EncoderCollator
    from supertiny_trainer.student.encoder import EncoderLabels, load_encoder_tokenizer
    from supertiny_trainer.student.encoder_data import EncoderExample, TargetCall, encode_examples
    from collections import Counter

    labels = EncoderLabels.from_schema({"alarm_set": ["date", "time"], "alarm_query": ["date"]}, 64, "mean")
    example = EncoderExample("wake me up at five am this week", [
        TargetCall("alarm_set", (("time", "five am"), ("date", "this week")), 0.6),
        TargetCall("alarm_query", (("date", "this week"),), 0.4),
    ])
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
    assert all(not t.startswith("I-") or prev in ("B-" + t[2:], t) for prev, t in zip(["O"] + path, path))
    assert path == ["B-time", "I-time", "I-time"]  # the best valid path keeps the I-time evidence


def test_a_slot_that_may_not_repeat_keeps_its_most_probable_span_and_repeatable_ones_keep_all():
    from supertiny_trainer.student.encoder import EncoderLabels
    from supertiny_trainer.student.encoder_data import EncoderExample, TargetCall, repeated_slots
    from supertiny_trainer.student.tag_decoding import TagDecoder

    examples = [EncoderExample("x", [TargetCall("alarm_set", (("time", "5"), ("time", "6")), 0.5),
                                     TargetCall("alarm_set", (("date", "today"),), 0.5)])]
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


def test_a_label_outside_the_offered_tools_is_a_data_error_naming_the_line(encoder_data, tiny_bert, tmp_path):
    record = encoder_data["records"][0]
    row = encoder_sft_line(record, encoder_data["slots"], encoder_data["scenarios"])
    row["messages"][-1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"song_name": "x"})
    data = write_jsonl(tmp_path / "sft.jsonl", [encoder_sft_line(r, encoder_data["slots"], encoder_data["scenarios"])
                                                for r in encoder_data["records"][1:3]] + [row])
    run = run_in_process("encoder-sft", {"model": str(tiny_bert), "data": str(data), "max_steps": 1}, tmp_path / "run")
    assert run.returncode == 2 and run.error["kind"] == "data"
    assert "line 3" in run.error["message"] and "song_name" in run.error["message"]


def test_a_bad_vote_share_is_a_data_error_naming_the_line(encoder_data, tiny_bert, tmp_path):
    row = encoder_sft_line(encoder_data["records"][0], encoder_data["slots"], encoder_data["scenarios"],
                           votes=[{"name": "alarm_set", "arguments": "{}", "share": 1.5}])
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
    run = run_in_process("encoder-sft", {"model": str(tiny_bert), "data": str(encoder_data["sft"]), "max_steps": 1,
                                         "tools": str(tools), "num_threads": 1}, tmp_path / "run")
    assert run.returncode == 0, run.events
    labels = json.loads((Path(run.done["outputs"]["model"]) / "supertiny.json").read_text())
    assert labels["intents"] == names
    assert labels["intent_slots"][extra] == encoder_data["slots"][extra]


def test_a_non_bert_base_model_is_refused_by_name(encoder_data, tmp_path):
    from transformers import Qwen2Config

    Qwen2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "qwen")
    run = run_in_process("encoder-sft", {"model": str(tmp_path / "qwen"), "data": str(encoder_data["sft"]),
                                         "max_steps": 1}, tmp_path / "run")
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
    folder = Path(run.done["outputs"]["model"])
    assert {"config.json", "model.safetensors", "heads.safetensors", "tokenizer.json", "supertiny.json"} <= {
        p.name for p in folder.iterdir()}
    labels = json.loads((folder / "supertiny.json").read_text())
    offered = {i for r in encoder_data["records"] for i in encoder_data["scenarios"][r["scenario"]]}
    assert labels["format"] == "supertiny-encoder/1" and labels["family"] == "encoder" and labels["max_length"] == 64
    assert labels["intents"] == sorted(offered) and labels["tags"][0] == "O"
    assert labels["intent_slots"]["alarm_set"] == encoder_data["slots"]["alarm_set"]
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"


def test_predict_on_an_encoder_folder_gives_schema_valid_compact_calls_that_fit_the_training_data(
        encoder_run, encoder_data, tmp_path):
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
    from safetensors.torch import load_file
    import torch

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
    from safetensors.torch import load_file
    import torch

    run = run_cli("encoder-sft", {"model": str(minilm_converted), "data": str(encoder_data["sft"]), "max_steps": 2,
                                  "batch_size": 4, "num_threads": 1}, tmp_path)  # frozen by default
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.done["metrics"]
    assert metrics["parameters"] - metrics["trainable_parameters"] == 30522 * 384
    before, after = load_file(str(minilm_converted / "model.safetensors")), load_file(
        str(Path(run.done["outputs"]["model"]) / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(before[key], after[key])
    assert not torch.equal(before["encoder.layer.0.attention.self.query.weight"],
                           after["encoder.layer.0.attention.self.query.weight"])


# ---- export, quantize -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def encoder_exported(encoder_run, tmp_path_factory):
    run, _ = encoder_run
    exported = run_cli("export", {"model": run.done["outputs"]["model"], "num_threads": 1},
                       tmp_path_factory.mktemp("encoder-export"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    return exported


def test_export_writes_one_onnx_file_with_the_format_io_matching_pytorch(encoder_exported, encoder_run, encoder_data,
                                                                          tmp_path):
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
    same = sum(a == b for a, b in zip(float_predictions, int8_predictions)) / len(int8_predictions)
    assert same >= 0.9


def test_quantize_int4_puts_the_feed_forward_and_embeddings_in_4_bits_and_keeps_its_answers(encoder_exported, encoder_data, tmp_path):
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
    same = sum(a == b for a, b in zip(float_predictions, int4_predictions)) / len(int4_predictions)
    assert same >= 0.9


def test_quantize_refuses_an_unknown_scheme_and_bad_block_sizes(tmp_path):
    for field, value in (("block_size", 48), ("embedding_block_size", 8), ("scheme", "int3")):
        bad = run_in_process("quantize", {"model": str(tmp_path / "x"), field: value}, tmp_path / f"run-{field}")
        assert bad.error["kind"] == "config" and field in bad.error["message"]


# ---- encoder-prune-layers ----------------------------------------------------------------------------------

PRUNE_LAYERS = {"layers": 1, "max_steps": 30, "batch_size": 8, "learning_rate": 1e-3, "head_learning_rate": 1e-3,
                "save_steps": 10, "logging_steps": 5, "num_threads": 1, "seed": 0, "warmup_ratio": 0.0}


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
    pruned = run_cli("encoder-prune-layers", {"model": str(source), "data": str(encoder_data["sft"]), **PRUNE_LAYERS},
                     tmp_path / "prune")
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


def test_encoder_prune_layers_killed_after_a_checkpoint_and_resumed_ends_with_identical_weights(encoder_run, encoder_data, tmp_path):
    from safetensors.torch import load_file
    import torch

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
    other = write_jsonl(tmp_path / "other.jsonl", [{"messages": [{"role": "user", "content": "hi"}, {
        "role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "not_an_intent", "arguments": "{}"}}]}],
        "tools": [{"type": "function", "function": {"name": "not_an_intent", "parameters": {"type": "object", "properties": {}}}}]}])
    bad = run_in_process("encoder-prune-layers", {"model": run.done["outputs"]["model"], "data": str(other), **PRUNE_LAYERS}, tmp_path / "run")
    assert bad.error["kind"] == "data" and "not_an_intent" in bad.error["message"]
