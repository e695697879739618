"""`kd`: logit distillation from a white-box teacher sharing the student's tokenizer.

Loss per answer token = alpha * cross-entropy(gold) + (1 - alpha) * T^2 * KL(teacher_k || student_k):
both distributions are softmaxes over the teacher's top-k token ids only (so only the teacher's top-k
logits are needed; the KL is zero when the student matches the teacher there, and is the full KL at k = vocab).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError
from ..core.runtime import set_threads
from ..core.training import run_training
from ..student.datasets import load_sft_samples
from ..student.model_folder import load_student
from .sft import SftConfig, finish, prompt_completion_dataset, sft_arguments, student_sft_trainer_class


@dataclass
class DistillationConfig(SftConfig):
    """The top-k distillation loss's fields (kd, decoder-prune-layers)."""

    top_k: int = 20
    alpha: float = 0.5  # weight of the cross-entropy term; 1 - alpha weighs the KL term
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        require_positive(self, "top_k", "temperature")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"config field 'alpha' must be in [0, 1], got {self.alpha}")
        # Inherited from sft but not part of the distillation loss: refused rather than silently ignored.
        for name in ("prompt_loss_weight", "input_noise"):
            if getattr(self, name):
                raise ConfigError(
                    f"config field '{name}' is an sft option that distillation does not apply; leave it at 0"
                )


@dataclass
class KdConfig(DistillationConfig):
    teacher: str = ""  # teacher model folder (e.g. a larger student trained first)

    def validate(self) -> None:
        super().validate()
        if not self.teacher:
            raise ConfigError("config field 'teacher' is required (a model folder)")


def topk_distillation_loss(student_logits, teacher_logits, labels, top_k: int, alpha: float, temperature: float):
    """Summed (not averaged) CE and top-k forward KL over the positions whose next token is labelled."""
    import torch
    import torch.nn.functional as F

    shifted_labels = labels[:, 1:]
    mask = shifted_labels != -100
    student = student_logits[:, :-1][mask].float()
    teacher = teacher_logits[:, :-1][mask].float()
    ce = F.cross_entropy(student, shifted_labels[mask], reduction="sum")
    k = min(top_k, teacher.shape[-1])
    teacher_top, teacher_index = (teacher / temperature).topk(k, dim=-1)
    teacher_logp = torch.log_softmax(teacher_top, dim=-1)
    student_logp = torch.log_softmax((student / temperature).gather(-1, teacher_index), dim=-1)
    kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum()
    total = alpha * ce + (1 - alpha) * temperature**2 * kl
    return total, ce.detach(), kl.detach(), mask.sum()


def distillation_trainer_class():
    class TopKDistillationTrainer(student_sft_trainer_class()):
        loss_is_scaled_for_ga = True  # compute_loss divides by the tokens of the whole accumulated batch

        def __init__(self, *args, teacher, top_k: int, alpha: float, temperature: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher = teacher.to(self.args.device).eval()
            self.teacher.requires_grad_(False)
            self.top_k, self.alpha, self.temperature = top_k, alpha, temperature

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch

            labels = inputs["labels"]
            model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
            model_inputs["use_cache"] = False
            outputs = model(**model_inputs)
            with torch.no_grad():
                teacher_logits = self.teacher(**model_inputs).logits
            vocab = min(outputs.logits.shape[-1], teacher_logits.shape[-1])
            total, ce, kl, tokens = topk_distillation_loss(
                outputs.logits[..., :vocab],
                teacher_logits[..., :vocab],
                labels,
                self.top_k,
                self.alpha,
                self.temperature,
            )
            if num_items_in_batch is None:
                num_items_in_batch = tokens * self.current_gradient_accumulation_steps
            loss = total / torch.as_tensor(num_items_in_batch, device=total.device).clamp(min=1)
            if model.training:
                count = max(int(tokens), 1)
                self._metrics["train"]["kd_ce"].append(ce.item() / count)
                self._metrics["train"]["kd_kl"].append(kl.item() / count)
            return (loss, outputs) if return_outputs else loss

    return TopKDistillationTrainer


def build_distillation_trainer(config: DistillationConfig, store: CheckpointStore, student, teacher_model, samples):
    """The top-k distillation trainer of `student` (a DecoderStudent) against a frozen teacher model on sft samples."""
    return distillation_trainer_class()(
        model=student.model,
        args=sft_arguments(config, store, student.template),
        train_dataset=prompt_completion_dataset(samples, student.template),
        processing_class=student.tokenizer,
        teacher=teacher_model,
        top_k=config.top_k,
        alpha=config.alpha,
        temperature=config.temperature,
        group_by_length=config.group_by_length,
        dropout=config.dropout,
    )


class KdRunner:
    def __init__(self, config: KdConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        set_threads(self.config.num_threads)
        samples, report = load_sft_samples(self.config.data)
        student = load_student(self.config.model)
        teacher = load_student(self.config.teacher, role="teacher")
        if teacher.tokenizer.get_vocab() != student.tokenizer.get_vocab():
            raise ConfigError("the teacher must share the student's tokenizer (same vocabulary) for logit distillation")
        store = CheckpointStore(self.context.run_dir, keep=self.config.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        trainer = build_distillation_trainer(self.config, store, student, teacher.model, samples)
        metrics = run_training(trainer, store, self.context.events, resume_from)
        metrics.update(
            {
                "top_k": self.config.top_k,
                "alpha": self.config.alpha,
                "temperature": self.config.temperature,
                "teacher_parameters": sum(p.numel() for p in teacher.model.parameters()),
            }
        )
        metrics.update(report.as_metrics("samples"))
        return finish(student, trainer.model, self.context, metrics)
