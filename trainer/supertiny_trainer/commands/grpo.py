"""`grpo`: reinforcement learning with a verifiable reward (TRL GRPOTrainer) for the decoder student.

Prompts are the accepted training inputs (sft.jsonl), in the sft template. For each prompt the student
samples `num_generations` calls; each is scored by the task alone (student/task_reward.py: the verifier plus
agreement with the teacher's accepted call), and the group-relative advantages weight the policy gradient,
with a KL penalty (`beta`) to the frozen starting model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.config import require_positive
from ..core.errors import ConfigError
from ..core.runtime import set_threads
from ..core.training import TrainingConfig, run_training, training_arguments
from ..student.datasets import load_sft_samples, load_sft_tools
from ..student.model_folder import load_student
from ..student.task_description import TaskDescription
from ..student.task_reward import TaskReward
from .sft import finish


@dataclass
class GrpoConfig(TrainingConfig):
    data: str = ""  # sft.jsonl: the prompts and the teacher's accepted calls
    # The task description (tasks/task-description.ts writes it); unset: the functions come from the rows' tools.
    task: str | None = None
    # TRL counts the batch in completions: batch_size / num_generations prompts per step.
    batch_size: int = 32
    num_generations: int = 8
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_completion_length: int = 48  # tokens; a MASSIVE call takes about 6
    temperature: float = 1.0
    beta: float = 0.04  # KL penalty to the starting model (0 would also drop the KL metric)
    epsilon: float = 0.2  # PPO-style clipping of the probability ratio
    verifier_weight: float = 0.25  # reward = verifier_weight * verifier + (1 - verifier_weight) * agreement
    intent_credit: float = 0.5  # agreement of a call to the teacher's function with no argument in common

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("config field 'data' is required (an sft.jsonl file)")
        require_positive(self, "max_completion_length", "temperature")
        if self.num_generations < 2:
            raise ConfigError(
                f"config field 'num_generations' must be at least 2 (advantages are relative to the group), "
                f"got {self.num_generations}"
            )
        if self.batch_size % self.num_generations:
            raise ConfigError(
                f"config field 'batch_size' ({self.batch_size}) must be a multiple of "
                f"'num_generations' ({self.num_generations})"
            )
        if self.beta < 0:
            raise ConfigError(f"config field 'beta' must be >= 0, got {self.beta}")
        for name in ("verifier_weight", "intent_credit"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"config field '{name}' must be in [0, 1], got {getattr(self, name)}")


def reward_functions(reward: TaskReward) -> list[Any]:
    """The verifier and agreement rewards as TRL reward functions; they log the shares as progress metrics."""

    def verifier(completions, utterance, teacher_call, log_metric=None, **_):
        reviews = [reward.review(c, u, t) for c, u, t in zip(completions, utterance, teacher_call, strict=True)]
        if log_metric is not None:
            log_metric("valid_share", sum(r.schema_valid for r in reviews) / len(reviews))
            log_metric("verified_share", sum(r.verified for r in reviews) / len(reviews))
            log_metric("exact_share", sum(r.exact for r in reviews) / len(reviews))
        return [float(r.verified) for r in reviews]

    def agreement(completions, utterance, teacher_call, **_):
        return [reward.review(c, u, t).agreement for c, u, t in zip(completions, utterance, teacher_call, strict=True)]

    return [verifier, agreement]


def epoch_seeded_repeat_sampler_class():
    """TRL's RepeatSampler with an order that is a function of (seed, epoch) only."""
    from trl.trainer.utils import RepeatSampler

    class EpochSeededRepeatSampler(RepeatSampler):
        # TRL's sampler advances one generator across epochs; a resumed run starts it afresh, so the order of
        # any epoch after the first would differ from the uninterrupted run. Reseeding per epoch fixes that.
        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            self.generator.manual_seed(self.seed * 1_000_003 + getattr(self, "epoch", 0))
            return super().__iter__()

    return EpochSeededRepeatSampler


def student_grpo_trainer_class():
    """TRL's GRPOTrainer with a sample order that is a function of (seed, epoch) only, for exact resume."""
    from trl import GRPOTrainer

    EpochSeededRepeatSampler = epoch_seeded_repeat_sampler_class()

    class StudentGRPOTrainer(GRPOTrainer):
        def _get_train_sampler(self, dataset=None):
            dataset = dataset if dataset is not None else self.train_dataset
            return EpochSeededRepeatSampler(
                data_source=dataset,
                mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=self.num_iterations * self.args.steps_per_generation,
                shuffle=self.shuffle_dataset,
                seed=self.args.seed,
            )

    return StudentGRPOTrainer


class GrpoRunner:
    def __init__(self, config: GrpoConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        from datasets import Dataset
        from trl import GRPOConfig as TrlGRPOConfig

        c = self.config
        set_threads(c.num_threads)
        samples, report = load_sft_samples(c.data)
        description = (
            TaskDescription.load(c.task) if c.task else TaskDescription.from_tools(load_sft_tools(c.data), c.data)
        )
        reward = TaskReward(description, intent_credit=c.intent_credit)
        student = load_student(c.model)
        template = student.template
        dataset = Dataset.from_list(
            [
                {"prompt": template.prompt(s.utterance), "utterance": s.utterance, "teacher_call": s.call}
                for s in samples
            ]
        )
        store = CheckpointStore(self.context.run_dir, keep=c.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        args = training_arguments(
            TrlGRPOConfig,
            c,
            store,
            num_generations=c.num_generations,
            max_completion_length=c.max_completion_length,
            temperature=c.temperature,
            beta=c.beta,
            epsilon=c.epsilon,
            reward_weights=[c.verifier_weight, 1 - c.verifier_weight],
            include_num_input_tokens_seen="no",  # GRPO counts prompt + completion tokens itself
            log_completions=False,
        )
        trainer = student_grpo_trainer_class()(
            model=student.model,
            reward_funcs=reward_functions(reward),
            args=args,
            train_dataset=dataset,
            processing_class=student.tokenizer,
        )
        metrics = run_training(trainer, store, self.context.events, resume_from)
        history = [h for h in trainer.state.log_history if "reward" in h]
        metrics.update(
            {
                "beta": c.beta,
                "num_generations": c.num_generations,
                "task_reward_source": description.source,
                "task_functions": len(description.functions),
                "final_reward": history[-1]["reward"] if history else None,
                "final_valid_share": history[-1].get("valid_share") if history else None,
                "final_kl": history[-1].get("kl") if history else None,
            }
        )
        metrics.update(report.as_metrics("samples"))
        return finish(student, trainer.model, self.context, metrics)
