#!/usr/bin/env python3
"""SmolLM2-135M-Instruct fine-tuned as the decoder student on a task from files (issue 21).

Runs the trainer's own commands, as the pipeline's decoder transfer does, on a from-files task (default: the
request router derived from MASSIVE, with its free-text `action` argument):

  decoder-convert (only when --base has no model folder yet) -> init (base_model) -> sft -> predict (dev)
  [--grpo-steps N: -> grpo from the sft model on the same training inputs -> predict (dev) again]

The sft data stands in for the teacher's accepted samples: one `sft.jsonl` line per train row, built as
buildSftRows writes it (system prompt, user utterance, one assistant tool call whose arguments are in the
task's string form, e.g. entity_count "2"; `tools` with the teacher's schema), from the GOLD call of the
first --train-rows rows of the train split. Dev is the first --dev-rows rows of the dev split.

Scores (dev): exact match of the whole call (same function, same multiset of whitespace-normalised (key, value)
pairs, as the task's agreement), the exact string, per-argument accuracy (an argument absent from both
counts as right), parse rate, schema validity and verified share (schema + span arguments occur in the
input) by the trainer's TaskReward over a task description written from functions.json.

grpo's reward curve (mean reward, its spread, the share of groups whose samples all scored alike, the
schema-valid / verified / exact shares of the samples, KL to the sft model) lands in the grpo folder's
results file beside the dev scores before and after.

Throughput: sft's tokens/s (non-padding tokens) and wall per epoch, extrapolated linearly to
--extrapolate-rows; peak RSS of the sft and predict processes; greedy single-call latency (batch 1) from
predict's `latency_samples`. Everything runs with --threads torch threads and OMP_NUM_THREADS the same.

  .venv/bin/python scripts/bench-smollm2.py --out /work/exp/smol/r1 --train-rows 1000 --dev-rows 200 \
      --learning-rate 1e-4 --epochs 1 --threads 1

A stage whose result file exists in --out is not rerun (delete the folder to start over).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER = ROOT / "trainer"
sys.path.insert(0, str(TRAINER))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(command: str, config: dict, run_dir: Path, threads: int, log_every: int = 1,
        resume: bool = False) -> tuple[dict, float]:
    """One trainer command through its CLI; the done event and the wall seconds (cached in run_dir). With resume,
    a run cut off before its done event goes on from its last checkpoint in run_dir."""
    result_path = run_dir / "result.json"
    if result_path.is_file():
        cached = json.loads(result_path.read_text())
        print(f"[{command}] cached: {result_path}", flush=True)
        return cached["done"], cached["wall_s"]
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / f"{command}.config.json"
    config_path.write_text(json.dumps(config, indent=2))
    env = {**os.environ, "PYTHONPATH": str(TRAINER), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.monotonic()
    progress = []
    with open(run_dir / "stderr.log", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supertiny_trainer", command, "--config", str(config_path),
             "--run-dir", str(run_dir)] + (["--resume"] if resume else []),
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )
        done = None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "progress":
                progress.append(event)
                if len(progress) % log_every == 0:
                    loss = event.get("loss")
                    extra = "".join(f" {k} {event[k]:.3f}" for k in GRPO_SHOWN if event.get(k) is not None)
                    print(f"[{command}] {event['step']}/{event['total']}"
                          + (f" loss {loss:.4f}" if loss is not None else "") + extra
                          + f" {event.get('tokens_per_s', 0):.0f} tok/s  +{time.monotonic() - started:.0f}s",
                          flush=True)
            elif event["event"] == "error":
                proc.wait()
                raise SystemExit(f"{command} failed: {event['kind']}: {event['message']} (see {run_dir}/stderr.log)")
            elif event["event"] == "done":
                done = event
        proc.wait()
    if proc.returncode != 0 or done is None:
        raise SystemExit(f"{command} exited {proc.returncode} without done (see {run_dir}/stderr.log)")
    wall = time.monotonic() - started
    (run_dir / "progress.jsonl").write_text("".join(json.dumps(e) + "\n" for e in progress))
    result_path.write_text(json.dumps({"done": done, "wall_s": wall}, indent=2))
    return done, wall


# What a grpo progress line shows beside the step (TRL's logged metrics and the task reward's shares).
GRPO_SHOWN = ("reward", "reward_std", "frac_reward_zero_std", "valid_share", "verified_share", "exact_share", "kl")


# ---- the task -------------------------------------------------------------------------------------------------


def string_form(parameters: dict, arguments: dict) -> dict:
    """tasks/from-files/arguments.ts toStringForm: numbers and booleans as their text, strings unchanged."""

    def text(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return json.dumps(value)
        if isinstance(value, list):
            return [text(v) for v in value]
        return value

    return {key: text(value) for key, value in arguments.items()}


def teacher_tool(tool: dict) -> dict:
    """The tool the teacher sees (tasks/from-files/task.ts teacherSchema): span mark said in words."""
    function = tool["function"]
    parameters = function["parameters"]
    properties = {}
    for key, p in parameters["properties"].items():
        if p.get("type") == "string" and p.get("x-span"):
            rest = {k: v for k, v in p.items() if k != "x-span"}
            rest["description"] = f"{rest.get('description', '')} Copy it verbatim from the request.".strip()
            properties[key] = rest
        else:
            properties[key] = p
    return {"type": "function", "function": {**function, "parameters": {
        **parameters, "properties": properties, "additionalProperties": False}}}


def task_description(functions_file: dict) -> dict:
    """The task description (tasks/task-description.ts format) the trainer's TaskReward reads."""
    functions = []
    for tool in functions_file["tools"]:
        f = teacher_tool(tool)["function"]
        original = tool["function"]["parameters"]
        required = set(original.get("required", []))
        arguments = []
        for key, p in original["properties"].items():
            if p.get("enum") is not None:
                kind = "enum"
            elif p.get("type") in ("integer", "number"):
                kind = "number"
            elif p.get("type") == "boolean":
                kind = "boolean"
            elif p.get("x-span"):
                kind = "span"
            else:
                kind = "free text"
            a = {"name": key, "kind": kind, "type": p.get("type", "string"), "required": key in required}
            if kind == "enum":
                a["values"] = [str(v) for v in p["enum"]]
            for bound in ("minimum", "maximum"):
                if bound in p:
                    a[bound] = p[bound]
            arguments.append(a)
        functions.append({"name": f["name"], "description": f.get("description", ""), "parameters": f["parameters"],
                          "arguments": arguments})
    return {"format": "supertiny-task/1", "task": "from-files", "functions": functions}


def build_data(args, out: Path) -> tuple[Path, Path, Path, list[dict], list[dict]]:
    functions_file = json.loads((args.task_dir / "functions.json").read_text())
    tools = {t["function"]["name"]: t for t in functions_file["tools"]}
    lines = (args.task_dir / "data.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    train = [r for r in rows if r["split"] == "train"][: args.train_rows]
    dev = [r for r in rows if r["split"] == args.eval_split][: args.dev_rows]
    sft_rows = []
    for r in train:
        name, arguments = r["gold"]["name"], r["gold"]["arguments"]
        tool = tools[name]
        sft_rows.append({
            "messages": [
                {"role": "system", "content": functions_file.get("systemPrompt", "")},
                {"role": "user", "content": r["input"]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "call_0", "type": "function", "function": {
                    "name": name,
                    "arguments": json.dumps(string_form(tool["function"]["parameters"], arguments),
                                            ensure_ascii=False, separators=(",", ":"))}}]},
            ],
            "tools": [teacher_tool(tool)],
        })
    data = out / f"data-n{len(train)}-{args.eval_split}{len(dev)}"
    sft = write_jsonl(data / "sft.jsonl", sft_rows)
    dev_path = write_jsonl(data / f"{args.eval_split}.jsonl", [{"id": r["id"], "utterance": r["input"]} for r in dev])
    task = data / "task.json"
    task.write_text(json.dumps(task_description(functions_file), indent=2))
    return sft, dev_path, task, train, dev


# ---- scoring --------------------------------------------------------------------------------------------------


def cut_at_call_end(text: str) -> str:
    """The text up to the first ")" outside a JSON string: what a decoder stopped at the call's end would give
    (for a student that has not learned to emit <|eos|> and goes on generating after the call)."""
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == ")":
            return text[: i + 1]
    return text



def score(predictions: dict[str, str], dev: list[dict], functions_file: dict, task_path: Path) -> dict:
    from supertiny_trainer.student.task_description import TaskDescription
    from supertiny_trainer.student.task_reward import TaskReward
    from supertiny_trainer.student.text_format import (
        CallParseError,
        compact_call,
        normalize_slot_value,
        parse_compact_call,
    )

    tools = {t["function"]["name"]: t for t in functions_file["tools"]}
    reward = TaskReward(TaskDescription.load(task_path))
    keys = list(dict.fromkeys(k for t in functions_file["tools"] for k in t["function"]["parameters"]["properties"]))
    n = len(dev)
    counts = Counter()
    per_arg = Counter()
    reasons = Counter()
    errors = []
    for r in dev:
        gold_args = string_form(tools[r["gold"]["name"]]["function"]["parameters"], r["gold"]["arguments"])
        gold = compact_call(r["gold"]["name"], gold_args)
        pred = predictions[r["id"]]
        review = reward.review(pred, r["input"], gold)
        counts["parsed"] += review.parsed
        counts["schema_valid"] += review.schema_valid
        counts["verified"] += review.verified
        counts["exact"] += review.exact
        counts["exact_string"] += pred == gold
        if not review.verified:
            reasons[review.reason.split(" at column")[0][:80]] += 1
        try:
            name, pairs = parse_compact_call(pred)
            ours = {k: normalize_slot_value(v) for k, v in pairs}
        except CallParseError:
            name, ours = None, None
        counts["function"] += name == r["gold"]["name"]
        theirs = {k: normalize_slot_value(str(v)) for k, v in gold_args.items()}
        for key in keys:
            per_arg[key] += ours is not None and name == r["gold"]["name"] and ours.get(key) == theirs.get(key)
        if not review.exact:
            errors.append({"id": r["id"], "input": r["input"], "gold": gold, "prediction": pred,
                           "wrong": [k for k in keys if ours is None or ours.get(k) != theirs.get(k)]})
    wrong_args = Counter(k for e in errors for k in e["wrong"])
    return {
        "examples": n,
        "exact_match": round(counts["exact"] / n, 4),
        "exact_string": round(counts["exact_string"] / n, 4),
        "argument_accuracy": {k: round(per_arg[k] / n, 4) for k in keys},
        "parsed": round(counts["parsed"] / n, 4),
        "schema_valid": round(counts["schema_valid"] / n, 4),
        "verified": round(counts["verified"] / n, 4),
        "not_verified_reasons": dict(reasons.most_common(10)),
        "wrong_argument_counts": dict(wrong_args.most_common()),
        "errors_sample": errors[:40],
    }


def copy_token_rows(model_dir: Path, destination: Path, pairs: list[tuple[str, str]]) -> dict:
    """A copy of the init folder in which each student special token's embedding row (tied: also its output row)
    is the row of a base token, e.g. <|eos|> from <|im_end|>: the student's stop token then starts as the token
    the instruct base already ends its answers with, instead of the mean row `init` gives a new token."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    if (destination / "model.safetensors").is_file():
        return json.loads((destination / "copied_rows.json").read_text())
    tmp = destination.with_name(destination.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    config = json.loads((model_dir / "config.json").read_text())
    if not config.get("tie_word_embeddings", False):
        raise SystemExit("--copy-row expects tied embeddings (SmolLM2-135M ties them)")
    weights = load_file(str(model_dir / "model.safetensors"))
    embed = weights["model.embed_tokens.weight"]
    copied = {}
    for target, source in pairs:
        t, src = tokenizer.convert_tokens_to_ids(target), tokenizer.convert_tokens_to_ids(source)
        if t is None or src is None or t == tokenizer.unk_token_id or src == tokenizer.unk_token_id:
            raise SystemExit(f"--copy-row {target}={source}: unknown token")
        embed[t] = embed[src].clone()
        copied[target] = {"from": source, "target_id": t, "source_id": src}
    weights["model.embed_tokens.weight"] = embed.contiguous()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"),
              metadata={"format": "pt"})
    (tmp / "copied_rows.json").write_text(json.dumps(copied, indent=2))
    tmp.rename(destination)
    return copied


# ---- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/work/exp/smol/run"))
    parser.add_argument("--task-dir", type=Path, default=Path("/work/exp/router/F"),
                        help="folder with functions.json and data.jsonl (split field train/dev/test)")
    parser.add_argument("--base", type=Path, default=Path("/tmp/smol-run/r1/model"),
                        help="the converted float32 HF folder; converted with decoder-convert when missing")
    parser.add_argument("--gguf", type=Path, default=ROOT / ".tools/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--dev-rows", type=int, default=200, help="how many rows of --eval-split to score")
    parser.add_argument("--eval-split", default="dev", help="the split scored (dev; test for a final number)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32, help="the trainer's default")
    parser.add_argument("--lr-scheduler", default="cosine")
    parser.add_argument("--warmup-ratio", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--predict-batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--extrapolate-rows", type=int, default=3000)
    parser.add_argument("--copy-row", action="append", default=[], metavar="STUDENT=BASE",
                        help="start a student special token's embedding row as a base token's, e.g. "
                             "'<|eos|>=<|im_end|>' (repeatable; default none: init's mean rows, as the pipeline)")
    parser.add_argument("--grpo-steps", type=int, default=0,
                        help="after sft, this many grpo steps on the same training inputs, then predict and score "
                             "again (0: no grpo)")
    parser.add_argument("--grpo-learning-rate", type=float, default=5e-5, help="the trainer's grpo default")
    parser.add_argument("--grpo-generations", type=int, default=8)
    parser.add_argument("--grpo-batch-size", type=int, default=32, help="completions per step")
    parser.add_argument("--grpo-beta", type=float, default=0.04)
    parser.add_argument("--grpo-temperature", type=float, default=1.0)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    results: dict = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                     "cpu_count": os.cpu_count(), "loadavg_before": load_before}

    base = args.base
    if not (base / "config.json").is_file():
        print(f"no base folder at {base}: decoder-convert from {args.gguf}", flush=True)
        convert, convert_s = run("decoder-convert", {"gguf": str(args.gguf), "num_threads": args.threads},
                                 out / "convert", args.threads)
        base = Path(convert["outputs"]["model"])
        results["convert"] = {"wall_s": round(convert_s, 1), "max_abs_diff": convert["metrics"].get("max_abs_diff")}

    functions_file = json.loads((args.task_dir / "functions.json").read_text())
    sft_data, dev_data, task_path, train, dev = build_data(args, out)
    results.update({"train_rows": len(train), "eval_split": args.eval_split, "dev_rows": len(dev)})
    print(f"data: {len(train)} train (gold calls as the teacher's accepted samples), {len(dev)} {args.eval_split}",
          flush=True)

    init, init_s = run("init", {"base_model": str(base), "seed": args.seed}, out / "init", args.threads)
    results["init"] = {"wall_s": round(init_s, 1), **{k: init["metrics"].get(k) for k in (
        "parameters", "vocab_size", "num_layers", "hidden_size", "bytes_on_disk", "added_special_tokens")}}
    print(f"init: {init['metrics']['parameters']:,} parameters, vocab {init['metrics']['vocab_size']}", flush=True)

    start_model = init["outputs"]["model"]
    tag = ""
    if args.copy_row:
        pairs = [tuple(p.split("=", 1)) for p in args.copy_row]
        names = {"<|eos|>": "eos", "<|bos|>": "bos", "<|sep|>": "sep", "<|pad|>": "pad"}
        tag = "-rows-" + "-".join(names.get(t, "x") + "_" + "".join(c for c in b if c.isalnum()) for t, b in pairs)
        destination = out / ("init" + tag) / "model"
        destination.parent.mkdir(parents=True, exist_ok=True)
        results["copied_rows"] = copy_token_rows(Path(start_model), destination, pairs)
        start_model = str(destination)
        print(f"copied rows: {results['copied_rows']}", flush=True)

    sft_config = {"model": start_model, "data": str(sft_data), "epochs": args.epochs,
                  "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                  "lr_scheduler": args.lr_scheduler, "warmup_ratio": args.warmup_ratio, "seed": args.seed,
                  "num_threads": args.threads, "logging_steps": 1, "save_steps": 100000, "keep_checkpoints": 1}
    if args.max_steps:
        sft_config["max_steps"] = args.max_steps
    sft_dir = out / (f"sft-lr{args.learning_rate:g}-e{args.epochs:g}"
                     + (f"-s{args.max_steps}" if args.max_steps else "")
                    + f"-n{len(train)}" + tag)
    sft, sft_s = run("sft", sft_config, sft_dir, args.threads)
    m = sft["metrics"]
    epochs_done = m.get("epochs") or args.epochs
    per_epoch = m["train_runtime_s"] / max(epochs_done, 1e-9)
    rows_trained = len(train) * epochs_done
    results["sft"] = {
        "wall_s": round(sft_s, 1),
        **{k: m.get(k) for k in ("steps", "epochs", "tokens_seen", "tokens_per_s", "train_runtime_s", "train_loss",
                                 "final_loss", "peak_memory_bytes", "peak_memory_kind", "samples_accepted",
                                 "samples_rejected", "compute_cpu_s")},
        "wall_per_epoch_s": round(per_epoch, 1),
        "tokens_per_row": round(m["tokens_seen"] / max(rows_trained, 1e-9), 1),
        f"wall_per_epoch_s_at_{args.extrapolate_rows}_rows": round(per_epoch * args.extrapolate_rows / len(train), 1),
        "peak_rss_gib": round(m["peak_memory_bytes"] / 2**30, 2),
    }
    print(f"sft: {json.dumps(results['sft'])}", flush=True)

    predict_dir = sft_dir / f"predict-{args.eval_split}{len(dev)}"
    predict, predict_s = run("predict", {"model": sft["outputs"]["model"], "data": str(dev_data),
                                         "batch_size": args.predict_batch_size, "max_new_tokens": args.max_new_tokens,
                                         "num_threads": args.threads, "latency_samples": args.latency_samples},
                             predict_dir, args.threads, log_every=1)
    pm = predict["metrics"]
    results["predict"] = {"wall_s": round(predict_s, 1), **{k: pm.get(k) for k in (
        "examples", "seconds", "examples_per_s", "generated_tokens_per_s", "latency_samples", "latency_ms_p50",
        "latency_ms_p95", "peak_memory_bytes")}}
    prediction_lines = Path(predict["outputs"]["predictions"]).read_text(encoding="utf-8").splitlines()
    predictions = {r["id"]: r["prediction"] for r in map(json.loads, prediction_lines)}
    results["dev"] = score(predictions, dev, functions_file, task_path)
    # The same predictions cut at the call's closing parenthesis (not what the runtime does: it stops at <|eos|>).
    results["dev_cut_at_call_end"] = score({k: cut_at_call_end(v) for k, v in predictions.items()}, dev,
                                           functions_file, task_path)
    results["loadavg_after"] = os.getloadavg()
    results_path = sft_dir / f"results-{args.eval_split}{len(dev)}.json"
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    summary = {k: v for k, v in results["dev"].items() if k != "errors_sample"}
    print(f"dev: {json.dumps(summary)}", flush=True)
    cut = {k: v for k, v in results["dev_cut_at_call_end"].items() if k != "errors_sample"}
    print(f"dev, cut at the call's end: {json.dumps(cut)}", flush=True)
    print(f"predict: {json.dumps(results['predict'])}", flush=True)
    print(f"results: {results_path}", flush=True)

    if args.grpo_steps:
        grpo_after_sft(args, sft, sft_dir, sft_data, dev_data, task_path, dev, functions_file, results)


def grpo_after_sft(args, sft: dict, sft_dir: Path, sft_data: Path, dev_data: Path, task_path: Path, dev: list[dict],
                   functions_file: dict, results: dict) -> None:
    """grpo from the sft model on the same training inputs (the trainer's command, as the pipeline runs it), its
    reward curve, then the same predict and score on the eval split: the "after" beside sft's "before"."""
    # One folder per grpo setting: a rerun with other settings must not resume another setting's run.
    grpo_dir = sft_dir / (f"grpo-s{args.grpo_steps}-lr{args.grpo_learning_rate:g}-g{args.grpo_generations}"
                          f"-b{args.grpo_batch_size}-beta{args.grpo_beta:g}-t{args.grpo_temperature:g}")
    grpo, grpo_s = run("grpo", {"model": sft["outputs"]["model"], "data": str(sft_data), "task": str(task_path),
                                "max_steps": args.grpo_steps, "learning_rate": args.grpo_learning_rate,
                                "num_generations": args.grpo_generations, "batch_size": args.grpo_batch_size,
                                "beta": args.grpo_beta, "temperature": args.grpo_temperature,
                                "warmup_ratio": args.warmup_ratio, "seed": args.seed, "num_threads": args.threads,
                                "logging_steps": 1, "save_steps": 10, "keep_checkpoints": 1},
                       grpo_dir, args.threads, resume=True)
    curve = [json.loads(line) for line in (grpo_dir / "progress.jsonl").read_text().splitlines()]
    gm = grpo["metrics"]
    predict_dir = grpo_dir / f"predict-{args.eval_split}{len(dev)}"
    predict, _ = run("predict", {"model": grpo["outputs"]["model"], "data": str(dev_data),
                                         "batch_size": args.predict_batch_size, "max_new_tokens": args.max_new_tokens,
                                         "num_threads": args.threads, "latency_samples": 0},
                             predict_dir, args.threads)
    lines = Path(predict["outputs"]["predictions"]).read_text(encoding="utf-8").splitlines()
    predictions = {r["id"]: r["prediction"] for r in map(json.loads, lines)}
    results["grpo"] = {
        "wall_s": round(grpo_s, 1),
        **{k: gm.get(k) for k in ("steps", "train_runtime_s", "peak_memory_bytes", "final_reward",
                                  "final_valid_share", "final_kl", "samples_accepted")},
        "reward_curve": [{k: e.get(k) for k in ("step",) + GRPO_SHOWN} for e in curve],
    }
    results["dev_after_grpo"] = score(predictions, dev, functions_file, task_path)
    (grpo_dir / f"results-{args.eval_split}{len(dev)}.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False))
    before = results["dev"]
    after = results["dev_after_grpo"]
    print(f"{args.eval_split} exact match: sft {before['exact_match']:.4f} -> grpo {after['exact_match']:.4f}; "
          f"arguments {json.dumps(after['argument_accuracy'])}; grpo {grpo_s:.0f} s", flush=True)
    print(f"results: {grpo_dir / f'results-{args.eval_split}{len(dev)}.json'}", flush=True)


if __name__ == "__main__":
    main()
