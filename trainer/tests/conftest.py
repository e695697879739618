"""Shared fixtures: tiny MASSIVE-derived datasets and one tiny tokenizer -> init -> sft pipeline per session."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TRAINER_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TRAINER_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_harness import CliRun, run_cli  # noqa: E402
from massive_fixtures import (  # noqa: E402
    massive_records,
    preference_line,
    sft_line,
    utterance_line,
    write_jsonl,
)

INTENTS = ["alarm_set", "weather_query", "play_music"]
TINY_ARCHITECTURE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128}
# Enough steps for the tiny model to memorize 24 samples; the resume test interrupts it after step 50.
SFT_CONFIG = {
    "max_steps": 150,
    "batch_size": 8,
    "learning_rate": 0.005,
    "save_steps": 50,
    "logging_steps": 10,
    "num_threads": 1,
    "seed": 0,
}


@dataclass
class TinyPipeline:
    root: Path
    records: list[dict]
    sft_data: Path
    preference_data: Path
    utterances: Path
    tokenizer_run: CliRun
    init_run: CliRun
    sft_run: CliRun
    sft_config: dict = field(default_factory=dict)

    @property
    def tokenizer_dir(self) -> Path:
        return Path(self.tokenizer_run.done["outputs"]["tokenizer"])

    @property
    def init_model(self) -> Path:
        return Path(self.init_run.done["outputs"]["model"])

    @property
    def sft_model(self) -> Path:
        return Path(self.sft_run.done["outputs"]["model"])


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyPipeline:
    root = tmp_path_factory.mktemp("tiny")
    records = []
    for intent in INTENTS:
        records += massive_records("train", limit=8, intents=[intent])
    sft_data = write_jsonl(
        root / "data" / "sft.jsonl", [sft_line(r, with_routing_step=i % 3 == 0) for i, r in enumerate(records)]
    )
    # Preference pairs: the gold call is preferred over the same arguments under a neighbouring intent.
    preference_data = write_jsonl(
        root / "data" / "preferences.jsonl",
        [preference_line(r, INTENTS[(INTENTS.index(r["intent"]) + 1) % len(INTENTS)]) for r in records],
    )
    utterances = write_jsonl(root / "data" / "utterances.jsonl", [utterance_line(r) for r in records])

    tokenizer_run = run_cli("tokenizer", {"data": str(sft_data), "vocab_size": 400, "min_frequency": 1}, root / "tok")
    tokenizer_dir = tokenizer_run.done["outputs"]["tokenizer"]
    init_run = run_cli("init", {"tokenizer": tokenizer_dir, **TINY_ARCHITECTURE}, root / "init")
    sft_config = {"model": init_run.done["outputs"]["model"], "data": str(sft_data), **SFT_CONFIG}
    sft_run = run_cli("sft", sft_config, root / "sft")
    return TinyPipeline(
        root, records, sft_data, preference_data, utterances, tokenizer_run, init_run, sft_run, sft_config
    )


@pytest.fixture(scope="session")
def exported(tiny) -> CliRun:
    return run_cli("export", {"model": str(tiny.sft_model), "num_threads": 1}, tiny.root / "export")
