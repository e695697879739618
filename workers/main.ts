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
  // The workers have stopped and closed what they started (SupertinyPlugin's run context), so the event
  // loop drains and the process exits by itself. Should anything still hold it, name it and exit anyway.
  setTimeout(() => {
    log.warn(`the process is still held after the workers stopped (${process.getActiveResourcesInfo().join(', ')}); exiting`);
    process.exit(0);
  }, 5000).unref();
}

main().catch((err) => {
  log.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
