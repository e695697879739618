"""Config loading, atomic checkpoints and the top-k distillation loss."""

import os
from dataclasses import dataclass

import pytest

from supertiny_trainer.core.checkpoints import CheckpointStore, atomic_output_dir
from supertiny_trainer.core.config import config_from_dict
from supertiny_trainer.core.errors import ConfigError


@dataclass
class ExampleConfig:
    data: str = ""
    steps: int = 10
    rate: float = 0.1
    name: str | None = None


def test_config_rejects_unknown_fields_by_name():
    with pytest.raises(ConfigError, match=r"unknown config field.*learning_rat"):
        config_from_dict(ExampleConfig, {"learning_rat": 1})


def test_config_rejects_wrong_types_by_name():
    with pytest.raises(ConfigError, match="'steps' must be an integer"):
        config_from_dict(ExampleConfig, {"steps": "ten"})
    with pytest.raises(ConfigError, match="'steps' must be an integer"):
        config_from_dict(ExampleConfig, {"steps": True})


def test_config_accepts_ints_for_floats_and_null_for_optionals():
    config = config_from_dict(ExampleConfig, {"rate": 1, "name": None, "steps": 3})
    assert config.rate == 1.0 and isinstance(config.rate, float) and config.steps == 3


def _stage(store: CheckpointStore, step: int) -> "os.PathLike":
    staged = store.staging / f"checkpoint-{step}"
    staged.mkdir(parents=True)
    (staged / "trainer_state.json").write_text("{}")
    return staged


def test_only_published_checkpoints_count_and_half_written_ones_are_wiped(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    store.prepare(resume=False)
    store.publish(_stage(store, 10))
    _stage(store, 20)  # a save that was killed before its rename
    (tmp_path / ".tmp-model-dead").mkdir()  # an output folder that was killed mid-write
    assert store.newest() == tmp_path / "checkpoints" / "checkpoint-10"

    resumed_from = store.prepare(resume=True)
    assert resumed_from == tmp_path / "checkpoints" / "checkpoint-10"
    assert not (store.staging / "checkpoint-20").exists()
    assert not (tmp_path / ".tmp-model-dead").exists()


def test_publishing_keeps_the_newest_checkpoints(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    store.prepare(resume=False)
    for step in (5, 10, 15):
        store.publish(_stage(store, step))
    assert [step for step, _ in store.published()] == [10, 15]


def test_fresh_run_drops_checkpoints_of_an_earlier_run(tmp_path):
    store = CheckpointStore(tmp_path)
    store.prepare(resume=False)
    store.publish(_stage(store, 5))
    assert store.prepare(resume=False) is None
    assert store.published() == []


def test_atomic_output_dir_leaves_nothing_when_writing_fails(tmp_path):
    destination = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_output_dir(destination) as staging:
        (staging / "config.json").write_text("{}")
        raise RuntimeError("killed")
    assert not destination.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_dir_replaces_an_older_output(tmp_path):
    destination = tmp_path / "model"
    for version in ("1", "2"):
        with atomic_output_dir(destination) as staging:
            (staging / "version").write_text(version)
    assert (destination / "version").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_topk_kl_is_zero_for_identical_logits_and_matches_full_kl_when_k_is_the_vocabulary():
    import torch
    import torch.nn.functional as F

    from supertiny_trainer.commands.kd import topk_distillation_loss

    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    labels[:, :2] = -100  # prompt positions
    _, _, kl_same, _ = topk_distillation_loss(teacher, teacher, labels, top_k=4, alpha=0.0, temperature=1.0)
    assert abs(kl_same.item()) < 1e-5

    total, ce, kl, tokens = topk_distillation_loss(student, teacher, labels, top_k=11, alpha=0.0, temperature=1.0)
    mask = labels[:, 1:] != -100
    s, t = student[:, :-1][mask], teacher[:, :-1][mask]
    expected = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="sum")
    assert tokens.item() == mask.sum().item()
    assert torch.allclose(kl, expected, atol=1e-4)
    assert torch.allclose(total, kl, atol=1e-6)  # alpha=0: the KL term alone
    assert ce.item() > 0


def test_length_grouped_sampler_replays_an_epoch_from_seed_and_epoch_alone():
    import random

    from supertiny_trainer.core.training import LengthGroupedEpochSampler

    lengths = [random.Random(i).randint(5, 60) for i in range(203)]
    sampler = LengthGroupedEpochSampler(lengths, batch_size=8, seed=3, megabatch_batches=4)
    sampler.set_epoch(2)
    first = list(sampler)
    replay = LengthGroupedEpochSampler(lengths, batch_size=8, seed=3, megabatch_batches=4)
    replay.set_epoch(2)
    assert list(replay) == first
    assert sorted(first) == list(range(203))
    sampler.set_epoch(3)
    assert list(sampler) != first

    def padded(order):
        return sum(max(lengths[i] for i in order[j : j + 8]) * len(order[j : j + 8]) for j in range(0, len(order), 8))

    shuffled = list(range(203))
    random.Random(0).shuffle(shuffled)
    assert padded(first) < 0.8 * padded(shuffled)
    assert len(first) % 8 == 203 % 8 and all(len(set(first[j : j + 8])) == 8 for j in range(0, 200, 8))


def test_input_noise_replaces_only_utterance_tokens_at_about_the_given_rate():
    import torch

    from supertiny_trainer.commands.sft import noisy_utterance_ids

    sep, special = 2, [0, 1, 2, 3]
    # pad pad bos u u u u u u u u sep a a a eos
    row = [0, 0, 1, *range(10, 18), 2, 40, 41, 42, 3]
    ids = torch.tensor([row] * 500)
    mask = (ids != 0).long()
    noisy = noisy_utterance_ids(
        ids, mask, sep, special, vocab_size=300, probability=0.25, generator=torch.Generator().manual_seed(0)
    )
    changed = noisy != ids
    assert not changed[:, :3].any() and not changed[:, 11:].any(), "pads, bos, sep and the answer stay"
    assert 0.2 < changed[:, 3:11].float().mean().item() < 0.3
    assert not torch.isin(noisy[:, 3:11], torch.tensor(special)).any()
    assert torch.equal(noisy_utterance_ids(ids, mask, sep, special, 300, 0.0), ids)
