"""decoder-prune-vocab: a byte-level BPE vocabulary cut to what the sft data uses gives the same tokens and the
same logits (restricted to the kept ids) on the training text, and still spells any other text in bytes.

The fixture is a tokenizer trained on 1,500 MASSIVE utterances and calls (1,500 tokens) and a random tiny
llama, pruned to the text of 150 of them: as a base's vocabulary is wider than one task's data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_harness import run_cli
from massive_fixtures import massive_records, sft_line, write_jsonl

TINY_INIT = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}
UNSEEN = [
    "antidisestablishmentarianism quizzically xylophone",
    "Zoë's café in Zürich at 07:45, naïve résumé ☃ 日本 🎉",
    "  two  spaces\tand a tab\nand a newline <|sep|> inside",
]


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> dict:
    """The tokenizer, a tied and an untied tiny decoder on it, and the narrow sft.jsonl to prune to."""
    root = tmp_path_factory.mktemp("decoder-prune")
    broad = massive_records("train", limit=1500)
    broad_sft = write_jsonl(root / "broad.jsonl", [sft_line(r) for r in broad])
    narrow_sft = write_jsonl(root / "sft.jsonl", [sft_line(r) for r in broad[:150]])
    tokenizer = run_cli("tokenizer", {"data": str(broad_sft), "vocab_size": 1500, "min_frequency": 1}, root / "tok")
    folders = {}
    for tied in (True, False):
        init = run_cli(
            "init",
            {"tokenizer": tokenizer.done["outputs"]["tokenizer"], **TINY_INIT, "tie_word_embeddings": tied},
            root / f"init-{tied}",
        )
        folders[tied] = Path(init.done["outputs"]["model"])
    return {"root": root, "folders": folders, "sft": narrow_sft, "pruned": {}}


def _prune(decoders: dict, tied: bool, min_count: int = 1, keep_first: int = 0):
    """decoder-prune-vocab's (metrics, folder), run once per setting for the module."""
    setting = (tied, min_count, keep_first)
    if setting in decoders["pruned"]:
        return decoders["pruned"][setting]
    run = run_cli(
        "decoder-prune-vocab",
        {
            "model": str(decoders["folders"][tied]),
            "data": str(decoders["sft"]),
            "min_count": min_count,
            "keep_first": keep_first,
        },
        decoders["root"] / f"prune-{tied}-{min_count}-{keep_first}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    decoders["pruned"][setting] = run.done["metrics"], Path(run.done["outputs"]["model"])
    return decoders["pruned"][setting]


def _training_texts(decoders: dict, folder: Path) -> list[str]:
    from supertiny_trainer.commands.decoder_prune_vocab import training_texts
    from supertiny_trainer.student.datasets import load_sft_samples
    from supertiny_trainer.student.text_format import StudentTemplate

    return training_texts(load_sft_samples(decoders["sft"])[0], StudentTemplate.load(folder))


def _tokenizer(folder: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def _logits(folder: Path, texts: list[str]) -> list[np.ndarray]:
    import torch

    from supertiny_trainer.student.model_folder import load_student

    student = load_student(folder)
    tokenizer = _tokenizer(folder)
    with torch.no_grad():
        return [
            student.model(torch.tensor([tokenizer.encode(text).ids])).logits[0].numpy()
            for text in texts  # one at a time: no padding to mask
        ]


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_the_pruned_decoder_gives_the_same_tokens_and_logits_on_the_training_text(decoders, tied):
    original = decoders["folders"][tied]
    metrics, pruned = _prune(decoders, tied)
    assert metrics["vocab_before"] == 1500 and metrics["vocab_after"] < 1000, metrics
    assert metrics["kept_bytes"] == 256 and metrics["merges_after"] < metrics["merges_before"]
    assert metrics["parameters_after"] < metrics["parameters_before"]
    before, after = _tokenizer(original), _tokenizer(pruned)
    config = json.loads((pruned / "config.json").read_text())
    assert config["vocab_size"] == metrics["vocab_after"] == after.get_vocab_size()
    assert config["tie_word_embeddings"] is tied
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
        old_token = before.id_to_token(json.loads((original / "config.json").read_text())[name])
        assert after.id_to_token(config[name]) == old_token, name

    texts = _training_texts(decoders, original)
    kept_old_ids = [before.token_to_id(after.id_to_token(i)) for i in range(after.get_vocab_size())]
    for text in texts:
        old, new = before.encode(text), after.encode(text)
        assert new.tokens == old.tokens, text
        assert [kept_old_ids[i] for i in new.ids] == old.ids
    assert any(before.encode(t).ids != after.encode(t).ids for t in texts)  # the ids were renumbered

    sample = texts[:12]
    for old_logits, new_logits in zip(_logits(original, sample), _logits(pruned, sample), strict=True):
        np.testing.assert_allclose(new_logits, old_logits[:, kept_old_ids], atol=1e-5, rtol=0)


def test_unseen_text_is_spelled_in_smaller_pieces_and_decodes_back(decoders):
    _, pruned = _prune(decoders, True)
    before, after = _tokenizer(decoders["folders"][True]), _tokenizer(pruned)
    longer = 0
    for text in UNSEEN:
        encoding = after.encode(text)
        assert after.decode(encoding.ids, skip_special_tokens=False) == text
        longer += len(encoding.ids) > len(before.encode(text).ids)
    assert longer >= 2


def test_every_kept_merge_has_its_parts_and_result_kept(decoders):
    from supertiny_trainer.commands.decoder_prune_vocab import merge_pairs

    _, pruned = _prune(decoders, True)
    model = json.loads((pruned / "tokenizer.json").read_text())["model"]
    vocab = model["vocab"]
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert all(a in vocab and b in vocab and a + b in vocab for a, b in merge_pairs(model))


def test_a_count_floor_keeps_fewer_tokens_and_every_text_still_decodes_back(decoders):
    all_metrics, _ = _prune(decoders, True)
    metrics, pruned = _prune(decoders, True, min_count=3)
    assert metrics["vocab_after"] < all_metrics["vocab_after"]
    tokenizer = _tokenizer(pruned)
    for text in _training_texts(decoders, pruned)[:50]:
        assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text


def test_keep_first_also_keeps_the_vocabularys_first_tokens_so_unseen_words_take_fewer_pieces(decoders):
    original = json.loads((decoders["folders"][True] / "tokenizer.json").read_text())["model"]["vocab"]
    first = {token for token, i in original.items() if i < 800}
    plain_metrics, plain = _prune(decoders, True)
    metrics, pruned = _prune(decoders, True, keep_first=800)
    vocab = json.loads((pruned / "tokenizer.json").read_text())["model"]["vocab"]
    assert first <= set(vocab)
    assert metrics["keep_first"] == 800 and metrics["kept_first"] > 0
    assert metrics["vocab_after"] > plain_metrics["vocab_after"]
    # The training text keeps its tokens; text outside it is spelled in no more pieces than without keep_first.
    tokenizers = {"plain": _tokenizer(plain), "kept": _tokenizer(pruned)}
    for text in _training_texts(decoders, pruned)[:50]:
        assert tokenizers["kept"].encode(text).tokens == tokenizers["plain"].encode(text).tokens
    broad = massive_records("train", limit=1500)[150:400]
    pieces = {name: sum(len(t.encode(r["utt"]).ids) for r in broad) for name, t in tokenizers.items()}
    assert pieces["kept"] < pieces["plain"]


def test_a_negative_keep_first_is_a_config_error(decoders, tmp_path):
    run = run_cli(
        "decoder-prune-vocab",
        {"model": str(decoders["folders"][True]), "data": str(decoders["sft"]), "keep_first": -1},
        tmp_path,
    )
    assert run.returncode == 2 and run.error["kind"] == "config" and "'keep_first'" in run.error["message"]


def test_missing_data_is_a_config_error_naming_the_field(decoders, tmp_path):
    run = run_cli("decoder-prune-vocab", {"model": str(decoders["folders"][True])}, tmp_path)
    assert run.returncode == 2 and run.error["kind"] == "config" and "'data'" in run.error["message"]
