"""`decoder-qat`: trains a decoder student into the 4-bit grid that `quantize` will put it on (quantization-aware
distillation), so that its int4 graph keeps what the float model answers.

The student is a copy of the trained model whose every Linear (attention, MLP, LM head) computes with its weights
rounded as `quantize`'s int4 rounds them (blocks of `block_size` along the input, a zero point per block unless
`symmetric`) and whose embedding rows are rounded as its 4-bit Gather (symmetric blocks of `embedding_block_size`);
gradients pass straight through the rounding. It is trained as `kd` trains, the float model its frozen teacher:
per answer token alpha x cross-entropy against the accepted call + (1 - alpha) x T^2 x top-k forward KL. The saved
model holds float weights; `quantize` with `scheme` "int4" and the same block settings (the defaults of both
commands agree) rounds them to the weights the training saw. Checkpoints, resume, data order and progress events
are the shared core's, as in sft.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..core.checkpoints import CheckpointStore
from ..core.command import CommandResult, RunContext
from ..core.errors import ConfigError
from ..core.runtime import set_threads
from ..core.training import run_training
from ..student.datasets import load_sft_samples
from ..student.encoder import family_of
from ..student.fake_quant import add_fake_quantization
from ..student.model_folder import load_student
from .kd import DistillationConfig, build_distillation_trainer
from .sft import finish


@dataclass
class DecoderQatConfig(DistillationConfig):
    # `model`: a trained decoder student folder (sft's, grpo's or decoder-prune-vocab's output); also the teacher.
    epochs: float = 1.0
    learning_rate: float = 1e-4
    # The rounding `quantize` int4 will apply (its decoder defaults): MatMul blocks, zero points, embedding blocks.
    block_size: int = 32
    symmetric: bool = False
    embedding_block_size: int = 256

    def validate(self) -> None:
        super().validate()
        for name in ("block_size", "embedding_block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 16 or value & (value - 1):
                raise ConfigError(f"config field '{name}' must be a power of two >= 16, got {value!r}")
        if not isinstance(self.symmetric, bool):
            raise ConfigError(f"config field 'symmetric' must be true or false, got {self.symmetric!r}")


class DecoderQatRunner:
    def __init__(self, config: DecoderQatConfig, context: RunContext):
        self.config = config
        self.context = context

    def run(self) -> CommandResult:
        cfg = self.config
        set_threads(cfg.num_threads)
        samples, report = load_sft_samples(cfg.data)
        if family_of(Path(cfg.model)) == "encoder":
            raise ConfigError(
                f"model {cfg.model} is an encoder student: decoder-qat trains decoders (the encoder's int4 keeps its "
                "attention in int8 and is not trained into its grid)"
            )
        teacher = load_student(cfg.model, "model to train into the 4-bit grid")
        student = dataclasses.replace(teacher, model=copy.deepcopy(teacher.model))  # same tokenizer and template
        counts = add_fake_quantization(
            student.model,
            block_size=cfg.block_size,
            embedding_block_size=cfg.embedding_block_size,
            symmetric=cfg.symmetric,
        )
        store = CheckpointStore(self.context.run_dir, keep=cfg.keep_checkpoints)
        resume_from = store.prepare(self.context.resume)
        trainer = build_distillation_trainer(cfg, store, student, teacher.model, samples)
        metrics = run_training(trainer, store, self.context.events, resume_from)
        metrics.update(
            {
                **counts,
                "qat_bits": 4,
                "block_size": cfg.block_size,
                "symmetric": cfg.symmetric,
                "embedding_block_size": cfg.embedding_block_size,
                "top_k": cfg.top_k,
                "alpha": cfg.alpha,
                "temperature": cfg.temperature,
            }
        )
        metrics.update(report.as_metrics("samples"))
        return finish(student, trainer.model, self.context, metrics)
