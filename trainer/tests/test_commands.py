"""Each command end to end on a tiny model, through the CLI the TypeScript adapter runs."""

import json
from pathlib import Path

import pytest

from cli_harness import run_cli, run_in_process
from massive_fixtures import gold_call, read_jsonl
from onnx_greedy import OnnxStudent
from supertiny_trainer.student.text_format import SPECIAL_TOKENS, StudentTemplate

TEMPLATE_FIELDS = {"prompt_prefix": "<|bos|>", "prompt_suffix": "<|sep|>", "eos_token": "<|eos|>"}


def exact_match(predictions: list[str], records: list[dict]) -> float:
    return sum(p == gold_call(r) for p, r in zip(predictions, records, strict=True)) / len(records)


def test_tokenizer_has_the_student_special_tokens_and_round_trips_a_sample(tiny):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    folder = tiny.tokenizer_dir
    assert {"tokenizer.json", "tokenizer_config.json", "supertiny.json"} <= {p.name for p in folder.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.eos_token == "<|eos|>"

    record = tiny.records[0]
    text = StudentTemplate().prompt(record["utt"]) + StudentTemplate().target(gold_call(record))
    raw = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    assert raw == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert raw[0] == 1 and raw[-1] == 3 and raw.count(2) == 1
    assert tokenizer.decode(raw, skip_special_tokens=True) == record["utt"] + gold_call(record)
    assert tiny.tokenizer_run.done["metrics"]["vocab_size"] <= 400


def test_tokenizer_makes_function_and_slot_names_single_tokens_within_the_vocabulary(tiny, tmp_path):
    from transformers import AutoTokenizer

    record = next(r for r in tiny.records if "[time : nine am]" in r["annot_utt"] and "[date" in r["annot_utt"])
    call = gold_call(record)  # alarm_set(time="nine am", date="...")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny.tokenizer_dir))
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(call, add_special_tokens=False)["input_ids"])
    assert tokens[:2] == [record["intent"] + "(", 'time="'] and ' date="' in tokens
    assert tokenizer.decode(tokenizer(call, add_special_tokens=False)["input_ids"]) == call
    metrics = tiny.tokenizer_run.done["metrics"]
    assert metrics["call_tokens"] > 0 and metrics["vocab_size"] <= 400

    # Off, the same call is spelled in sub-word pieces, and so takes more tokens.
    run = run_in_process(
        "tokenizer", {"data": str(tiny.sft_data), "vocab_size": 400, "min_frequency": 1, "call_tokens": False}, tmp_path
    )
    plain = AutoTokenizer.from_pretrained(run.done["outputs"]["tokenizer"])
    assert run.done["metrics"]["call_tokens"] == 0
    assert len(plain(call, add_special_tokens=False)["input_ids"]) > len(tokens)


def test_a_vocabulary_too_small_for_the_call_tokens_is_refused_by_name(tiny, tmp_path):
    run = run_in_process("tokenizer", {"data": str(tiny.sft_data), "vocab_size": 262, "min_frequency": 1}, tmp_path)
    assert run.returncode != 0
    assert (
        run.error["kind"] == "config" and "vocab_size" in run.error["message"] and "call_tokens" in run.error["message"]
    )


def test_init_builds_a_qwen2_model_shaped_by_the_config(tiny):
    config = json.loads((tiny.init_model / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
    assert (
        config["hidden_size"],
        config["num_hidden_layers"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
        config["intermediate_size"],
    ) == (64, 2, 4, 2, 128)
    assert config["vocab_size"] == tiny.tokenizer_run.done["metrics"]["vocab_size"]
    template = json.loads((tiny.init_model / "supertiny.json").read_text())
    assert TEMPLATE_FIELDS.items() <= template.items()
    assert (tiny.init_model / "model.safetensors").is_file() and (tiny.init_model / "tokenizer.json").is_file()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny.init_model))
    assert tiny.init_run.done["metrics"]["parameters"] == sum(p.numel() for p in model.parameters())


def _base_model_without_student_tokens(folder: Path) -> Path:
    """A local 'pretrained' folder whose tokenizer knows nothing of the student's special tokens."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        ["set an alarm", "what is the weather"],
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(wrapped),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
        )
    )
    model.save_pretrained(str(folder))
    wrapped.save_pretrained(str(folder))
    return folder


def test_init_from_a_base_model_folder_adds_the_student_tokens(tmp_path):
    base = _base_model_without_student_tokens(tmp_path / "base")
    base_vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    run = run_in_process("init", {"base_model": str(base)}, tmp_path / "run")
    assert run.returncode == 0, run.events
    assert run.done["metrics"]["added_special_tokens"] == SPECIAL_TOKENS
    model_dir = Path(run.done["outputs"]["model"])
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    assert len(tokenizer) == base_vocab + 4
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    ids = tokenizer("<|bos|>set an alarm<|sep|>", add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|bos|>") >= base_vocab
    # The student's end of answer starts as the base's own end token (the base's habit of stopping carries
    # over); tokens without a counterpart in the base start from the mean row, as resizing makes them.
    assert run.done["metrics"]["special_token_rows_from"] == {"<|eos|>": "<|endoftext|>"}
    rows = model.get_input_embeddings().weight
    eos, base_eos = tokenizer.convert_tokens_to_ids("<|eos|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert torch.equal(rows[eos], rows[base_eos])
    assert not torch.equal(rows[tokenizer.convert_tokens_to_ids("<|sep|>")], rows[base_eos])
    assert torch.equal(model.get_output_embeddings().weight[eos], model.get_output_embeddings().weight[base_eos])
    assert TEMPLATE_FIELDS.items() <= json.loads((model_dir / "supertiny.json").read_text()).items()


def test_sft_streams_progress_and_checkpoints_then_done(tiny):
    run = tiny.sft_run
    assert run.returncode == 0
    progress = run.of("progress")
    assert all({"step", "total", "loss", "tokens_per_s"} <= p.keys() for p in progress)
    assert [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    assert progress[-1]["step"] == progress[-1]["total"] == 150
    assert progress[-1]["loss"] < progress[0]["loss"] / 4
    assert [c["step"] for c in run.of("checkpoint")] == [50, 100, 150]
    published = sorted(p.name for p in (tiny.root / "sft" / "checkpoints").iterdir())
    assert published == ["checkpoint-100", "checkpoint-150"]  # keep_checkpoints=2
    assert list((tiny.root / "sft" / ".staging").glob("checkpoint-*")) == []

    metrics = run.done["metrics"]
    assert metrics["steps"] == 150 and metrics["samples_accepted"] == 24
    assert metrics["tokens_per_s"] > 0 and metrics["tokens_seen"] > 0
    assert metrics["peak_memory_bytes"] > 50_000_000 and metrics["peak_memory_kind"] == "rss"
    assert {"config.json", "model.safetensors", "tokenizer.json", "supertiny.json"} <= {
        p.name for p in tiny.sft_model.iterdir()
    }


def test_sft_puts_the_loss_on_the_answer_tokens_only(tiny, tmp_path):
    from trl import SFTTrainer

    from supertiny_trainer.commands.sft import SftConfig, prompt_completion_dataset, sft_arguments
    from supertiny_trainer.core.checkpoints import CheckpointStore
    from supertiny_trainer.student.datasets import load_sft_samples
    from supertiny_trainer.student.model_folder import load_student

    student = load_student(tiny.init_model)
    samples, _ = load_sft_samples(tiny.sft_data)
    store = CheckpointStore(tmp_path)
    store.prepare(resume=False)
    config = SftConfig(model=str(tiny.init_model), data=str(tiny.sft_data), max_steps=1)
    trainer = SFTTrainer(
        model=student.model,
        args=sft_arguments(config, store, student.template),
        train_dataset=prompt_completion_dataset(samples, student.template),
        processing_class=student.tokenizer,
    )
    by_prompt = {s.utterance: s.call for s in samples}
    for row in trainer.train_dataset.select(range(5)):
        labelled = [t for t in row["labels"] if t != -100]
        first = row["labels"].index(labelled[0])
        assert all(t == -100 for t in row["labels"][:first])
        prompt = student.tokenizer.decode(row["input_ids"][:first])
        utterance = prompt.removeprefix("<|bos|>").removesuffix("<|sep|>")
        assert student.tokenizer.decode(labelled) == by_prompt[utterance] + "<|eos|>"


def test_predict_returns_the_memorized_calls_in_input_order(tiny):
    run = run_cli(
        "predict",
        {
            "model": str(tiny.sft_model),
            "data": str(tiny.utterances),
            "batch_size": 10,
            "num_threads": 1,
            "latency_samples": 4,
        },
        tiny.root / "predict",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = list(read_jsonl(run.done["outputs"]["predictions"]))
    assert [r["id"] for r in rows] == [r["id"] for r in tiny.records]
    assert exact_match([r["prediction"] for r in rows], tiny.records) >= 0.9
    assert run.of("progress")[-1]["step"] == len(tiny.records)
    metrics = run.done["metrics"]
    assert metrics["examples"] == len(tiny.records) and metrics["latency_samples"] == 4
    assert 0 < metrics["latency_ms_p50"] <= metrics["latency_ms_p95"]


def test_export_matches_pytorch_and_decodes_with_its_kv_cache(tiny, exported):
    import onnxruntime as ort

    assert exported.returncode == 0, exported.stderr[-3000:]
    metrics, outputs = exported.done["metrics"], exported.done["outputs"]
    assert metrics["max_abs_diff_no_past"] < 1e-3 and metrics["max_abs_diff_with_past"] < 1e-3
    folder = Path(outputs["model"])
    assert {"model.onnx", "tokenizer.json", "supertiny.json", "onnx_io.json"} <= {p.name for p in folder.iterdir()}

    io = json.loads((folder / "onnx_io.json").read_text())
    assert (io["num_layers"], io["num_kv_heads"], io["head_dim"]) == (2, 2, 16)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert (
        [i.name for i in session.get_inputs()]
        == io["inputs"]
        == [
            "input_ids",
            "attention_mask",
            "position_ids",
            "past_key_values.0.key",
            "past_key_values.0.value",
            "past_key_values.1.key",
            "past_key_values.1.value",
        ]
    )
    assert (
        [o.name for o in session.get_outputs()]
        == io["outputs"]
        == ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]
    )
    assert inputs["input_ids"].type == "tensor(int64)" and inputs["past_key_values.0.key"].type == "tensor(float)"
    batch, kv_heads, past, head_dim = inputs["past_key_values.0.key"].shape
    assert (kv_heads, head_dim) == (2, 16) and isinstance(batch, str) and isinstance(past, str)
    import onnx

    graph = onnx.load(str(folder / "model.onnx")).graph
    assert not any(node.metadata_props or node.doc_string for node in graph.node), (
        "exporter debug metadata left in the graph"
    )

    records = tiny.records[::3]
    predictions = OnnxStudent(folder).generate([r["utt"] for r in records])
    assert exact_match(predictions, records) >= 0.85


def test_quantize_shrinks_the_onnx_model_which_still_runs(tiny, exported):
    import onnx

    run = run_cli("quantize", {"model": exported.done["outputs"]["model"]}, tiny.root / "quantize")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.done["metrics"]
    assert metrics["bytes_after"] < metrics["bytes_before"]
    assert metrics["check_top1_agreement"] >= 0.5
    folder = Path(run.done["outputs"]["model"])
    io = json.loads((folder / "onnx_io.json").read_text())
    assert (
        io["weights"] == "int8"
        and io["inputs"] == json.loads((Path(exported.done["outputs"]["model"]) / "onnx_io.json").read_text())["inputs"]
    )
    # The decoder's int8: every constant-weight MatMul an 8-bit MatMulNBits (weight-only blocks), no float MatMul left.
    assert metrics["int8_method"] == "blocks" and io["quantization"] == "weight-only"
    graph = onnx.load(str(folder / "model.onnx")).graph
    constants = {i.name for i in graph.initializer}
    blocked = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert len(blocked) == metrics["eight_bit_matmuls"] > 0
    assert all(next(a.i for a in n.attribute if a.name == "bits") == 8 for n in blocked)
    assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants]
    predictions = OnnxStudent(folder).generate([r["utt"] for r in tiny.records[:6]])
    assert all(isinstance(p, str) and p for p in predictions)

    dynamic = run_in_process(
        "quantize", {"model": exported.done["outputs"]["model"], "int8_method": "dynamic"}, tiny.root / "quantize-dyn"
    )
    dynamic_folder = Path(dynamic.done["outputs"]["model"])
    ops = {n.op_type for n in onnx.load(str(dynamic_folder / "model.onnx")).graph.node}
    assert dynamic.done["metrics"]["int8_method"] == "dynamic" and "MatMulNBits" not in ops
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    assert json.loads((dynamic_folder / "onnx_io.json").read_text())["quantization"] == "dynamic"
    assert all(isinstance(p, str) and p for p in OnnxStudent(dynamic_folder).generate([tiny.records[0]["utt"]]))


def test_quantize_refuses_an_unknown_int8_method(tmp_path):
    bad = run_in_process("quantize", {"model": str(tmp_path / "x"), "int8_method": "static"}, tmp_path / "run")
    assert bad.error["kind"] == "config" and "int8_method" in bad.error["message"]


def _answer_logprob(model, tokenizer, prompt: str, answer: str) -> float:
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
    targets = torch.tensor(ids[1:])
    return logprobs[torch.arange(len(targets)), targets][len(prompt_ids) - 1 :].sum().item()


def _preference_margin(model_dir: Path, pairs) -> float:
    from supertiny_trainer.student.model_folder import load_student

    student = load_student(model_dir)
    t = student.template
    return sum(
        _answer_logprob(student.model, student.tokenizer, t.prompt(p.utterance), t.target(p.chosen_call))
        - _answer_logprob(student.model, student.tokenizer, t.prompt(p.utterance), t.target(p.rejected_call))
        for p in pairs
    ) / len(pairs)


def test_dpo_raises_the_preferred_over_the_rejected_call(tiny):
    from supertiny_trainer.student.datasets import load_preference_pairs

    run = run_cli(
        "dpo",
        {
            "model": str(tiny.init_model),
            "data": str(tiny.preference_data),
            "max_steps": 30,
            "batch_size": 8,
            "learning_rate": 0.003,
            "beta": 0.1,
            "logging_steps": 10,
            "save_steps": 1000,
            "num_threads": 1,
        },
        tiny.root / "dpo",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.done["metrics"]["pairs_accepted"] == 24
    pairs, _ = load_preference_pairs(tiny.preference_data)
    before = _preference_margin(tiny.init_model, pairs)
    after = _preference_margin(Path(run.done["outputs"]["model"]), pairs)
    assert after > before + 5.0


def _teacher_student_kl(teacher_dir: Path, student_dir: Path, samples) -> float:
    """Mean KL(teacher || student) over the positions that predict answer tokens."""
    import torch

    from supertiny_trainer.student.model_folder import load_student

    teacher, student = load_student(teacher_dir), load_student(student_dir)
    t, total = teacher.template, 0.0
    for s in samples:
        prompt_length = len(teacher.tokenizer(t.prompt(s.utterance), add_special_tokens=False)["input_ids"])
        ids = torch.tensor(
            [teacher.tokenizer(t.prompt(s.utterance) + t.target(s.call), add_special_tokens=False)["input_ids"]]
        )
        with torch.no_grad():
            p = torch.log_softmax(teacher.model(ids).logits[0, prompt_length - 1 : -1], -1)
            q = torch.log_softmax(student.model(ids).logits[0, prompt_length - 1 : -1], -1)
        total += (p.exp() * (p - q)).sum(-1).mean().item()
    return total / len(samples)


def test_kd_moves_the_student_toward_the_teacher(tiny):
    from supertiny_trainer.student.datasets import load_sft_samples

    run = run_cli(
        "kd",
        {
            "model": str(tiny.init_model),
            "teacher": str(tiny.sft_model),
            "data": str(tiny.sft_data),
            "max_steps": 60,
            "batch_size": 8,
            "learning_rate": 0.005,
            "top_k": 16,
            "alpha": 0.5,
            "logging_steps": 10,
            "save_steps": 1000,
            "num_threads": 1,
        },
        tiny.root / "kd",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert {"kd_ce", "kd_kl"} <= run.of("progress")[-1].keys()
    samples, _ = load_sft_samples(tiny.sft_data)
    before = _teacher_student_kl(tiny.sft_model, tiny.init_model, samples[:8])
    after = _teacher_student_kl(tiny.sft_model, Path(run.done["outputs"]["model"]), samples[:8])
    assert after < 0.6 * before


def test_tokenizer_with_isolated_spaces_gives_a_slot_value_the_same_tokens_as_in_the_utterance(tiny, tmp_path):
    from tokenizers import Tokenizer

    run = run_in_process(
        "tokenizer",
        {"data": str(tiny.sft_data), "vocab_size": 400, "min_frequency": 1, "isolate_spaces": True},
        tmp_path,
    )
    tokenizer = Tokenizer.from_file(run.done["outputs"]["tokenizer_json"])
    record = next(r for r in tiny.records if "[time : nine am]" in r["annot_utt"])
    utterance = tokenizer.encode(record["utt"], add_special_tokens=False).tokens
    call = tokenizer.encode(gold_call(record), add_special_tokens=False).tokens
    value = tokenizer.encode("nine am", add_special_tokens=False).tokens
    assert len(value) >= 2  # "nine", " ", "am": the space is its own token

    def contains(haystack, needle):
        return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))

    assert contains(utterance, value) and contains(call, value)


def test_prompt_loss_weight_adds_the_utterance_tokens_at_that_weight(tiny, tmp_path):
    import torch

    from supertiny_trainer.commands.sft import (
        SftConfig,
        prompt_completion_dataset,
        sft_arguments,
        student_sft_trainer_class,
    )
    from supertiny_trainer.core.checkpoints import CheckpointStore
    from supertiny_trainer.student.datasets import load_sft_samples
    from supertiny_trainer.student.model_folder import load_student

    samples, _ = load_sft_samples(tiny.sft_data)
    losses = {}
    for weight in (0.0, 0.5, 1.0):
        student = load_student(tiny.sft_model)
        store = CheckpointStore(tmp_path / str(weight))
        store.prepare(resume=False)
        config = SftConfig(model=str(tiny.sft_model), data=str(tiny.sft_data), max_steps=1)
        trainer = student_sft_trainer_class()(
            model=student.model,
            args=sft_arguments(config, store, student.template, weight),
            train_dataset=prompt_completion_dataset(samples, student.template),
            processing_class=student.tokenizer,
            prompt_loss_weight=weight,
        )
        rows = [trainer.train_dataset[i] for i in range(4)]
        batch = dict(trainer.data_collator(rows).items())
        with torch.no_grad():
            losses[weight] = trainer.compute_loss(trainer.model.eval(), batch).item()
    answer = losses[0.0]  # TRL's own answer-only loss
    prompt = losses[1.0] - answer  # what the utterance tokens add per answer token
    assert prompt > 0.1
    assert abs(losses[0.5] - (answer + 0.5 * prompt)) < 1e-3


def test_training_dropout_is_active_in_training_only_and_leaves_the_saved_model_unchanged(tiny, tmp_path):
    import torch

    from supertiny_trainer.commands.sft import add_training_dropout
    from supertiny_trainer.student.model_folder import load_student, save_student

    student = load_student(tiny.sft_model)
    model = student.model
    ids = torch.tensor([student.tokenizer.encode(StudentTemplate().prompt("wake me up at nine am"))])
    with torch.no_grad():
        before = model.eval()(ids).logits
    handles = add_training_dropout(model, 0.3)
    assert len(handles) == 1 + 2 * model.config.num_hidden_layers
    with torch.no_grad():
        assert torch.allclose(model.eval()(ids).logits, before, atol=1e-6)  # eval: no dropout
        model.train()
        first, second = model(ids).logits, model(ids).logits
    assert not torch.allclose(first, second)  # training: a fresh mask per forward pass
    assert (first - before).abs().max() > 1e-3
    model.eval()
    save_student(model, student.tokenizer, student.template, tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved.get("attention_dropout", 0.0) == 0.0
    for handle in handles:
        handle.remove()


def test_dropout_outside_zero_to_one_is_refused_by_name():
    from supertiny_trainer.commands.sft import SftConfig
    from supertiny_trainer.core.errors import ConfigError

    with pytest.raises(ConfigError, match="dropout"):
        SftConfig(model="m", data="d", dropout=1.0).validate()


@pytest.mark.parametrize("field", ["prompt_loss_weight", "input_noise"])
def test_kd_refuses_the_sft_loss_options_it_does_not_apply(field):
    from supertiny_trainer.commands.kd import KdConfig
    from supertiny_trainer.core.errors import ConfigError

    KdConfig(model="m", data="d", teacher="t", dropout=0.1).validate()  # dropout applies to kd
    with pytest.raises(ConfigError, match=field):
        KdConfig(model="m", data="d", teacher="t", **{field: 0.25}).validate()


def test_quantize_int4_puts_every_decoder_matmul_and_the_embeddings_in_four_bits(tiny, exported):
    import onnx

    source = Path(exported.done["outputs"]["model"])
    run = run_in_process("quantize", {"model": str(source), "scheme": "int4"}, tiny.root / "quantize-int4")
    metrics = run.done["metrics"]
    folder = Path(run.done["outputs"]["model"])
    assert folder.name == "onnx-int4" and metrics["scheme"] == "int4"
    assert metrics["bytes_after"] < metrics["bytes_before"]
    assert metrics["folded_transposes"] >= 1  # the tied LM head got its own constant weight
    assert metrics["check_top1_agreement"] >= 0.5
    graph = onnx.load(str(folder / "model.onnx")).graph
    constants = {i.name for i in graph.initializer}
    ops = [node.op_type for node in graph.node]
    float_matmuls = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants]
    assert not float_matmuls and ops.count("MatMulNBits") == metrics["four_bit_matmuls"] > 0
    assert "GatherBlockQuantized" in ops
    # The decoder's default: a zero point per block of every 4-bit MatMul (MatMulNBits' fourth input), the
    # embedding table in blocks of 256.
    four_bit_nodes = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert all(len(n.input) >= 4 and n.input[3] in constants for n in four_bit_nodes)
    assert metrics["symmetric"] is False and metrics["embedding_block_size"] == 256
    io = json.loads((folder / "onnx_io.json").read_text())
    assert io["weights"] == "int4" and io["inputs"] == json.loads((source / "onnx_io.json").read_text())["inputs"]
    assert io["symmetric"] is False
    predictions = OnnxStudent(folder).generate([r["utt"] for r in tiny.records[:6]])
    assert all(isinstance(p, str) and p for p in predictions)

    symmetric = run_in_process(
        "quantize", {"model": str(source), "scheme": "int4", "symmetric": True}, tiny.root / "quantize-int4-sym"
    )
    sym_graph = onnx.load(str(Path(symmetric.done["outputs"]["model"]) / "model.onnx")).graph
    sym_nodes = [n for n in sym_graph.node if n.op_type == "MatMulNBits"]
    assert len(sym_nodes) == len(four_bit_nodes) and all(len(n.input) < 4 or not n.input[3] for n in sym_nodes)
    assert symmetric.done["metrics"]["bytes_after"] < metrics["bytes_after"]  # no zero points to store


def test_quantize_refuses_a_symmetric_that_is_not_a_boolean(tmp_path):
    bad = run_in_process("quantize", {"model": str(tmp_path / "x"), "symmetric": "yes"}, tmp_path / "run")
    assert bad.error["kind"] == "config" and "symmetric" in bad.error["message"]
