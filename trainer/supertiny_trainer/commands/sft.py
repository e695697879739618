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
from ..student.model_folder import DecoderStudent, load_student, parameter_count, save_student
from ..student.text_format import StudentTemplate


@dataclass
class SftConfig(TrainingConfig):
    data: str = ""  # sft.jsonl (OpenAI chat fine-tuning format with tools)
    # 0: loss on the answer tokens only. > 0: the utterance tokens also count, with this weight (an auxiliary
    # language-modelling signal for a student trained from scratch on little data).
    prompt_loss_weight: float = 0.0
    # Each utterance token is replaced by a random vocabulary token with this probability while training
    # (special tokens and the answer never): a regularizer for a small student trained from scratch for
    # many epochs, which otherwise learns its 10 k utterances by heart.
    input_noise: float = 0.0
    # Dropout while training (the saved model has none): on the token embeddings, on the output of every
    # attention and MLP block before it joins the residual stream, and on the attention probabilities.
    # Qwen2 has no hidden dropout of its own. On MASSIVE (12 epochs, the embedded-default student) 0.1 and 0.2
    # slowed fitting more than they regularized and lowered dev accuracy (BENCHMARKS.md), so it is off.
    dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"config field 'dropout' must be in [0, 1), got {self.dropout}")
        if not 0 <= self.input_noise < 1:
            raise ConfigError(f"config field 'input_noise' must be in [0, 1), got {self.input_noise}")
        if not self.data:
            raise ConfigError("config field 'data' is required (an sft.jsonl file)")
        if not 0 <= self.prompt_loss_weight <= 1:
            raise ConfigError(f"config field 'prompt_loss_weight' must be in [0, 1], got {self.prompt_loss_weight}")


def prompt_completion_dataset(samples: list[SftSample], template: StudentTemplate) -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": template.prompt(s.utterance), "completion": template.target(s.call)} for s in samples]
    )


def noisy_utterance_ids(
    ids: Any,
    attention_mask: Any,
    sep_id: int,
    special_ids: list[int],
    vocab_size: int,
    probability: float,
    generator: Any = None,
) -> Any:
    """A copy of `ids` in which each utterance token (before <|sep|>, not special, not padding) is replaced
    by a random non-special token with `probability`; the answer is never touched."""
    import torch

    in_prompt = (ids == sep_id).cumsum(-1) == 0
    replaceable = in_prompt & ~torch.isin(ids, torch.tensor(special_ids, device=ids.device))
    if attention_mask is not None:
        replaceable &= attention_mask.bool()
    hit = replaceable & (torch.rand(ids.shape, generator=generator, device=ids.device) < probability)
    random_ids = torch.randint(0, vocab_size, ids.shape, generator=generator, device=ids.device)
    # Random ids that happen to be special are left as the original token.
    random_ids = torch.where(torch.isin(random_ids, torch.tensor(special_ids, device=ids.device)), ids, random_ids)
    return torch.where(hit, random_ids, ids)


def add_training_dropout(model: Any, probability: float) -> list[Any]:
    """Dropout hooks on a decoder's embeddings and residual branches, active only in training mode, plus
    attention-probability dropout. Returns the hook handles; nothing is written into the model's config, so
    the saved and exported model is unchanged."""
    import torch.nn.functional as F

    if probability <= 0:
        return []
    decoder = model.get_decoder()
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise ConfigError(
            f"config field 'dropout' is not supported for {type(model).__name__} (no decoder layers found)"
        )

    def drop(module, args, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (F.dropout(output[0], probability, True), *output[1:])
        return F.dropout(output, probability, True)

    handles = [model.get_input_embeddings().register_forward_hook(drop)]
    for layer in layers:
        handles.append(layer.self_attn.register_forward_hook(drop))
        handles.append(layer.mlp.register_forward_hook(drop))
        if hasattr(layer.self_attn, "attention_dropout"):
            layer.self_attn.attention_dropout = probability
    return handles


def sft_arguments(
    config: TrainingConfig, store: CheckpointStore, template: StudentTemplate, prompt_loss_weight: float = 0.0
) -> Any:
    from trl import SFTConfig as TrlSFTConfig

    return training_arguments(
        TrlSFTConfig,
        config,
        store,
        max_length=config.max_length,
        completion_only_loss=prompt_loss_weight == 0,  # otherwise StudentSFTTrainer weighs the prompt tokens
        packing=False,
        eos_token=template.eos_token,
    )


def student_sft_trainer_class():
    """TRL's SFTTrainer with the resumable length-grouped sampler."""
    from trl import SFTTrainer

    class StudentSFTTrainer(LengthGroupedTrainerMixin, SFTTrainer):
        def __init__(
            self,
            *args,
            group_by_length: bool = True,
            prompt_loss_weight: float = 0.0,
            input_noise: float = 0.0,
            dropout: float = 0.0,
            **kwargs,
        ):
            self.group_by_length = group_by_length
            self.prompt_loss_weight = prompt_loss_weight
            self.input_noise = input_noise
            super().__init__(*args, **kwargs)
            self.answer_start_id = self.processing_class.convert_tokens_to_ids(StudentTemplate().prompt_suffix)
            self.special_ids = sorted(set(self.processing_class.all_special_ids))
            add_training_dropout(self.model, dropout)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.input_noise > 0 and model.training:
                ids = noisy_utterance_ids(
                    inputs["input_ids"],
                    inputs.get("attention_mask"),
                    self.answer_start_id,
                    self.special_ids,
                    model.get_input_embeddings().num_embeddings,
                    self.input_noise,
                )
                inputs = {**inputs, "input_ids": ids}
            if self.prompt_loss_weight == 0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            import torch
            import torch.nn.functional as F

            labels = inputs["labels"][:, 1:]
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
            logits = outputs.logits[:, :-1].float()
            per_token = F.cross_entropy(
                logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none"
            ).view_as(labels)
            # Position t predicts token t+1: from the <|sep|> position on, the predicted tokens are the answer.
            is_answer = (inputs["input_ids"] == self.answer_start_id).cumsum(-1)[:, :-1] > 0
            valid = labels != -100
            weights = torch.where(is_answer, 1.0, self.prompt_loss_weight) * valid
            answer_tokens = (is_answer & valid).sum().clamp(min=1)
            if num_items_in_batch is not None:  # Trainer then leaves gradient-accumulation scaling to the loss
                answer_tokens = answer_tokens * self.current_gradient_accumulation_steps
            loss = (per_token * weights).sum() / answer_tokens
            return (loss, outputs) if return_outputs else loss

    return StudentSFTTrainer


def finish(student: DecoderStudent, trained_model: Any, context: RunContext, metrics: dict[str, Any]) -> CommandResult:
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
            args=sft_arguments(self.config, store, student.template, self.config.prompt_loss_weight),
            train_dataset=prompt_completion_dataset(samples, student.template),
            processing_class=student.tokenizer,
            group_by_length=self.config.group_by_length,
            prompt_loss_weight=self.config.prompt_loss_weight,
            input_noise=self.config.input_noise,
            dropout=self.config.dropout,
        )
        metrics = run_training(trainer, store, self.context.events, resume_from)
        metrics.update(report.as_metrics("samples"))
        return finish(student, trainer.model, self.context, metrics)
