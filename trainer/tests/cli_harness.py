"""Runs trainer commands the way the TypeScript adapter does (a child process) or in-process, and parses events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TRAINER_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliRun:
    returncode: int
    events: list[dict]
    stdout: str
    stderr: str

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]

    @property
    def done(self) -> dict:
        done = self.of("done")
        assert done, f"no done event (rc={self.returncode}); stderr tail:\n{self.stderr[-3000:]}"
        return done[-1]

    @property
    def error(self) -> dict:
        errors = self.of("error")
        assert errors, f"no error event (rc={self.returncode}); stdout:\n{self.stdout}"
        return errors[-1]


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(TRAINER_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def parse_events(stdout: str) -> list[dict]:
    # The contract: every stdout line is one JSON event object.
    events = []
    for line in stdout.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict) and "event" in event, line
        events.append(event)
    return events


def write_config(run_dir: Path, command: str, config: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{command}.config.json"
    path.write_text(json.dumps(config))
    return path


def cli_args(command: str, config: dict, run_dir: Path) -> list[str]:
    """The trainer's command line for `command` with `config` written into `run_dir`."""
    config_path = write_config(run_dir, command, config)
    return [sys.executable, "-m", "supertiny_trainer", command, "--config", str(config_path), "--run-dir", str(run_dir)]


def run_cli(command: str, config: dict, run_dir: Path, resume: bool = False, timeout: int = 600) -> CliRun:
    args = cli_args(command, config, run_dir) + (["--resume"] if resume else [])
    proc = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=timeout)
    return CliRun(proc.returncode, parse_events(proc.stdout), proc.stdout, proc.stderr)


def run_cli_until_checkpoint(command: str, config: dict, run_dir: Path) -> tuple[dict, int]:
    """Start a command, SIGKILL it right after its first checkpoint event; return that event and the exit code."""
    proc = subprocess.Popen(
        cli_args(command, config, run_dir), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env()
    )
    checkpoint = None
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "checkpoint":
                checkpoint = event
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.stdout.close()
        returncode = proc.wait(timeout=60)
    assert checkpoint is not None, "the run ended without a checkpoint event"
    return checkpoint, returncode


def run_in_process(command: str, config: dict, run_dir: Path, resume: bool = False) -> CliRun:
    """The same entry point without a new interpreter (for fast failure-path tests)."""
    import io

    from supertiny_trainer.__main__ import main

    stream = io.StringIO()
    args = [command, "--config", str(write_config(run_dir, command, config)), "--run-dir", str(run_dir)]
    returncode = main(args + (["--resume"] if resume else []), events_stream=stream)
    return CliRun(returncode, parse_events(stream.getvalue()), stream.getvalue(), "")
