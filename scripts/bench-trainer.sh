#!/usr/bin/env bash
# Benchmark the embedded-default student's sft on this machine (see scripts/bench-trainer.py --help).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/bench-trainer.py "$@"
