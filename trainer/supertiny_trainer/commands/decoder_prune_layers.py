"""`decoder-prune-layers`: drops transformer layers from a trained decoder student and recovers what they knew by
logit distillation from the unpruned model (the paper's prune-then-distill, for the decoder family).

The pruned student keeps `layers` of the model's layers, evenly spaced with the first and the last always kept
(30 -> 20 keeps 0, 2, 3, 5, ...), or exactly `keep_layers`; embeddings, final norm and LM head are the unpruned
model's. It is then trained on the sft samples as `kd` trains, with the unpruned model as the frozen teacher:
per answer token alpha x cross-entropy against the accepted call + (1 - alpha) x T^2 x KL over the teacher's top-k
tokens. Checkpoints, resume, data order and progress events are the shared core's, as in sft.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.errors import ConfigError
from ..core.layers import layers_to_keep, validate_layer_choice
from ..core.runtime import set_threads
from ..core.training import run_training
from ..student.datasets import load_sft_samples
from ..student.model_folder import load_student, parameter_count
from .kd import DistillationConfig, build_distillation_trainer
from .sft import finish


@dataclass
class DecoderPruneLayersConfig(DistillationConfig):
    # `model`: a trained decoder student folder (sft's, grpo's or decoder-prune-vocab's output); it is also the teacher.
    layers: int = 20  # layers to keep, evenly spaced, first and last included
    keep_layers: list[int] = field(default_factory=list)  # explicit layer indices to keep (overrides `layers`)
    epochs: float = 1.0
    # SmolLM2-135M on the request router, 30 -> 20 layers, one epoch: dev exact match 58.0% at 3e-4 against 49.4% at
    # 1e-4 (BENCHMARKS.md); the base's sft rate.
    learning_rate: float = 3e-4

    def validate(self) -> None:
        super().validate()
        validate_layer_choice(self.layers, list(self.keep_layers))


def drop_layers(model: Any, keep: list[int]) -> Any:
    """A copy of a causal LM (Llama, Qwen2: `model.model.layers`) with only the layers `keep`, renumbered so that
    each attention writes its own slot of the KV cache, and a config that says so."""
    import torch

    pruned = copy.deepcopy(model)
    layers = [pruned.model.layers[i] for i in keep]
    for index, layer in enumerate(layers):
        attention = getattr(layer, "self_attn", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = index
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = index
    pruned.model.layers = torch.nn.ModuleList(layers)
    config = pruned.config
    config.num_hidden_layers = len(keep)
    # Per-layer settings some architectures carry (Qwen2's attention kinds): the kept layers' own.
    if isinstance(getattr(config, "layer_types", None), list) and len(config.layer_types) == len(model.model.layers):
        config.layer_types = [config.layer_types[i] for i in keep]
    if hasattr(config, "max_window_layers") and isinstance(config.max_window_layers, int):
        config.max_window_layers = min(config.max_window_layers, len(keep))
    return pruned


class DecoderLayerPruner:
    def __init__(self, config: DecoderPruneLayersConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        cfg = self.config
        set_threads(cfg.num_threads)
        samples, report = load_sft_samples(cfg.data)
        teacher = load_student(cfg.model, "model to prune")
        if not hasattr(getattr(teacher.model, "model", None), "layers"):
            raise ConfigError(
                f"model {cfg.model}: a {type(teacher.model).__name__} has no `model.layers` to prune "
                "(decoder-prune-layers takes Llama- and Qwen2-style causal LMs)"
            )
        total = len(teacher.model.model.layers)
        keep = layers_to_keep(total, cfg.layers, list(cfg.keep_layers))
        student = dataclasses.replace(teacher, model=drop_layers(teacher.model, keep))  # same tokenizer, template
        store = CheckpointStore(self.context.run_dir, keep=cfg.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        trainer = build_distillation_trainer(cfg, store, student, teacher.model, samples)
        metrics = run_training(trainer, store, self.context.events, resume_from)
        metrics.update(
            {
                "layers_before": total,
                "layers_after": len(keep),
                "kept_layers": keep,
                "parameters_before": parameter_count(teacher.model),
                "top_k": cfg.top_k,
                "alpha": cfg.alpha,
                "temperature": cfg.temperature,
            }
        )
        metrics.update(report.as_metrics("samples"))
        return finish(student, trainer.model, self.context, metrics)
