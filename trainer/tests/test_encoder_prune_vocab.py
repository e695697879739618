"""encoder-prune-vocab: a smaller WordPiece vocabulary that still spells every word, and the same logits on
inputs whose pieces were kept (a tiny random BERT with MiniLM's tokenizer keeps it to seconds)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cli_harness import run_cli
from massive_fixtures import encoder_sft_line, massive_records, massive_schema, write_jsonl

MINILM_TOKENIZER = Path(__file__).resolve().parents[2] / ".tools" / "minilm" / "all-minilm-l6-v2-tokenizer.json"
HELD_OUT = [  # words MASSIVE lacks, rare scripts and accents: spelled in smaller pieces, never [UNK]
    "antidisestablishmentarianism xylophone quizzically",
    "Schedule a call with Zoë in Zürich at 7:45, naïve café résumé",
    "wake me at 0530 #urgent @home 100% sure!!",
    "email jürgen.müller@example.org about the ΑΒΓ δέλτα order",
    "play Беларусь by Мумий Тролль",
]


def _original_tokenizer():
    from tokenizers import Tokenizer

    assert MINILM_TOKENIZER.is_file(), f"{MINILM_TOKENIZER} is missing: run scripts/setup.sh (it fetches MiniLM)"
    tokenizer = Tokenizer.from_file(str(MINILM_TOKENIZER))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _pruned(tokenizer_json: dict, utterances: list[str], min_count: int = 1):
    from tokenizers import Tokenizer

    from supertiny_trainer.commands.encoder_prune_vocab import data_piece_counts, select_vocabulary
    from supertiny_trainer.student.vocabulary import renumbered_tokenizer

    kept, _ = select_vocabulary(tokenizer_json, data_piece_counts(_original_tokenizer(), utterances), min_count)
    pruned = Tokenizer.from_str(json.dumps(renumbered_tokenizer(tokenizer_json, kept)))
    pruned.no_padding()
    pruned.no_truncation()
    return kept, pruned


def _words(tokenizer, text: str) -> list[str]:
    return [w for w, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text))]


def _spell_check(original, pruned, texts: list[str]) -> int:
    """Every word the original spells without [UNK] is spelled without [UNK] by the pruned tokenizer, and its
    pieces join back to the same word. Returns how many words were spelled in different pieces."""
    respelled = 0
    for text in texts:
        for word in _words(original, text):
            before = original.encode(word, add_special_tokens=False).tokens
            after = pruned.encode(word, add_special_tokens=False).tokens
            if "[UNK]" in before:
                continue
            assert "[UNK]" not in after, f"{word!r}: {before} -> {after}"
            assert "".join(p.removeprefix("##") for p in after) == word, f"{word!r}: {after}"
            respelled += before != after
    return respelled


@pytest.fixture(scope="module")
def massive_split():
    train = massive_records("train", limit=3000)
    dev = massive_records("dev", limit=600)
    return [r["utt"] for r in train], [r["utt"] for r in dev]


def test_pruning_minilm_to_train_pieces_spells_every_dev_and_held_out_word_without_unk(massive_split):
    train, dev = massive_split
    tokenizer_json = json.loads(MINILM_TOKENIZER.read_text(encoding="utf-8"))
    original = _original_tokenizer()
    kept, pruned = _pruned(tokenizer_json, train)
    assert len(kept) < len(tokenizer_json["model"]["vocab"]) / 3, len(kept)
    # Training utterances tokenize to the same pieces; the pruned vocabulary drops pieces dev needs.
    for text in train[:500]:
        assert pruned.encode(text).tokens == original.encode(text).tokens, text
    assert _spell_check(original, pruned, dev) > 20
    assert _spell_check(original, pruned, HELD_OUT) > 5
    # Special tokens are renumbered consistently: [CLS] ... [SEP] from the post-processor, ids from the vocab.
    encoding = pruned.encode("set an alarm")
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens[-1] == "[SEP]"
    assert encoding.ids[0] == pruned.token_to_id("[CLS]") == kept.index("[CLS]")
    assert encoding.ids[-1] == pruned.token_to_id("[SEP]") == kept.index("[SEP]")
    assert pruned.token_to_id("[PAD]") == 0 and pruned.token_to_id("[UNK]") == kept.index("[UNK]")


def test_a_frequency_floor_shrinks_the_vocabulary_and_still_spells_every_word(massive_split):
    train, dev = massive_split
    tokenizer_json = json.loads(MINILM_TOKENIZER.read_text(encoding="utf-8"))
    kept_all, _ = _pruned(tokenizer_json, train)
    kept_floor, pruned = _pruned(tokenizer_json, train, min_count=3)
    assert len(kept_floor) < len(kept_all)
    original = _original_tokenizer()
    assert _spell_check(original, pruned, train[:300] + dev) > 0


def test_a_piece_with_a_character_that_has_no_single_form_is_kept():
    from supertiny_trainer.commands.encoder_prune_vocab import select_vocabulary, wordpiece

    vocab = {
        p: i for i, p in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "##a", "##b", "ab", "##bq", "aq"])
    }
    tokenizer_json = {
        "model": {"type": "WordPiece", "vocab": vocab, "unk_token": "[UNK]", "continuing_subword_prefix": "##"},
        "added_tokens": [{"id": vocab[t], "content": t} for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")],
    }
    kept, groups = select_vocabulary(tokenizer_json, __import__("collections").Counter(), 1)
    # "ab" is rebuilt from a + ##b; "q" exists only inside "##bq" and "aq", so those stay.
    assert "ab" not in kept and {"##bq", "aq"} <= set(kept) and groups["unspellable"] == 2
    assert wordpiece("abbq", set(kept)) == ["a", "##b", "##bq"]
    assert wordpiece("aqab", set(kept)) == ["aq", "##a", "##b"]
    # keep_lowest_ids keeps the first ids whatever the data uses (BERT lists common words first).
    kept, groups = select_vocabulary(tokenizer_json, __import__("collections").Counter(), 1, keep_lowest_ids=9)
    assert "ab" in kept and groups["lowest_ids"] == 1


@pytest.fixture(scope="module")
def tiny_encoder_folder(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A random 2-layer BERT with MiniLM's tokenizer, random heads and MASSIVE labels, and its sft.jsonl."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    from supertiny_trainer.student.encoder import EncoderLabels, build_encoder_student, save_encoder_student

    root = tmp_path_factory.mktemp("prune")
    train = massive_records("train", limit=300)
    slots, scenarios = massive_schema(train)
    sft = write_jsonl(root / "sft.jsonl", [encoder_sft_line(r, slots, scenarios) for r in train])
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
        add_pooling_layer=False,
    )
    functions = {r["intent"]: slots.get(r["intent"], []) for r in train}
    labels = EncoderLabels.from_schema({k: list(v) for k, v in functions.items()}, max_length=64, pooling="mean")
    model = build_encoder_student(bert, labels)
    torch.nn.init.normal_(model.tag_head.weight)  # non-trivial heads so logit differences would show
    tokenizer = Tokenizer.from_file(str(MINILM_TOKENIZER))
    tokenizer.no_padding()
    tokenizer.enable_truncation(64)
    folder = save_encoder_student(model, tokenizer, labels, root / "model")
    return folder, sft, [r["utt"] for r in train]


def _logits(folder: Path, texts: list[str]):
    import torch

    from supertiny_trainer.commands.encoder_predict import encode_batch
    from supertiny_trainer.student.encoder import load_encoder_student

    student = load_encoder_student(folder)
    feed, encodings = encode_batch(student.tokenizer, texts, student.tokenizer.token_to_id("[PAD]"))
    with torch.no_grad():
        intents, tags = student.model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    return intents.numpy(), tags.numpy(), feed, encodings


def test_the_pruned_folder_gives_the_same_logits_on_training_utterances(tiny_encoder_folder, tmp_path):
    folder, sft, utterances = tiny_encoder_folder
    run = run_cli("encoder-prune-vocab", {"model": str(folder), "data": str(sft), "num_threads": 1}, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics, pruned = run.done["metrics"], Path(run.done["outputs"]["model"])
    assert metrics["vocab_before"] == 30522 and metrics["vocab_after"] < 3000
    assert metrics["bytes_after"] < metrics["bytes_before"]
    config = json.loads((pruned / "config.json").read_text())
    assert (
        config["vocab_size"]
        == metrics["vocab_after"]
        == len(json.loads((pruned / "tokenizer.json").read_text())["model"]["vocab"])
    )
    before_i, before_t, before_feed, before_enc = _logits(folder, utterances)
    after_i, after_t, after_feed, after_enc = _logits(pruned, utterances)
    assert [e.tokens for e in before_enc] == [e.tokens for e in after_enc]
    assert not np.array_equal(before_feed["input_ids"], after_feed["input_ids"])  # the ids were renumbered
    np.testing.assert_allclose(after_i, before_i, atol=1e-5, rtol=0)
    mask = before_feed["attention_mask"].astype(bool)
    np.testing.assert_allclose(after_t[mask], before_t[mask], atol=1e-5, rtol=0)
    # An unseen word is spelled with smaller pieces, not [UNK], and the model still runs on it.
    unseen = "antidisestablishmentarianism quizzically"
    _, _, _, encodings = _logits(pruned, [unseen])
    assert "[UNK]" not in encodings[0].tokens and len(encodings[0].tokens) > 4


def test_missing_data_is_a_config_error_naming_the_field(tiny_encoder_folder, tmp_path):
    folder, _, _ = tiny_encoder_folder
    run = run_cli("encoder-prune-vocab", {"model": str(folder)}, tmp_path)
    assert run.returncode == 2 and run.error["kind"] == "config" and "'data'" in run.error["message"]


def test_a_decoder_folder_is_refused_by_name(tmp_path):
    (tmp_path / "decoder").mkdir()
    (tmp_path / "decoder" / "config.json").write_text("{}")
    data = tmp_path / "sft.jsonl"
    data.write_text("")
    run = run_cli("encoder-prune-vocab", {"model": str(tmp_path / "decoder"), "data": str(data)}, tmp_path / "run")
    assert run.returncode == 2 and re.search(r"has no (tokenizer\.json|heads\.safetensors)", run.error["message"])
