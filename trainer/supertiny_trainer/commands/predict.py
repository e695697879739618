"""`predict`: greedy compact-call predictions for a jsonl of {id, utterance}, in batches."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from ..core.checkpoints import atomic_write_text
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError
from ..core.runtime import device, peak_memory, set_threads
from ..student.datasets import load_utterances
from ..student.model_folder import load_student


@dataclass
class PredictConfig:
    model: str = ""  # model folder (an encoder folder, training or exported, runs EncoderPredictor)
    data: str = ""  # jsonl of {"id", "utterance"}
    batch_size: int = 64
    max_new_tokens: int = 64  # decoder only
    num_threads: int | None = None
    latency_samples: int = 0  # also time this many single requests (batch 1), for latency p50/p95

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("config field 'model' is required (a model folder)")
        if not self.data:
            raise ConfigError("config field 'data' is required (a jsonl of {id, utterance})")
        require_positive(self, "batch_size", "max_new_tokens", "num_threads")
        if self.latency_samples < 0:
            raise ConfigError("config field 'latency_samples' must be >= 0")


def latency_metrics(timings: list[float]) -> dict:
    """The predict commands' latency fields from single-request wall times in ms (the evaluator reads them)."""
    ordered = sorted(timings)
    return {
        "latency_samples": len(timings),
        "latency_ms_p50": round(_percentile(ordered, 50), 3),
        "latency_ms_p95": round(_percentile(ordered, 95), 3),
        "latency_throughput_rps": round(len(timings) / (sum(timings) / 1000), 2),
    }


def _percentile(sorted_values: list[float], p: float) -> float:
    rank = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


class Predictor:
    def __init__(self, config: PredictConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        import torch

        set_threads(self.config.num_threads)
        items = load_utterances(self.config.data)
        student = load_student(self.config.model, device=device())
        model, tokenizer, template = student.model.eval(), student.tokenizer, student.template
        tokenizer.padding_side = "left"
        eos_id = tokenizer.convert_tokens_to_ids(template.eos_token)
        pad_id = tokenizer.convert_tokens_to_ids(template.pad_token)

        # Similar lengths per batch waste less compute on padding; the output keeps the input order.
        order = sorted(range(len(items)), key=lambda i: len(items[i].utterance))
        predictions: dict[int, str] = {}
        generated_tokens = 0
        started = time.monotonic()
        for start in range(0, len(order), self.config.batch_size):
            batch = order[start : start + self.config.batch_size]
            prompts = [template.prompt(items[i].utterance) for i in batch]
            encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                output = model.generate(
                    **encoded,
                    max_new_tokens=self.config.max_new_tokens,
                    do_sample=False,
                    eos_token_id=eos_id,
                    pad_token_id=pad_id,
                )
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            for i, tokens in zip(batch, new_tokens, strict=True):
                tokens = tokens.tolist()
                if eos_id in tokens:
                    tokens = tokens[: tokens.index(eos_id)]
                generated_tokens += len(tokens) + 1
                predictions[i] = tokenizer.decode(tokens, skip_special_tokens=True)
            self.context.events.progress(
                step=min(start + len(batch), len(items)),
                total=len(items),
                loss=None,
                tokens_per_s=round(generated_tokens / max(time.monotonic() - started, 1e-9), 1),
            )
        elapsed = time.monotonic() - started
        latency = self._single_request_latency(model, tokenizer, template, items, eos_id, pad_id)

        destination = self.context.run_dir / "predictions.jsonl"
        atomic_write_text(
            destination,
            "".join(
                json.dumps({"id": item.id, "prediction": predictions[i]}, ensure_ascii=False) + "\n"
                for i, item in enumerate(items)
            ),
        )
        return CommandResult(
            metrics={
                "examples": len(items),
                "seconds": round(elapsed, 2),
                "examples_per_s": round(len(items) / max(elapsed, 1e-9), 1),
                "generated_tokens_per_s": round(generated_tokens / max(elapsed, 1e-9), 1),
                "device": str(model.device),
                "parameters": sum(p.numel() for p in model.parameters()),
                **latency,
                **peak_memory(),
            },
            outputs={"predictions": str(destination)},
        )

    def _single_request_latency(self, model, tokenizer, template, items, eos_id, pad_id) -> dict:
        """Wall time of single requests (batch 1, eager mode): tokenize, generate, decode."""
        import torch

        count = min(self.config.latency_samples, len(items))
        if count == 0:
            return {}
        timings = []
        for item in items[:count]:
            started = time.perf_counter()
            encoded = tokenizer([template.prompt(item.utterance)], return_tensors="pt", add_special_tokens=False).to(
                model.device
            )
            with torch.inference_mode():
                output = model.generate(
                    **encoded,
                    max_new_tokens=self.config.max_new_tokens,
                    do_sample=False,
                    eos_token_id=eos_id,
                    pad_token_id=pad_id,
                )
            tokenizer.decode(output[0, encoded["input_ids"].shape[1] :].tolist(), skip_special_tokens=True)
            timings.append((time.perf_counter() - started) * 1000)
        return latency_metrics(timings)
