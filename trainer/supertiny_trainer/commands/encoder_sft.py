"""`encoder-sft`: fine-tunes a BERT encoder with an intent head and a BIO tag head on sft.jsonl.

Targets are soft when the rows carry the teacher's `votes`: the intent target is the vote shares per
function, the tag target per token is the share-weighted mixture of the voted calls' BIO tags, and each
value head's target (enum, boolean, small integer range: ENCODER_FORMAT.md) is the share-weighted mixture of
the voted calls' values for it, over the calls of its function (so its loss weighs by that function's share). The heads
learn at `head_learning_rate` (about 10x the encoder's: with one rate the slot head lags far behind).
Checkpoints, resume, data order and events are the shared core's (transformers Trainer + run_training).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.config import choice
from ..core.errors import ConfigError, DataError
from ..core.runtime import set_threads
from ..core.training import SCHEDULERS, LengthGroupedEpochSampler, TrainingConfig, run_training, training_arguments
from ..student.encoder import (
    POOLINGS,
    EncoderLabels,
    build_encoder_student,
    load_bert,
    load_encoder_tokenizer,
    save_encoder_student,
    warm_start_heads,
)
from ..student.encoder_data import (
    EncodedExample,
    EncoderDataReport,
    check_number_spans,
    description_schema,
    encode_examples,
    encoder_examples,
    load_tools_file,
    number_slots,
    read_encoder_rows,
    repeated_slots,
    require_encoder_schema,
    span_slots,
    value_heads,
)
from ..student.task_description import TaskDescription


@dataclass
class EncoderSftConfig(TrainingConfig):
    # `model`: a BERT-architecture folder (config.json, model.safetensors, tokenizer.json), e.g. encoder-convert's.
    data: str = ""  # sft.jsonl (OpenAI chat fine-tuning rows with tools, optionally votes)
    tools: str | None = None  # JSON list of OpenAI tool definitions; default: the union of the rows' `tools`
    # The task description (tasks/task-description.ts writes it): its argument kinds replace the tools' and the rows'.
    task: str | None = None
    epochs: float = 7.0
    batch_size: int = 32
    learning_rate: float = 1.5e-4  # the encoder's
    head_learning_rate: float = 1.5e-3  # the intent and tag heads'
    lr_scheduler: str = choice("linear", SCHEDULERS)
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01  # encoder weights only (not biases, LayerNorm or heads)
    max_length: int = 64  # tokens including [CLS] and [SEP]
    pooling: str = choice(
        "mean", POOLINGS
    )  # intent head input: "mean" (masked mean, MiniLM's pretraining pooling) or "cls"
    vote_weight: float = 1.0  # share of the target taken from the votes (0: the accepted call only)
    tag_loss_weight: float = 1.0  # tag loss (mean over word tokens) weight next to the intent loss
    value_loss_weight: float = 1.0  # value heads' loss (summed over the heads) weight next to the intent loss
    # Keep the word-embedding matrix fixed: on MASSIVE the same accuracy as training it, in about half the
    # time per epoch (BENCHMARKS.md), and words unseen in training keep their pretrained vectors.
    freeze_word_embeddings: bool = True

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("config field 'data' is required (an sft.jsonl file)")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"config field 'pooling' must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if not 0 <= self.vote_weight <= 1:
            raise ConfigError(f"config field 'vote_weight' must be in [0, 1], got {self.vote_weight}")
        if self.head_learning_rate <= 0:
            raise ConfigError(f"config field 'head_learning_rate' must be > 0, got {self.head_learning_rate}")
        if self.tag_loss_weight < 0:
            raise ConfigError(f"config field 'tag_loss_weight' must be >= 0, got {self.tag_loss_weight}")
        if self.value_loss_weight < 0:
            raise ConfigError(f"config field 'value_loss_weight' must be >= 0, got {self.value_loss_weight}")
        if self.max_length < 3:
            raise ConfigError(f"config field 'max_length' must be >= 3 ([CLS], a token, [SEP]), got {self.max_length}")


class EncoderCollator:
    """Pads a batch and builds the soft targets: [B, intents] and [B, seq, tags] plus the word-token mask
    (and [B, values] with value heads)."""

    def __init__(self, num_intents: int, num_tags: int, pad_id: int, num_values: int = 0):
        self.num_intents, self.num_tags, self.pad_id, self.num_values = num_intents, num_tags, pad_id, num_values

    def __call__(self, batch: list[EncodedExample]) -> dict[str, Any]:
        import torch

        length = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), length), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(batch), length), dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        intents = torch.zeros((len(batch), self.num_intents))
        tags = torch.zeros((len(batch), length, self.num_tags))
        word = torch.zeros((len(batch), length), dtype=torch.bool)
        for row, example in enumerate(batch):
            n = len(example.input_ids)
            ids[row, :n] = torch.tensor(example.input_ids)
            types[row, :n] = torch.tensor(example.token_type_ids)
            mask[row, :n] = 1
            for intent, weight in example.intent_targets:
                intents[row, intent] += weight
            for tag_ids, weight in example.tag_targets:
                tag_tensor = torch.tensor(tag_ids)
                positions = (tag_tensor >= 0).nonzero().squeeze(-1)
                tags[row, positions, tag_tensor[positions]] += weight
            word[row, :n] = torch.tensor(example.tag_targets[0][0]) >= 0
        collated = {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": types,
            "intent_targets": intents,
            "tag_targets": tags,
            "word_mask": word,
        }
        if self.num_values:
            values = torch.zeros((len(batch), self.num_values))
            for row, example in enumerate(batch):
                for column, weight in example.value_targets:
                    values[row, column] += weight
            collated["value_targets"] = values
        return collated


def parameter_groups(model: Any, learning_rate: float, head_learning_rate: float, weight_decay: float) -> list[dict]:
    """Encoder weights with decay, encoder biases/LayerNorm without, heads at their own rate without decay."""
    decay, no_decay, heads = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if not name.startswith("bert."):
            heads.append(parameter)
        elif name.endswith(".bias") or "LayerNorm" in name:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": decay, "lr": learning_rate, "weight_decay": weight_decay},
        {"params": no_decay, "lr": learning_rate, "weight_decay": 0.0},
        {"params": heads, "lr": head_learning_rate, "weight_decay": 0.0},
    ]


def value_log_probs(value_logits: Any, slices: list[tuple[int, int]]) -> Any:
    """Log-softmax within each value head's slice of the concatenated value logits."""
    import torch
    import torch.nn.functional as F

    return torch.cat([F.log_softmax(value_logits[:, a:b].float(), -1) for a, b in slices], -1)


def encoder_trainer_class():
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class EncoderTrainer(Trainer):
        def __init__(
            self,
            *args,
            lengths: list[int],
            group_by_length: bool,
            head_learning_rate: float,
            tag_loss_weight: float,
            value_slices: list[tuple[int, int]] | None = None,
            value_loss_weight: float = 1.0,
            **kwargs,
        ):
            self.lengths = lengths if group_by_length else [0] * len(lengths)
            self.head_learning_rate = head_learning_rate
            self.tag_loss_weight = tag_loss_weight
            self.value_slices = value_slices or []
            self.value_loss_weight = value_loss_weight
            self.component_sums = Counter()
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            # A function of (seed, epoch) only, which is what makes --resume replay the same order.
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return LengthGroupedEpochSampler(self.lengths, batch, seed=self.args.data_seed or self.args.seed)

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                groups = parameter_groups(
                    self.model, self.args.learning_rate, self.head_learning_rate, self.args.weight_decay
                )
                self.optimizer = torch.optim.AdamW(
                    groups,
                    lr=self.args.learning_rate,
                    betas=(self.args.adam_beta1, self.args.adam_beta2),
                    eps=self.args.adam_epsilon,
                )
            return self.optimizer

        def value_loss(self, value_logits, targets):
            """Cross-entropy of each value head against its soft target, summed over heads, mean over rows."""
            return -(targets * value_log_probs(value_logits, self.value_slices)).sum(-1).mean()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
            intent_logits, tag_logits = outputs[0], outputs[1]
            intent_loss = -(inputs["intent_targets"] * F.log_softmax(intent_logits.float(), -1)).sum(-1).mean()
            per_token = -(inputs["tag_targets"] * F.log_softmax(tag_logits.float(), -1)).sum(-1)
            tag_loss = per_token[inputs["word_mask"]].mean()
            loss = intent_loss + self.tag_loss_weight * tag_loss
            self.component_sums.update({"intent": intent_loss.item(), "tags": tag_loss.item(), "n": 1})
            if len(outputs) > 2:
                value_loss = self.value_loss(outputs[2], inputs["value_targets"])
                loss = loss + self.value_loss_weight * value_loss
                self.component_sums.update({"values": value_loss.item()})
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            if "loss" in logs and self.component_sums["n"]:
                n = self.component_sums["n"]
                logs = {
                    **logs,
                    "loss/intent": round(self.component_sums["intent"] / n, 4),
                    "loss/tags": round(self.component_sums["tags"] / n, 4),
                }
                if self.value_slices:
                    logs["loss/values"] = round(self.component_sums["values"] / n, 4)
                self.component_sums.clear()
            return super().log(logs, *args, **kwargs)

    return EncoderTrainer


class ListDataset:
    """A map-style dataset over encoded examples (the collator does the tensors)."""

    def __init__(self, items: list[EncodedExample]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> EncodedExample:
        return self.items[index]


def build_encoder_trainer(
    trainer_class: Any,
    model: Any,
    cfg: Any,
    store: CheckpointStore,
    encoded: list[EncodedExample],
    labels: EncoderLabels,
    pad_id: int | None,
    **extra: Any,
) -> Any:
    """The Trainer of an encoder command: its data, collator, length grouping and head learning rate."""
    return trainer_class(
        model=model,
        args=training_arguments(_trainer_arguments_class(), cfg, store),
        train_dataset=ListDataset(encoded),
        data_collator=EncoderCollator(
            len(labels.intents), len(labels.tags), 0 if pad_id is None else pad_id, labels.num_values
        ),
        lengths=[len(e.input_ids) for e in encoded],
        group_by_length=cfg.group_by_length,
        head_learning_rate=cfg.head_learning_rate,
        tag_loss_weight=cfg.tag_loss_weight,
        value_slices=labels.value_slices(),
        value_loss_weight=cfg.value_loss_weight,
        **extra,
    )


class EncoderSftRunner:
    def __init__(self, config: EncoderSftConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        import torch

        cfg = self.config
        set_threads(cfg.num_threads)
        report = EncoderDataReport()
        rows, row_schema = read_encoder_rows(cfg.data, report)
        if cfg.task:
            described = description_schema(TaskDescription.load(cfg.task))
            require_encoder_schema(described, f"task description {cfg.task}")
            # The kinds are the description's; the functions learned stay those the rows offered the teacher.
            schema = (
                {name: specs for name, specs in described.items() if name in row_schema} if row_schema else described
            )
        else:
            schema = load_tools_file(cfg.tools) if cfg.tools else row_schema
        if not schema:
            raise DataError(
                f"sft dataset {cfg.data}: no tool definitions in the rows' 'tools'; the encoder student "
                "needs the functions and their parameters (or set config field 'task')"
            )
        require_encoder_schema(
            schema,
            f"task description {cfg.task}"
            if cfg.task
            else f"tools file {cfg.tools}"
            if cfg.tools
            else f"sft dataset {cfg.data}",
        )
        check_number_spans(rows, schema)
        examples = encoder_examples(rows, schema, cfg.vote_weight, report)
        labels = EncoderLabels.from_schema(span_slots(schema), cfg.max_length, cfg.pooling)
        labels.set_value_heads(value_heads(schema))
        labels.number_slots = number_slots(schema)
        labels.intent_repeatable = {
            name: kept
            for name, slots in repeated_slots(examples).items()
            if (kept := [s for s in slots if s in labels.intent_slots.get(name, [])])
        }
        bert = load_bert(cfg.model)
        tokenizer = load_encoder_tokenizer(cfg.model, cfg.max_length)
        counts: Counter = Counter()
        encoded = encode_examples(examples, tokenizer, labels, counts)
        # Spans of whole words in every training call: decoding may then tie each word's tokens together.
        labels.word_spans = counts["spans_located"] > 0 and counts["spans_inside_words"] == 0
        if bert.config.vocab_size < tokenizer.get_vocab_size():
            raise ConfigError(
                f"model folder {cfg.model}: tokenizer.json has {tokenizer.get_vocab_size()} tokens but "
                f"the model's vocab_size is {bert.config.vocab_size}"
            )
        torch.manual_seed(cfg.seed)  # the heads' initial weights
        model = build_encoder_student(bert, labels)
        # A trained student as `model` (a refresh) keeps its heads for the intents and tags it already knows.
        warm = warm_start_heads(model, labels, cfg.model)
        if cfg.freeze_word_embeddings:
            model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
        pad_id = tokenizer.token_to_id("[PAD]")
        store = CheckpointStore(self.context.run_dir, keep=cfg.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        trainer = build_encoder_trainer(encoder_trainer_class(), model, cfg, store, encoded, labels, pad_id)
        metrics = run_training(trainer, store, self.context.events, resume_from)
        destination = self.context.run_dir / "model"
        save_encoder_student(trainer.model, tokenizer, labels, destination)
        metrics.update(report.as_metrics("samples"))
        metrics.update(
            {
                "slot_values_not_found": counts["slot_values_not_found"],
                "slot_values_truncated": counts["slot_values_truncated"],
                "spans_inside_words": counts["spans_inside_words"],
                "word_spans": int(labels.word_spans),
                "intents": len(labels.intents),
                "tags": len(labels.tags),
                **({"value_heads": len(labels.value_heads)} if labels.value_heads else {}),
                **({f"warm_start_{k}": v for k, v in warm.items()} if warm is not None else {}),
                "parameters": sum(p.numel() for p in model.parameters()),
                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                # only for an uninterrupted run: a resumed session trained part of the epochs
                "seconds_per_epoch": round(metrics["train_runtime_s"] / metrics["epochs"], 2)
                if resume_from is None and metrics["epochs"]
                else None,
            }
        )
        return CommandResult(metrics=metrics, outputs={"model": str(destination)})


def _trainer_arguments_class():
    from transformers import TrainingArguments

    return TrainingArguments
