#!/usr/bin/env python3
"""Several seeds distilled into one (issue 20 item 3): trains an encoder student against the averaged intent
and tag distributions of several trained students (the same data, other seeds), starting from the first of
them, with prune-layers' distillation loss (KL at temperature 2 mixed with the vote targets), no layer
removed; then scores the result and the first member on MASSIVE dev and test (PyTorch, like bench-encoder).

  .venv/bin/python scripts/bench-seed-distill.py --out /tmp/seed-distill --epochs 3 \\
      --data RUN/inputs/sft.jsonl --members SEED1/model SEED2/model SEED3/model

The members are encoder-sft output folders of one pipeline's data (e.g. three demo runs with transfer.seed
1, 2 and 3 in one data folder: artifacts/work/trainStudent-encoder-sft-*/model and its inputs/sft.jsonl).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainer"))

_spec = importlib.util.spec_from_file_location("bench_encoder", ROOT / "scripts" / "bench-encoder.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def ensemble_class(temperature: float):
    import torch

    class Ensemble(torch.nn.Module):
        """The members' mean distribution at the distillation temperature, as logits (t * log of the mean)."""

        def __init__(self, members):
            super().__init__()
            self.members = torch.nn.ModuleList(members)

        def forward(self, ids, mask, types):
            outputs = [m(ids, mask, types) for m in self.members]
            averaged = []
            for head in range(len(outputs[0])):
                if head < 2:  # intent and tags: softmax(result / t) is the members' mean distribution
                    mean = torch.stack([torch.softmax(o[head].float() / temperature, -1) for o in outputs]).mean(0)
                    averaged.append(temperature * torch.log(mean.clamp_min(1e-12)))
                else:  # value heads: mean logits
                    averaged.append(torch.stack([o[head].float() for o in outputs]).mean(0))
            return tuple(averaged)

    return Ensemble


def distil(members: list[str], data: str, out: Path, epochs: float, learning_rate: float, threads: int) -> dict:
    import torch

    from supertiny_trainer.commands.encoder_prune_layers import EncoderPruneLayersConfig, distilling_trainer_class
    from supertiny_trainer.commands.encoder_sft import build_encoder_trainer
    from supertiny_trainer.core.checkpoints import CheckpointStore
    from supertiny_trainer.core.events import EventReporter
    from supertiny_trainer.core.runtime import configure_environment, set_threads
    from supertiny_trainer.core.training import run_training
    from supertiny_trainer.student.encoder import load_encoder_student, save_encoder_student
    from supertiny_trainer.student.encoder_data import (
        EncoderDataReport,
        encode_examples,
        encoder_examples,
        read_encoder_rows,
    )

    configure_environment()
    set_threads(threads)
    cfg = EncoderPruneLayersConfig(
        model=members[0], data=data, epochs=epochs, learning_rate=learning_rate, head_learning_rate=learning_rate
    )
    loaded = [load_encoder_student(m, f"member {m}") for m in members]
    labels, tokenizer = loaded[0].labels, loaded[0].tokenizer
    for member in loaded[1:]:
        if member.labels.intents != labels.intents or member.labels.tags != labels.tags:
            raise SystemExit("the members were trained on different label sets: distil members of one pipeline's data")
    teacher = ensemble_class(cfg.temperature)([m.model for m in loaded])
    student = load_encoder_student(members[0], "start").model
    student.train()
    student.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    report = EncoderDataReport()
    rows, schema = read_encoder_rows(data, report)
    encoded = encode_examples(encoder_examples(rows, schema, cfg.vote_weight, report), tokenizer, labels, Counter())
    store = CheckpointStore(out, keep=1)
    torch.manual_seed(cfg.seed)
    trainer = build_encoder_trainer(
        distilling_trainer_class(), student, cfg, store, encoded, labels, tokenizer.token_to_id("[PAD]"),
        teacher=teacher, temperature=cfg.temperature, distill_weight=cfg.distill_weight,
    )
    started = time.time()
    metrics = run_training(trainer, store, EventReporter(sys.stderr), store.prepare(False))
    save_encoder_student(trainer.model, tokenizer, labels, out / "model")
    return {"wall_s": round(time.time() - started, 1), "steps": metrics.get("steps")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data", required=True, help="the members' sft.jsonl")
    parser.add_argument("--members", required=True, nargs="+", help="trained encoder student folders; the first is the start")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    trained = distil(args.members, args.data, args.out / "distil", args.epochs, args.learning_rate, args.threads)
    (args.out / "data").mkdir(exist_ok=True)
    results: dict = {"training": trained}
    for label, model in (("first member", args.members[0]), ("distilled", str(args.out / "distil" / "model"))):
        for split in ("dev", "test"):
            records = bench.massive_records(split)
            bench.write_jsonl(args.out / "data" / f"{split}.jsonl", [bench.utterance_line(r) for r in records])
            tag = "member" if label == "first member" else "distilled"
            results.setdefault(label, {})[split] = bench.score(model, split, records, args.out, args.threads, tag)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
