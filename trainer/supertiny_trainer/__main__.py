"""CLI entry point: `python -m supertiny_trainer <command> --config cfg.json --run-dir DIR [--resume]`."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from .core.events import EventReporter, isolate_stdout

# command -> (module, config class, runner class); modules import lazily so `tokenizer` never loads torch
COMMANDS = {
    "tokenizer": ("supertiny_trainer.commands.tokenizer", "TokenizerConfig", "TokenizerTrainer"),
    "init": ("supertiny_trainer.commands.init", "InitConfig", "ModelInitializer"),
    "sft": ("supertiny_trainer.commands.sft", "SftConfig", "SftRunner"),
    "dpo": ("supertiny_trainer.commands.dpo", "DpoConfig", "DpoRunner"),
    "kd": ("supertiny_trainer.commands.kd", "KdConfig", "KdRunner"),
    "grpo": ("supertiny_trainer.commands.grpo", "GrpoConfig", "GrpoRunner"),
    "predict": ("supertiny_trainer.commands.predict", "PredictConfig", "Predictor"),
    "export": ("supertiny_trainer.commands.export", "ExportConfig", "OnnxExporter"),
    "quantize": ("supertiny_trainer.commands.quantize", "QuantizeConfig", "Quantizer"),
    "decoder-convert": ("supertiny_trainer.commands.decoder_convert", "DecoderConvertConfig", "GgufLlamaConverter"),
    "decoder-prune-vocab": (
        "supertiny_trainer.commands.decoder_prune_vocab",
        "DecoderPruneVocabConfig",
        "DecoderVocabPruner",
    ),
    "decoder-prune-layers": (
        "supertiny_trainer.commands.decoder_prune_layers",
        "DecoderPruneLayersConfig",
        "DecoderLayerPruner",
    ),
    "decoder-qat": ("supertiny_trainer.commands.decoder_qat", "DecoderQatConfig", "DecoderQatRunner"),
    "encoder-convert": ("supertiny_trainer.commands.encoder_convert", "EncoderConvertConfig", "OnnxBertConverter"),
    "encoder-sft": ("supertiny_trainer.commands.encoder_sft", "EncoderSftConfig", "EncoderSftRunner"),
    "encoder-prune-vocab": (
        "supertiny_trainer.commands.encoder_prune_vocab",
        "EncoderPruneVocabConfig",
        "EncoderVocabPruner",
    ),
    "encoder-prune-layers": (
        "supertiny_trainer.commands.encoder_prune_layers",
        "EncoderPruneLayersConfig",
        "EncoderLayerPruner",
    ),
}

# Commands whose model folder may hold either student family: COMMANDS names the decoder's runner, and a folder
# whose supertiny.json says "encoder" runs this one instead (same config class). The choice is made here, once,
# so that neither family's command module imports the other's.
ENCODER_RUNNERS = {
    "predict": ("supertiny_trainer.commands.encoder_predict", "EncoderPredictor"),
    "export": ("supertiny_trainer.commands.encoder_export", "EncoderOnnxExporter"),
    "quantize": ("supertiny_trainer.commands.encoder_quantize", "EncoderQuantizer"),
}


def runner_class(command: str, config: Any) -> type:
    """The runner of `command` for the config's model folder (a model.onnx file stands for its folder)."""
    module_name, _, runner_name = COMMANDS[command]
    if command in ENCODER_RUNNERS:
        from .student.encoder import family_of

        model = Path(config.model)
        if family_of(model.parent if model.suffix == ".onnx" else model) == "encoder":
            module_name, runner_name = ENCODER_RUNNERS[command]
    return getattr(importlib.import_module(module_name), runner_name)


def _is_out_of_memory(error: BaseException) -> bool:
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ == "OutOfMemoryError"
        or (isinstance(error, RuntimeError) and "out of memory" in str(error).lower())
    )


def _used_cuda() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())


def main(argv: list[str] | None = None, events_stream: TextIO | None = None) -> int:
    """Run one command; `events_stream` (tests) replaces the isolated real stdout."""
    events = EventReporter(events_stream if events_stream is not None else isolate_stdout())

    parser = argparse.ArgumentParser(prog="python -m supertiny_trainer")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--config", required=True, help="JSON config file for the command")
    parser.add_argument("--run-dir", required=True, help="folder for checkpoints and outputs")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --run-dir")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        if exit_.code:
            events.error("config", "invalid command line (see stderr for usage)")
        return int(exit_.code or 0)

    from .core.runtime import configure_environment

    configure_environment()
    from .core.command import RunContext
    from .core.config import load_config
    from .core.errors import TrainerError

    try:
        module_name, config_name, _ = COMMANDS[args.command]
        config = load_config(getattr(importlib.import_module(module_name), config_name), args.config)
        run_dir = Path(args.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        runner_type = runner_class(args.command, config)
        runner = runner_type(config, RunContext(run_dir=run_dir, resume=args.resume, events=events))
        cpu_started, wall_started = time.process_time(), time.monotonic()
        result = runner.run()
        # What this session of the command used (a resumed run counts only its own session): for the report's
        # one-off cost. CPU time is summed over the process's threads.
        result.metrics.update(
            {
                "compute_cpu_s": round(time.process_time() - cpu_started, 3),
                "compute_wall_s": round(time.monotonic() - wall_started, 3),
                "compute_gpu": int(_used_cuda()),
            }
        )
    except TrainerError as e:
        events.error(e.kind, e.message)
        return 2
    except BaseException as e:  # every failure must become an error event
        if isinstance(e, KeyboardInterrupt):
            events.error("internal", "interrupted")
            return 130
        traceback.print_exc(file=sys.stderr)
        if _is_out_of_memory(e):
            events.error("oom", f"out of memory: {e}")
        else:
            events.error("internal", f"{type(e).__name__}: {e}")
        return 1
    events.done(result.metrics, result.outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
