// Worker entry point: `npm run worker` (or `node -r tsx/cjs workers/main.ts`).
// Environment (all optional): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (also TEMPORAL_API_KEY, TEMPORAL_TLS*,
// TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE: Temporal's client profiles), SUPERTINY_TASK_QUEUE,
// SUPERTINY_WORKER_ROLE (all|cpu|gpu), SUPERTINY_DATA_DIR, SUPERTINY_PYTHON, SUPERTINY_MASSIVE_PATH,
// SUPERTINY_TEACHER_ENDPOINTS (the operator's teacher endpoints file; the simulator is always there). See README.
import { readEnv } from '../config/env';
import { createLogger } from '../config/logger';
import { createWorkers } from './worker';
import { installTemporalRuntime } from './runtime-logger';

const log = createLogger('worker');

async function main() {
  installTemporalRuntime();
  const env = readEnv();
  const workers = await createWorkers(env, { role: env.workerRole });
  await workers.run();
  // The workers have stopped; what they started in-process (the teacher simulator's server, keep-alive
  // sockets) must not keep the process alive after SIGTERM.
  process.exit(0);
}

main().catch((err) => {
  log.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
