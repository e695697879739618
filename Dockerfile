# The supertiny worker: Node.js for the Temporal worker, Python for the trainer (trainer/).
# Build: docker build -t supertiny-worker .   (docker-compose.yml builds it for you)
FROM node:20.20.2-bookworm

# Debian bookworm's Python 3.11 for the trainer's virtual environment.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund

COPY trainer/requirements.txt trainer/requirements.txt
RUN python3 -m venv /app/.venv \
 && /app/.venv/bin/pip install --no-cache-dir -r trainer/requirements.txt

COPY . .

# See README "Worker configuration" for every variable.
ENV SUPERTINY_PYTHON=/app/.venv/bin/python \
    SUPERTINY_DATA_DIR=/var/lib/supertiny \
    SUPERTINY_MASSIVE_PATH=/data/massive-en-US/en-US.jsonl \
    TEMPORAL_ADDRESS=temporal:7233 \
    TEMPORAL_NAMESPACE=default \
    SUPERTINY_TASK_QUEUE=supertiny \
    SUPERTINY_WORKER_ROLE=all
VOLUME ["/var/lib/supertiny"]
CMD ["npx", "tsx", "workers/main.ts"]
