"""`dpo`: direct preference optimization on preference pairs against a frozen reference model (TRL DPOTrainer)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError
from ..core.runtime import set_threads
from ..core.training import TrainingConfig, run_training, training_arguments
from ..student.datasets import load_preference_pairs
from ..student.model_folder import load_student
from .sft import finish


@dataclass
class DpoConfig(TrainingConfig):
    data: str = ""  # preferences.jsonl (OpenAI preference fine-tuning format)
    ref_model: str | None = None  # frozen reference; defaults to the starting model
    beta: float = 0.1
    learning_rate: float = 1e-4
    epochs: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("config field 'data' is required (a preferences.jsonl file)")
        require_positive(self, "beta")


class DpoRunner:
    def __init__(self, config: DpoConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        from datasets import Dataset
        from trl import DPOConfig as TrlDPOConfig
        from trl import DPOTrainer

        set_threads(self.config.num_threads)
        pairs, report = load_preference_pairs(self.config.data)
        student = load_student(self.config.model)
        reference = load_student(self.config.ref_model or self.config.model, role="reference model")
        if reference.tokenizer.get_vocab() != student.tokenizer.get_vocab():
            raise ConfigError("ref_model must share the student's tokenizer")
        template = student.template
        dataset = Dataset.from_list(
            [
                {
                    "prompt": template.prompt(p.utterance),
                    "chosen": template.target(p.chosen_call),
                    "rejected": template.target(p.rejected_call),
                }
                for p in pairs
            ]
        )
        store = CheckpointStore(self.context.run_dir, keep=self.config.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        args = training_arguments(
            TrlDPOConfig, self.config, store, beta=self.config.beta, max_length=self.config.max_length
        )
        trainer = DPOTrainer(
            model=student.model,
            ref_model=reference.model,
            args=args,
            train_dataset=dataset,
            processing_class=student.tokenizer,
        )
        metrics = run_training(trainer, store, self.context.events, resume_from)
        metrics["beta"] = self.config.beta
        metrics.update(report.as_metrics("pairs"))
        return finish(student, trainer.model, self.context, metrics)
