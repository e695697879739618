#!/usr/bin/env python3
"""Benchmark of the embedded-default student on this machine: sft throughput, peak memory, dev accuracy;
with --grpo-steps, then grpo on the same inputs (the reward curve and dev accuracy after it).

Trains on gold MASSIVE en-US train (sft.jsonl built from the annotations), through the same CLI the
TypeScript adapter runs (tokenizer -> init -> sft -> predict -> export -> quantize), then scores dev:
intent accuracy and exact match, for the PyTorch model (`predict`) and for the int8 ONNX model (greedy
decoding with ONNX Runtime and its KV cache, as the TypeScript runtime does).

  .venv/bin/python scripts/bench-trainer.py --out /tmp/bench [--epochs 6 --hidden 192 ...] [--grpo-steps 300]
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
sys.path.insert(0, str(TRAINER / "tests"))  # the gold-data builder and ONNX decoder shared with the tests

from massive_fixtures import gold_call, massive_records, sft_line, utterance_line, write_jsonl  # noqa: E402

# The suggested embedded default (see trainer/README.md); every field can be overridden on the command line.
DEFAULTS = {
    "vocab_size": 2048, "hidden_size": 192, "num_layers": 4, "num_heads": 6, "num_kv_heads": 2,
    "intermediate_size": 512, "epochs": 6.0, "learning_rate": 1e-3, "batch_size": 32, "warmup_ratio": 0.03,
    "weight_decay": 0.01, "prompt_loss_weight": 0.0, "input_noise": 0.0,
    "dropout": 0.0,
    "seed": 0,  # init and sft (the trainer's default; the pipeline's transfer.seed is 1234)
}


def run(command: str, config: dict, run_dir: Path, threads: int, rates: list | None = None,
        resume: bool = False, progress: list | None = None) -> tuple[dict, float]:
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / f"{command}.config.json"
    config_path.write_text(json.dumps(config, indent=2))
    env = {**os.environ, "PYTHONPATH": str(TRAINER), "OMP_NUM_THREADS": str(threads)}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "supertiny_trainer", command, "--config", str(config_path),
                             "--run-dir", str(run_dir)] + (["--resume"] if resume else []), stdout=subprocess.PIPE, stderr=open(run_dir / "stderr.log", "w"),
                            text=True, env=env)
    done = None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and progress is not None:
            progress.append(event)
        if event["event"] == "progress" and command == "grpo":
            print(f"  grpo step {event['step']}/{event['total']} reward {event['reward']:.3f} "
                  f"valid {event['valid_share']:.3f} exact {event['exact_share']:.3f} kl {event.get('kl') or 0:.4f}",
                  flush=True)
        if event["event"] == "progress" and command == "sft":
            if rates is not None and event["step"] > 1:
                rates.append(event["tokens_per_s"])
            print(f"  sft step {event['step']}/{event['total']} loss {event['loss']:.4f} "
                  f"{event['tokens_per_s']:.0f} tok/s", flush=True)
        elif event["event"] == "error":
            raise SystemExit(f"{command} failed: {event['kind']}: {event['message']} (see {run_dir}/stderr.log)")
        elif event["event"] == "done":
            done = event
    proc.wait()
    if proc.returncode != 0 or done is None:
        raise SystemExit(f"{command} exited {proc.returncode} without done (see {run_dir}/stderr.log)")
    return done, time.monotonic() - started


def score(predictions: list[str], records: list[dict]) -> dict:
    intent = sum(p.split("(", 1)[0] == r["intent"] for p, r in zip(predictions, records))
    exact = sum(p == gold_call(r) for p, r in zip(predictions, records))
    return {"intent_accuracy": round(intent / len(records), 4), "exact_match": round(exact / len(records), 4),
            "examples": len(records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/supertiny-bench"))
    for name, value in DEFAULTS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    parser.add_argument("--dev-limit", type=int, default=None, help="score only the first N dev utterances")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--sft-data", type=Path, default=None,
                        help="train on this sft.jsonl (e.g. the teacher's accepted samples from a pipeline run) "
                             "instead of gold train")
    parser.add_argument("--skip-onnx", action="store_true", help="skip export, quantize and the int8 score")
    parser.add_argument("--grpo-steps", type=int, default=0,
                        help="after sft, this many grpo steps on the same training inputs (0: no grpo)")
    parser.add_argument("--grpo-learning-rate", type=float, default=5e-5)
    parser.add_argument("--grpo-generations", type=int, default=8)
    parser.add_argument("--grpo-batch-size", type=int, default=32, help="completions per step")
    parser.add_argument("--grpo-beta", type=float, default=0.04)
    parser.add_argument("--grpo-temperature", type=float, default=1.0)
    parser.add_argument("--task", type=Path, default=None,
                        help="the task description (default: written by scripts/task-description.ts)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    dev = massive_records("dev", limit=args.dev_limit)
    if args.sft_data:
        if args.train_limit:
            raise SystemExit("--train-limit applies to gold train only, not to --sft-data")
        if not args.sft_data.is_file():
            raise SystemExit(f"--sft-data: no such file: {args.sft_data}")
        sft_data = args.sft_data
        train_examples = sum(1 for line in open(sft_data) if line.strip())
    else:
        train = massive_records("train", limit=args.train_limit)
        sft_data = write_jsonl(out / "data" / "sft.jsonl", [sft_line(r) for r in train])
        train_examples = len(train)
    dev_data = write_jsonl(out / "data" / "dev.jsonl", [utterance_line(r) for r in dev])
    results: dict = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "train_examples": train_examples, "cpu_count": os.cpu_count()}

    tok, tok_s = run("tokenizer", {"data": str(sft_data), "vocab_size": args.vocab_size}, out / "tokenizer", args.threads)
    init, _ = run("init", {"tokenizer": tok["outputs"]["tokenizer"], "hidden_size": args.hidden_size,
                           "num_layers": args.num_layers, "num_heads": args.num_heads,
                           "num_kv_heads": args.num_kv_heads, "intermediate_size": args.intermediate_size,
                           "seed": args.seed},
                  out / "init", args.threads)
    print(f"student: {init['metrics']['parameters']:,} parameters, vocab {init['metrics']['vocab_size']}", flush=True)
    rates: list[float] = []
    sft, sft_s = run("sft", {"model": init["outputs"]["model"], "data": str(sft_data), "epochs": args.epochs,
                             "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                             "warmup_ratio": args.warmup_ratio, "weight_decay": args.weight_decay,
                             "prompt_loss_weight": args.prompt_loss_weight, "input_noise": args.input_noise,
                             "dropout": args.dropout, "seed": args.seed, "num_threads": args.threads, "save_steps": 250, "logging_steps": 50},
                     out / "sft", args.threads, rates, resume=True)  # rerunning the bench after a kill resumes
    predict, predict_s = run("predict", {"model": sft["outputs"]["model"], "data": str(dev_data), "batch_size": 64,
                                         "num_threads": args.threads}, out / "predict", args.threads)
    rows = {r["id"]: r["prediction"] for r in map(json.loads, open(predict["outputs"]["predictions"]))}
    results.update({
        "parameters": init["metrics"]["parameters"],
        "tokenizer_s": round(tok_s, 1),
        "sft": {k: sft["metrics"][k] for k in ("steps", "epochs", "tokens_seen", "tokens_per_s", "train_runtime_s",
                                               "resumed_from_step",
                                               "peak_memory_bytes", "peak_memory_kind", "train_loss", "final_loss")},
        "sft_wall_s": round(sft_s, 1),
        # Per logging interval: the machine is shared, so the best intervals show the uncontended rate.
        "sft_interval_tokens_per_s": {"median": sorted(rates)[len(rates) // 2] if rates else None,
                                      "p90": sorted(rates)[int(len(rates) * 0.9)] if rates else None},
        "predict": {"wall_s": round(predict_s, 1), **{k: predict["metrics"][k] for k in ("examples_per_s", "seconds")}},
        "dev_pytorch": score([rows[r["id"]] for r in dev], dev),
    })
    print(f"dev (PyTorch fp32): {results['dev_pytorch']}", flush=True)

    if args.grpo_steps:
        task = args.task or out / "data" / "task.json"
        if not args.task:
            subprocess.run(["npx", "tsx", str(ROOT / "scripts" / "task-description.ts"), str(task)], cwd=ROOT,
                           check=True)
        curve: list[dict] = []
        # One run folder per grpo setting: a rerun with other settings must not resume another setting's run.
        grpo_dir = out / (f"grpo-s{args.grpo_steps}-lr{args.grpo_learning_rate:g}-g{args.grpo_generations}"
                          f"-b{args.grpo_batch_size}-beta{args.grpo_beta:g}-t{args.grpo_temperature:g}")
        grpo, grpo_s = run("grpo", {"model": sft["outputs"]["model"], "data": str(sft_data),
                                    "task": str(task), "max_steps": args.grpo_steps,
                                    "learning_rate": args.grpo_learning_rate, "num_generations": args.grpo_generations,
                                    "batch_size": args.grpo_batch_size, "beta": args.grpo_beta,
                                    "temperature": args.grpo_temperature, "warmup_ratio": args.warmup_ratio,
                                    "seed": args.seed, "num_threads": args.threads, "save_steps": 100,
                                    "logging_steps": 10},
                           grpo_dir, args.threads, resume=True, progress=curve)
        predict_grpo, _ = run("predict", {"model": grpo["outputs"]["model"], "data": str(dev_data), "batch_size": 64,
                                          "num_threads": args.threads}, grpo_dir / "predict", args.threads)
        rows_grpo = {r["id"]: r["prediction"] for r in map(json.loads, open(predict_grpo["outputs"]["predictions"]))}
        keys = ("step", "reward", "reward_std", "valid_share", "verified_share", "exact_share", "kl",
                "completions/mean_length")
        results.update({
            "grpo": {"wall_s": round(grpo_s, 1), **{k: grpo["metrics"][k] for k in (
                "steps", "tokens_per_s", "train_runtime_s", "resumed_from_step", "peak_memory_bytes", "final_reward",
                "final_valid_share", "final_kl")}, "reward_curve": [{k: e.get(k) for k in keys} for e in curve]},
            "dev_pytorch_after_grpo": score([rows_grpo[r["id"]] for r in dev], dev),
        })
        print(f"dev (PyTorch fp32) after grpo: {results['dev_pytorch_after_grpo']}", flush=True)

    if not args.skip_onnx:
        from onnx_greedy import OnnxStudent

        export, export_s = run("export", {"model": sft["outputs"]["model"], "num_threads": args.threads},
                               out / "export", args.threads)
        quantize, _ = run("quantize", {"model": export["outputs"]["model"]}, out / "quantize", args.threads)
        student = OnnxStudent(quantize["outputs"]["model"], threads=args.threads)
        started = time.monotonic()
        predictions = []
        ordered = sorted(dev, key=lambda r: len(r["utt"]))
        for i in range(0, len(ordered), 64):
            predictions += student.generate([r["utt"] for r in ordered[i:i + 64]])
        int8_s = time.monotonic() - started
        results.update({
            "export": {"wall_s": round(export_s, 1), "max_abs_diff": export["metrics"]["max_abs_diff"],
                       "bytes": export["metrics"]["bytes"]},
            "quantize": {k: quantize["metrics"][k] for k in ("bytes_before", "bytes_after", "check_top1_agreement")},
            "dev_int8_onnx": {**score(predictions, ordered), "decode_s": round(int8_s, 1)},
        })
        print(f"dev (int8 ONNX): {results['dev_int8_onnx']}", flush=True)

    results["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.grpo_steps:
        (grpo_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
