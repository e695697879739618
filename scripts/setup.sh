#!/usr/bin/env bash
# Installs what supertiny needs, project-locally. Idempotent: a second run checks and does nothing.
#   node_modules/   npm packages, exactly as package-lock.json pins them
#   .tools/bin/     the Temporal CLI (go install, pinned tag)
#   .venv/          the trainer's Python environment (trainer/requirements.txt, pinned)
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_CLI_VERSION=v1.5.1
did=0
say() { echo "setup: $*" >&2; }

# 1. npm packages: reinstall when the lock changed since the last install.
if [ ! -f node_modules/.supertiny-lock.sha256 ] || ! sha256sum -c --status node_modules/.supertiny-lock.sha256 2>/dev/null; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
  sha256sum package-lock.json > node_modules/.supertiny-lock.sha256
  did=1
fi

# 2. The Temporal CLI, built from source by the Go toolchain into a project-local folder.
if [ ! -x .tools/bin/temporal ] || [ "$(cat .tools/temporal.version 2>/dev/null)" != "$TEMPORAL_CLI_VERSION" ]; then
  command -v go >/dev/null || { say "Go is required to install the Temporal CLI (https://go.dev/dl/)"; exit 1; }
  say "installing the Temporal CLI $TEMPORAL_CLI_VERSION into .tools/bin (go install, a few minutes)"
  mkdir -p .tools/bin
  GOBIN="$PWD/.tools/bin" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
  echo "$TEMPORAL_CLI_VERSION" > .tools/temporal.version
  did=1
fi

# 3. The trainer's virtual environment: rebuilt when trainer/requirements.txt changes.
if [ ! -x .venv/bin/python ] || [ ! -f .venv/.requirements.sha256 ] || ! sha256sum -c --status .venv/.requirements.sha256 2>/dev/null; then
  python=${SUPERTINY_BOOTSTRAP_PYTHON:-python3}
  say "installing the trainer environment into .venv (torch and friends; the first time takes a while)"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r trainer/requirements.txt
  sha256sum trainer/requirements.txt > .venv/.requirements.sha256
  did=1
fi

if [ "$did" = 0 ]; then say "everything already installed"; fi
