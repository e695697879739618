"""`predict` for an encoder folder: one forward pass per batch, then schema-constrained tag decoding.

Runs a training folder with PyTorch, or an exported folder (model.onnx) with onnxruntime; both decode
with student.tag_decoding, so their predictions differ only by the numerics of the two backends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..core.checkpoints import atomic_write_text
from ..core.command import CommandResult, RunContext
from ..core.runtime import peak_memory, set_threads
from ..student.datasets import load_utterances
from ..student.encoder import EncoderLabels, load_encoder_student, load_encoder_tokenizer
from ..student.tag_decoding import TagDecoder
from .predict import latency_metrics


class TorchEncoder:
    def __init__(self, folder: Path):
        import torch

        student = load_encoder_student(folder)
        self.model, self.tokenizer, self.labels = student.model.eval(), student.tokenizer, student.labels
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.torch = torch

    def logits(self, feed: dict[str, Any]) -> tuple[Any, Any, Any]:
        """(intent, tag, value logits); value logits None without value heads."""
        with self.torch.inference_mode():
            outputs = self.model(
                *(self.torch.from_numpy(feed[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
            )
        return outputs[0].numpy(), outputs[1].numpy(), outputs[2].numpy() if len(outputs) > 2 else None


class OnnxEncoder:
    def __init__(self, folder: Path, threads: int):
        import onnxruntime as ort

        self.labels = EncoderLabels.load(folder)
        self.tokenizer = load_encoder_tokenizer(folder, self.labels.max_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.parameters = None

    def logits(self, feed: dict[str, Any]) -> tuple[Any, Any, Any]:
        outputs = self.session.run(output_names(self.labels), feed)
        return outputs[0], outputs[1], outputs[2] if len(outputs) > 2 else None


def output_names(labels: EncoderLabels) -> list[str]:
    """The graph's outputs: intent_logits, tag_logits, and value_logits when the student has value heads."""
    return ["intent_logits", "tag_logits"] + (["value_logits"] if labels.value_heads else [])


def encode_batch(tokenizer: Any, texts: list[str], pad_id: int) -> tuple[dict[str, Any], list[Any]]:
    import numpy as np

    encodings = tokenizer.encode_batch(texts)
    length = max(len(e.ids) for e in encodings)
    feed = {
        name: np.zeros((len(texts), length), dtype=np.int64)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    }
    feed["input_ids"][:] = pad_id
    for row, e in enumerate(encodings):
        feed["input_ids"][row, : len(e.ids)] = e.ids
        feed["attention_mask"][row, : len(e.ids)] = 1
        feed["token_type_ids"][row, : len(e.ids)] = e.type_ids
    return feed, encodings


def decode_batch(
    decoder: TagDecoder,
    texts: list[str],
    encodings: list[Any],
    intent_logits: Any,
    tag_logits: Any,
    value_logits: Any = None,
) -> list[str]:
    calls = []
    for row, (text, e) in enumerate(zip(texts, encodings, strict=True)):
        words = [i for i, special in enumerate(e.special_tokens_mask) if not special]
        values = None if value_logits is None else value_logits[row]
        calls.append(decoder.decode(text, intent_logits[row], tag_logits[row], e.offsets, words, values).compact())
    return calls


class EncoderPredictor:
    """Called by `predict` when the model folder's supertiny.json says family "encoder"."""

    def __init__(self, config: Any, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        threads = set_threads(self.config.num_threads)
        folder = Path(self.config.model)
        items = load_utterances(self.config.data)
        backend = OnnxEncoder(folder, threads) if (folder / "model.onnx").is_file() else TorchEncoder(folder)
        decoder = TagDecoder(backend.labels)
        pad_id = backend.tokenizer.token_to_id("[PAD]") or 0

        order = sorted(range(len(items)), key=lambda i: len(items[i].utterance))
        predictions: dict[int, str] = {}
        tokens = 0
        started = time.monotonic()
        for start in range(0, len(order), self.config.batch_size):
            batch = order[start : start + self.config.batch_size]
            texts = [items[i].utterance for i in batch]
            feed, encodings = encode_batch(backend.tokenizer, texts, pad_id)
            tokens += int(feed["attention_mask"].sum())
            intents, tags, values = backend.logits(feed)
            for i, call in zip(batch, decode_batch(decoder, texts, encodings, intents, tags, values), strict=True):
                predictions[i] = call
            self.context.events.progress(
                step=min(start + len(batch), len(items)),
                total=len(items),
                loss=None,
                tokens_per_s=round(tokens / max(time.monotonic() - started, 1e-9), 1),
            )
        elapsed = time.monotonic() - started
        latency = self._single_request_latency(backend, decoder, [item.utterance for item in items], pad_id)

        destination = self.context.run_dir / "predictions.jsonl"
        atomic_write_text(
            destination,
            "".join(
                json.dumps({"id": item.id, "prediction": predictions[i]}, ensure_ascii=False) + "\n"
                for i, item in enumerate(items)
            ),
        )
        metrics = {
            "examples": len(items),
            "seconds": round(elapsed, 2),
            "examples_per_s": round(len(items) / max(elapsed, 1e-9), 1),
            "backend": "onnxruntime" if isinstance(backend, OnnxEncoder) else "torch",
            "device": "cpu",
            **latency,
            **peak_memory(),
        }
        if backend.parameters is not None:
            metrics["parameters"] = backend.parameters
        return CommandResult(metrics=metrics, outputs={"predictions": str(destination)})

    def _single_request_latency(self, backend, decoder, texts: list[str], pad_id: int) -> dict:
        """Wall time of single requests (batch 1): tokenize, forward, decode."""
        count = min(self.config.latency_samples, len(texts))
        if count == 0:
            return {}
        timings = []
        for text in texts[:count]:
            started = time.perf_counter()
            feed, encodings = encode_batch(backend.tokenizer, [text], pad_id)
            intents, tags, values = backend.logits(feed)
            decode_batch(decoder, [text], encodings, intents, tags, values)
            timings.append((time.perf_counter() - started) * 1000)
        return latency_metrics(timings)
