"""`sft`: rejection-sampling fine-tuning on accepted samples (sft.jsonl), loss on the answer tokens only.

TRL's SFTTrainer on prompt/completion pairs: prompt = template prompt, completion = compact call + eos,
with `completion_only_loss` so the utterance is context, not a target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.errors import ConfigError
from ..core.runtime import set_threads
from ..core.training import LengthGroupedTrainerMixin, TrainingConfig, run_training, training_arguments
from ..student.datasets import SftSample, load_sft_samples
from ..student.model_folder import StudentModel, load_student, parameter_count, save_student
from ..student.text_format import StudentTemplate


@dataclass
class SftConfig(TrainingConfig):
    data: str = ""  # sft.jsonl (OpenAI chat fine-tuning format with tools)

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("config field 'data' is required (an sft.jsonl file)")


def prompt_completion_dataset(samples: list[SftSample], template: StudentTemplate) -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": template.prompt(s.utterance), "completion": template.target(s.call)} for s in samples]
    )


def sft_arguments(config: TrainingConfig, store: CheckpointStore, template: StudentTemplate) -> Any:
    from trl import SFTConfig as TrlSFTConfig

    return training_arguments(
        TrlSFTConfig,
        config,
        store,
        max_length=config.max_length,
        completion_only_loss=True,
        packing=False,
        eos_token=template.eos_token,
    )


def student_sft_trainer_class():
    """TRL's SFTTrainer with the resumable length-grouped sampler."""
    from trl import SFTTrainer

    class StudentSFTTrainer(LengthGroupedTrainerMixin, SFTTrainer):
        def __init__(self, *args, group_by_length: bool = True, **kwargs):
            self.group_by_length = group_by_length
            super().__init__(*args, **kwargs)

    return StudentSFTTrainer


def finish(student: StudentModel, trained_model: Any, context: RunContext, metrics: dict[str, Any]) -> CommandResult:
    destination = context.run_dir / "model"
    save_student(trained_model, student.tokenizer, student.template, destination)
    metrics["parameters"] = parameter_count(trained_model)
    return CommandResult(metrics=metrics, outputs={"model": str(destination)})


class SftRunner:
    def __init__(self, config: SftConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        set_threads(self.config.num_threads)
        samples, report = load_sft_samples(self.config.data)
        student = load_student(self.config.model)
        store = CheckpointStore(self.context.run_dir, keep=self.config.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        trainer = student_sft_trainer_class()(
            model=student.model,
            args=sft_arguments(self.config, store, student.template),
            train_dataset=prompt_completion_dataset(samples, student.template),
            processing_class=student.tokenizer,
            group_by_length=self.config.group_by_length,
        )
        metrics = run_training(trainer, store, self.context.events, resume_from)
        metrics.update(report.as_metrics("samples"))
        return finish(student, trainer.model, self.context, metrics)
