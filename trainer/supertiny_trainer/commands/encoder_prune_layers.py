"""`encoder-prune-layers`: drops transformer layers from a trained encoder student and recovers what they
knew by logit distillation from the unpruned model.

The pruned student keeps `layers` of the model's layers, evenly spaced with the first and the last always
kept (6 -> 4 keeps 0, 2, 3, 5), or exactly `keep_layers`; its heads and embeddings are the unpruned model's.
It is then trained on the sft utterances against the unpruned model's intent, tag (and value head) distributions at
temperature `temperature` (KL, scaled by T^2), mixed with the sft targets (the teacher LLM's votes) at
weight `1 - distill_weight`. The unpruned model is frozen and runs on each batch. Checkpoints, resume, data
order and events are the shared core's, as in encoder-sft.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.config import choice
from ..core.errors import ConfigError, DataError
from ..core.layers import layers_to_keep, validate_layer_choice
from ..core.runtime import set_threads
from ..core.training import SCHEDULERS, TrainingConfig, run_training
from ..student.encoder import load_encoder_student, save_encoder_student
from ..student.encoder_data import EncoderDataReport, encode_examples, encoder_examples, read_encoder_rows
from .encoder_sft import build_encoder_trainer, encoder_trainer_class, value_log_probs


@dataclass
class EncoderPruneLayersConfig(TrainingConfig):
    # `model`: a trained encoder student folder (encoder-sft's or encoder-prune-vocab's output).
    data: str = ""  # sft.jsonl: the utterances to distil on (and their vote targets)
    layers: int = 4  # layers to keep, evenly spaced, first and last included
    keep_layers: list[int] = field(default_factory=list)  # explicit layer indices to keep (overrides `layers`)
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 1e-4  # the encoder's
    head_learning_rate: float = 1e-4  # the heads start trained: no faster rate than the encoder's
    lr_scheduler: str = choice("linear", SCHEDULERS)
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    temperature: float = 2.0
    distill_weight: float = 0.8  # share of the loss from the unpruned model's logits (the rest: sft targets)
    vote_weight: float = 1.0
    tag_loss_weight: float = 1.0
    value_loss_weight: float = 1.0
    freeze_word_embeddings: bool = True

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("config field 'data' is required (an sft.jsonl file)")
        validate_layer_choice(self.layers, list(self.keep_layers))
        if self.temperature <= 0:
            raise ConfigError(f"config field 'temperature' must be > 0, got {self.temperature}")
        if not 0 <= self.distill_weight <= 1:
            raise ConfigError(f"config field 'distill_weight' must be in [0, 1], got {self.distill_weight}")
        if not 0 <= self.vote_weight <= 1:
            raise ConfigError(f"config field 'vote_weight' must be in [0, 1], got {self.vote_weight}")
        if self.head_learning_rate <= 0:
            raise ConfigError(f"config field 'head_learning_rate' must be > 0, got {self.head_learning_rate}")


def distilling_trainer_class():
    import torch
    import torch.nn.functional as F

    base = encoder_trainer_class()

    class DistillingTrainer(base):
        def __init__(self, *args, teacher: Any, temperature: float, distill_weight: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher = teacher.eval().to(self.args.device)
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            self.temperature = temperature
            self.distill_weight = distill_weight

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
            outputs = model(ids, mask, types)
            intent_logits, tag_logits = outputs[0], outputs[1]
            with torch.no_grad():
                teacher_outputs = self.teacher(ids, mask, types)
            teacher_intents, teacher_tags = teacher_outputs[0], teacher_outputs[1]
            t, word = self.temperature, inputs["word_mask"]

            def kl(student, teacher):  # per row, teacher || student at temperature t, scaled by t^2
                return (
                    (
                        F.softmax(teacher.float() / t, -1)
                        * (F.log_softmax(teacher.float() / t, -1) - F.log_softmax(student.float() / t, -1))
                    ).sum(-1)
                    * t
                    * t
                )

            distill = (
                kl(intent_logits, teacher_intents).mean()
                + self.tag_loss_weight * kl(tag_logits, teacher_tags)[word].mean()
            )
            hard_intent = -(inputs["intent_targets"] * F.log_softmax(intent_logits.float(), -1)).sum(-1).mean()
            hard_tags = -(inputs["tag_targets"] * F.log_softmax(tag_logits.float(), -1)).sum(-1)[word].mean()
            hard = hard_intent + self.tag_loss_weight * hard_tags
            if len(outputs) > 2:
                # Each value head's KL, summed over the heads; only heads of a row's likely functions matter
                # at inference, but the unpruned model's belief on every head is what it knew.
                student_values = value_log_probs(outputs[2] / t, self.value_slices)
                teacher_values = value_log_probs(teacher_outputs[2] / t, self.value_slices)
                value_kl = (teacher_values.exp() * (teacher_values - student_values)).sum(-1).mean() * t * t
                hard_values = self.value_loss(outputs[2], inputs["value_targets"])
                distill = distill + self.value_loss_weight * value_kl
                hard = hard + self.value_loss_weight * hard_values
                self.component_sums.update({"values": hard_values.item()})
            loss = self.distill_weight * distill + (1 - self.distill_weight) * hard
            self.component_sums.update({"intent": hard_intent.item(), "tags": hard_tags.item(), "n": 1})
            return (loss, outputs) if return_outputs else loss

    return DistillingTrainer


class EncoderLayerPruner:
    def __init__(self, config: EncoderPruneLayersConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        import copy

        import torch

        cfg = self.config
        set_threads(cfg.num_threads)
        teacher = load_encoder_student(cfg.model, "model to prune")
        labels, tokenizer = teacher.labels, teacher.tokenizer
        total = teacher.model.bert.config.num_hidden_layers
        keep = layers_to_keep(total, cfg.layers, list(cfg.keep_layers))

        student = copy.deepcopy(teacher.model)
        student.bert.encoder.layer = torch.nn.ModuleList([student.bert.encoder.layer[i] for i in keep])
        student.bert.config.num_hidden_layers = len(keep)
        student.train()
        if cfg.freeze_word_embeddings:
            student.bert.embeddings.word_embeddings.weight.requires_grad_(False)

        report = EncoderDataReport()
        rows, schema = read_encoder_rows(cfg.data, report)
        if not schema:
            raise DataError(f"sft dataset {cfg.data}: no tool definitions in the rows' 'tools'")
        unknown = sorted(set(schema) - set(labels.intents))
        if unknown:
            raise DataError(
                f"sft dataset {cfg.data}: functions {unknown[:5]} are not among the model's intents "
                "(prune with the data the model was trained on)"
            )
        examples = encoder_examples(rows, schema, cfg.vote_weight, report)
        counts: Counter = Counter()
        encoded = encode_examples(examples, tokenizer, labels, counts)
        if not encoded:
            raise DataError(f"sft dataset {cfg.data}: no usable rows to distil on")

        pad_id = tokenizer.token_to_id("[PAD]")
        store = CheckpointStore(self.context.run_dir, keep=cfg.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        torch.manual_seed(cfg.seed)
        trainer = build_encoder_trainer(
            distilling_trainer_class(),
            student,
            cfg,
            store,
            encoded,
            labels,
            pad_id,
            teacher=teacher.model,
            temperature=cfg.temperature,
            distill_weight=cfg.distill_weight,
        )
        metrics = run_training(trainer, store, self.context.events, resume_from)
        destination = self.context.run_dir / "model"
        save_encoder_student(trainer.model, tokenizer, labels, destination)
        metrics.update(
            {
                "layers_before": total,
                "layers_after": len(keep),
                "kept_layers": keep,
                "parameters_before": sum(p.numel() for p in teacher.model.parameters()),
                "parameters": sum(p.numel() for p in student.parameters()),
                "examples": len(encoded),
            }
        )
        return CommandResult(metrics=metrics, outputs={"model": str(destination)})
