#!/usr/bin/env python3
"""Benchmark of the encoder student (MiniLM + intent/tag heads) on MASSIVE en-US, through the trainer CLI.

Builds sft.jsonl from gold train (the pipeline's row format: the scenario's tools, repeated slots as
lists; no votes, so the targets are the gold calls), then encoder-convert -> encoder-sft -> predict (PyTorch)
-> export -> quantize -> predict (int8 ONNX), and scores dev and test like tasks/metrics.ts: intent accuracy,
slot F1 over (slot, value) multisets, exact match. With --prune-vocab MIN_COUNTS (e.g. 1 or 1,3), the
trained folder is also pruned to the sft utterances' pieces (encoder-prune-vocab, one run per frequency
floor), then scored, exported, quantized and scored again: vocabulary size, bytes and quality side by side.

  .venv/bin/python scripts/bench-encoder.py --out /tmp/bench-encoder [--epochs 7 --train-limit 2000 ...]
  .venv/bin/python scripts/bench-encoder.py --out /tmp/bench-prune --epochs 1 --prune-vocab 1,3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER = ROOT / "trainer"
sys.path.insert(0, str(TRAINER / "tests"))  # the gold-data builders shared with the tests

from massive_fixtures import call_metrics, encoder_sft_line, massive_records, massive_schema, utterance_line, write_jsonl  # noqa: E402

SFT_FIELDS = {  # encoder-sft config fields settable from the command line (the command's defaults otherwise)
    "epochs": float, "batch_size": int, "learning_rate": float, "head_learning_rate": float, "lr_scheduler": str,
    "warmup_ratio": float, "weight_decay": float, "max_length": int, "pooling": str, "seed": int,
    "save_steps": int,
}


def run(command: str, config: dict, run_dir: Path, threads: int, resume: bool = False) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / f"{command}.config.json"
    config_path.write_text(json.dumps(config, indent=2))
    env = {**os.environ, "PYTHONPATH": str(TRAINER), "OMP_NUM_THREADS": str(threads)}
    with (run_dir / "stderr.log").open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "supertiny_trainer", command, "--config", str(config_path),
                                 "--run-dir", str(run_dir)] + (["--resume"] if resume else []),
                                stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        done = None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "progress" and command == "encoder-sft":
                print(f"  step {event['step']}/{event['total']} loss {event['loss']:.4f} (intent "
                      f"{event.get('loss/intent')}, tags {event.get('loss/tags')}) {event['tokens_per_s']:.0f} tok/s",
                      flush=True)
            elif event["event"] == "error":
                raise SystemExit(f"{command} failed: {event['kind']}: {event['message']} (see {run_dir}/stderr.log)")
            elif event["event"] == "done":
                done = event
        proc.wait()
    if proc.returncode != 0 or done is None:
        raise SystemExit(f"{command} exited {proc.returncode} without done (see {run_dir}/stderr.log)")
    return done


def score(model: str, split: str, records: list[dict], out: Path, threads: int, label: str,
          latency_samples: int = 0) -> dict:
    done = run("predict", {"model": model, "data": str(out / "data" / f"{split}.jsonl"), "num_threads": threads,
                           "batch_size": 64, "latency_samples": latency_samples}, out / f"predict-{label}-{split}",
               threads)
    by_id = {row["id"]: row["prediction"] for row in map(json.loads, Path(done["outputs"]["predictions"]).open())}
    metrics = call_metrics([by_id[r["id"]] for r in records], records)
    # Python single-request latency (tokenize, forward, decode), one thread: not the TypeScript runtime's
    metrics.update({k: v for k, v in done["metrics"].items() if k.startswith("latency_ms")})
    print(f"{label} {split}: {metrics}", flush=True)
    return metrics


def folder_bytes(folder: str) -> int:
    """What the deployed folder takes on disk (model.onnx, tokenizer.json, supertiny.json)."""
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/supertiny-bench-encoder"))
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    parser.add_argument("--train-limit", type=int, default=None, help="train on the first N train utterances")
    parser.add_argument("--eval-limit", type=int, default=None, help="score only the first N dev/test utterances")
    parser.add_argument("--splits", default="dev,test")
    parser.add_argument("--train-word-embeddings", action="store_true", help="do not freeze the word embeddings")
    parser.add_argument("--resume", action="store_true", help="resume an interrupted encoder-sft in --out")
    parser.add_argument("--skip-int8", action="store_true")
    parser.add_argument("--prune-vocab", default=None, metavar="MIN_COUNTS",
                        help="also prune the vocabulary with these comma-separated min_count floors (e.g. 1,3)")
    parser.add_argument("--skip-pruned-fp32", action="store_true", help="score the pruned models in int8 only")
    parser.add_argument("--prune-keep-lowest-ids", type=int, default=0, help="encoder-prune-vocab keep_lowest_ids")
    parser.add_argument("--trained", type=Path, default=None,
                        help="skip training and the unpruned scores: prune this encoder-sft folder (same --train-limit)")
    for name, kind in SFT_FIELDS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    train = massive_records("train")
    slots, scenarios = massive_schema(train)
    records = train[: args.train_limit] if args.train_limit else train
    write_jsonl(out / "data" / "sft.jsonl", [encoder_sft_line(r, slots, scenarios) for r in records])
    splits = {}
    for split in args.splits.split(","):
        rows = massive_records(split)[: args.eval_limit] if args.eval_limit else massive_records(split)
        write_jsonl(out / "data" / f"{split}.jsonl", [utterance_line(r) for r in rows])
        splits[split] = rows

    base = out / "convert" / "model"
    if not (base / "model.safetensors").is_file():
        run("encoder-convert", {}, out / "convert", args.threads)
    sft_config = {"model": str(base), "data": str(out / "data" / "sft.jsonl"), "num_threads": args.threads,
                  "logging_steps": 50, "freeze_word_embeddings": not args.train_word_embeddings}
    sft_config.update({k: getattr(args, k) for k in SFT_FIELDS if getattr(args, k) is not None})
    started = time.monotonic()
    if args.trained:  # an earlier run's encoder-sft folder: only the pruning variants run
        sft, model = {"metrics": {}}, str(args.trained)
    else:
        sft = run("encoder-sft", sft_config, out / "sft", args.threads, resume=args.resume)
        model = sft["outputs"]["model"]
    train_s = time.monotonic() - started
    summary = {"train_examples": len(records), "sft_config": sft_config, "sft_metrics": sft["metrics"],
               "train_wall_s": round(train_s, 1), "fp32": {}, "int8": {}}
    for split, rows in splits.items() if not args.trained else []:
        summary["fp32"][split] = score(model, split, rows, out, args.threads, "fp32")
    if not args.skip_int8 and not args.trained:
        exported = run("export", {"model": model, "num_threads": args.threads}, out / "export", args.threads)
        quantized = run("quantize", {"model": exported["outputs"]["model"]}, out / "quantize", args.threads)
        summary["export"] = exported["metrics"]
        summary["quantize"] = quantized["metrics"]
        summary["int8_folder_bytes"] = folder_bytes(quantized["outputs"]["model"])
        for split, rows in splits.items():
            summary["int8"][split] = score(quantized["outputs"]["model"], split, rows, out, args.threads, "int8",
                                           latency_samples=200)
    for min_count in [int(m) for m in args.prune_vocab.split(",")] if args.prune_vocab else []:
        label = f"pruned-min{min_count}" + (f"-lowest{args.prune_keep_lowest_ids}" if args.prune_keep_lowest_ids else "")
        pruned = run("encoder-prune-vocab", {"model": model, "data": str(out / "data" / "sft.jsonl"),
                                             "min_count": min_count, "keep_lowest_ids": args.prune_keep_lowest_ids,
                                             "num_threads": args.threads}, out / label, args.threads)
        entry = {"prune": pruned["metrics"], "fp32": {}, "int8": {}}
        folder = pruned["outputs"]["model"]
        if not args.skip_pruned_fp32:
            for split, rows in splits.items():
                entry["fp32"][split] = score(folder, split, rows, out, args.threads, f"{label}-fp32")
        exported = run("export", {"model": folder, "num_threads": args.threads}, out / f"{label}-export", args.threads)
        quantized = run("quantize", {"model": exported["outputs"]["model"]}, out / f"{label}-quantize", args.threads)
        entry["export"], entry["quantize"] = exported["metrics"], quantized["metrics"]
        entry["int8_folder_bytes"] = folder_bytes(quantized["outputs"]["model"])
        for split, rows in splits.items():
            entry["int8"][split] = score(quantized["outputs"]["model"], split, rows, out, args.threads, f"{label}-int8",
                                         latency_samples=200)
        summary[label] = entry
        print(f"{label}: vocab {pruned['metrics']['vocab_before']} -> {pruned['metrics']['vocab_after']}; int8 "
              f"{quantized['metrics']['bytes_after']} bytes", flush=True)
    (out / ("summary-trained.json" if args.trained else "summary.json")).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("fp32", "int8")}, indent=2))
    print(f"seconds per epoch: {sft['metrics'].get('seconds_per_epoch')}; fp32 {summary.get('quantize', {}).get('bytes_before')}"
          f" bytes, int8 {summary.get('quantize', {}).get('bytes_after')} bytes; summary: {out / ('summary-trained.json' if args.trained else 'summary.json')}")


if __name__ == "__main__":
    main()
