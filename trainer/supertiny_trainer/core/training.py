"""What every training command shares: the common config fields, TrainingArguments, events and resume.

Each training command (sft, dpo, kd) builds a transformers/TRL trainer; `run_training` adds the event
callback, points the trainer's checkpoints at the atomic staging area and resumes from the newest
published checkpoint, which restores weights, optimizer, scheduler, RNG states, step and data position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from .checkpoints import CheckpointStore
from .config import choice, require_positive
from .errors import ConfigError
from .events import EventReporter
from .runtime import peak_memory

SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
# grpo's reward statistics in progress events: mean reward, schema-valid share, KL to the reference, ...
GRPO_PROGRESS = (
    "reward",
    "reward_std",
    "frac_reward_zero_std",  # groups whose samples all scored the same: no gradient from them
    "kl",
    "valid_share",
    "verified_share",
    "exact_share",
    "entropy",
    "completions/mean_length",
)


@dataclass
class TrainingConfig:
    """Fields shared by every training command (TRL style: command configs extend this)."""

    model: str = ""  # model folder to start from (output of `init` or a previous training command)
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    lr_scheduler: str = choice("cosine", SCHEDULERS)
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 128  # tokens; longer samples are truncated
    seed: int = 0
    logging_steps: int = 10
    save_steps: int = 200
    keep_checkpoints: int = 2
    group_by_length: bool = True  # batches of similar length: about half the padding compute on short samples
    bf16: bool = False  # mixed precision on GPUs that support it
    num_threads: int | None = None  # CPU threads for torch; default min(cores, 8)

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("config field 'model' is required (a model folder)")
        require_positive(
            self,
            "epochs",
            "max_steps",
            "batch_size",
            "gradient_accumulation_steps",
            "learning_rate",
            "max_length",
            "logging_steps",
            "save_steps",
            "keep_checkpoints",
            "num_threads",
        )
        if self.lr_scheduler not in SCHEDULERS:
            raise ConfigError(
                f"config field 'lr_scheduler' must be one of {list(SCHEDULERS)}, got {self.lr_scheduler!r}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"config field 'warmup_ratio' must be in [0, 1), got {self.warmup_ratio}")


def training_arguments(args_class: type, config: TrainingConfig, store: CheckpointStore, **extra: Any) -> Any:
    """TrainingArguments (or a TRL subclass) with checkpoints going to the staging area."""
    import torch

    use_bf16 = bool(config.bf16 and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    arguments = dict(
        output_dir=str(store.staging),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps else -1,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=None,  # rotation happens in CheckpointStore, after publishing
        report_to=[],
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        gradient_checkpointing=False,
        bf16=use_bf16,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
    )
    return args_class(**{**arguments, **extra})  # a command may override a shared default (grpo counts its own tokens)


class LengthGroupedEpochSampler:
    """Sample order with batches of similar length, a function of (seed, epoch) only.

    Depending on nothing but the seed and the epoch (not the global RNG) is what lets a resumed run replay
    the interrupted epoch's order exactly. Full batches come in random order; the one partial batch is last.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, megabatch_batches: int = 64):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.megabatch = batch_size * megabatch_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        grouped = []
        for start in range(0, len(order), self.megabatch):
            grouped += sorted(order[start : start + self.megabatch], key=lambda i: self.lengths[i], reverse=True)
        batches = [grouped[i : i + self.batch_size] for i in range(0, len(grouped), self.batch_size)]
        partial = batches.pop() if len(batches[-1]) < self.batch_size else None
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        if partial:
            shuffled.append(partial)
        return iter([i for batch in shuffled for i in batch])


class LengthGroupedTrainerMixin:
    """Mixed into a (TRL) Trainer: uses LengthGroupedEpochSampler when the config asks for it."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not getattr(self, "group_by_length", False) or "input_ids" not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        lengths = [len(ids) for ids in dataset["input_ids"]]
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedEpochSampler(lengths, batch, seed=self.args.data_seed or self.args.seed)


class EventCallback(TrainerCallback):
    """Turns trainer logs into `progress` events and saved checkpoints into published `checkpoint` events."""

    def __init__(self, events: EventReporter, store: CheckpointStore):
        self.events = events
        self.store = store
        self.session_start = time.monotonic()
        self.session_tokens_start = 0
        self._last_time = self.session_start
        self._last_tokens = 0
        self.last_loss: float | None = None
        self.losses: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        now = time.monotonic()
        self.session_start = self._last_time = now
        self.session_tokens_start = self._last_tokens = state.num_input_tokens_seen

    def session_tokens_per_s(self, state) -> float:
        elapsed = max(time.monotonic() - self.session_start, 1e-9)
        return (state.num_input_tokens_seen - self.session_tokens_start) / elapsed

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        now = time.monotonic()
        tokens = state.num_input_tokens_seen
        tokens_per_s = (tokens - self._last_tokens) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_tokens = now, tokens
        self.last_loss = float(logs["loss"])
        self.losses.append(self.last_loss)
        extra = {k: logs[k] for k in ("learning_rate", "grad_norm", "epoch", "mean_token_accuracy") if k in logs}
        extra.update(
            {k: v for k, v in logs.items() if k.startswith(("rewards/", "kd_", "loss/")) or k in GRPO_PROGRESS}
        )
        self.events.progress(
            step=state.global_step,
            total=state.max_steps,
            loss=self.last_loss,
            tokens_per_s=round(tokens_per_s, 1),
            tokens_seen=tokens,
            **extra,
            **peak_memory(),
        )

    def on_save(self, args, state, control, **kwargs):
        staged = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if staged.is_dir():
            published = self.store.publish(staged)
            self.events.checkpoint(step=state.global_step, path=str(published))


def run_training(
    trainer: Trainer, store: CheckpointStore, events: EventReporter, resume_from: Path | None
) -> dict[str, Any]:
    """Train (resuming when a checkpoint is given) and return the metrics for the done event."""
    callback = EventCallback(events, store)
    trainer.add_callback(callback)
    if resume_from is not None:
        print(f"[supertiny] resuming from {resume_from}", flush=True)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    session_s = time.monotonic() - callback.session_start
    return {
        "steps": state.global_step,
        "total_steps": state.max_steps,
        "epochs": round(float(state.epoch or 0), 4),
        "train_loss": result.training_loss,  # mean over this session's steps
        "final_loss": callback.last_loss,
        "tokens_seen": state.num_input_tokens_seen,
        "tokens_per_s": round(callback.session_tokens_per_s(state), 1),
        "train_runtime_s": round(session_s, 2),
        "resumed_from_step": int(resume_from.name.split("-")[-1]) if resume_from else None,
        **peak_memory(),
    }
