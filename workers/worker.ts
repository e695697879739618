// Builds and runs supertiny workers: one on the CPU task queue (workflows, teacher calls, evaluation)
// and one on the GPU task queue (training, export, quantization).
import { NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { Connection } from '@temporalio/client';
import { temporalConnectionOptions, type SupertinyEnv } from '../config/env';
import { createLogger } from '../config/logger';
import { ArtifactStore } from '../artifacts/store';
import { gpuQueueOf } from '../workflows/activity-options';
import { SupertinyPlugin } from './plugin';
import { ensureSearchAttributes } from './search-attributes';
import type { ActivityDeps } from '../activities';
import { loadTeacherEndpoints } from '../config/endpoints';

const log = createLogger('worker');

export type WorkerRole = 'all' | 'cpu' | 'gpu';

export interface SupertinyWorkers {
  workers: Worker[];
  /** Runs until shutdown() or a signal (SIGINT/SIGTERM); resolves when every worker stopped. */
  run(): Promise<void>;
  shutdown(): void;
}

export async function createWorkers(
  env: SupertinyEnv,
  options: { role?: WorkerRole; workflowBundle?: WorkflowBundleOption; deps?: Partial<ActivityDeps>; taskQueue?: string } = {},
): Promise<SupertinyWorkers> {
  const role = options.role ?? 'all';
  const taskQueue = options.taskQueue ?? env.taskQueue;
  // Refuses a bad endpoints file (non-http(s) URL, unset key variable) before polling anything.
  const endpoints = options.deps?.endpoints ?? (await loadTeacherEndpoints(env.teacherEndpointsFile, env.secret));
  const connection = await connectWithRetry(env);
  const admin = await Connection.connect(temporalConnectionOptions(env));
  await ensureSearchAttributes(admin, env.namespace);
  await admin.close();

  const deps: ActivityDeps = { env, store: new ArtifactStore(`${env.dataDir}/artifacts`), ...options.deps, endpoints };
  const workers: Worker[] = [];
  if (role === 'all' || role === 'cpu') {
    workers.push(
      await Worker.create({
        connection,
        namespace: env.namespace,
        taskQueue,
        plugins: [new SupertinyPlugin({ deps, workflowBundle: options.workflowBundle })],
      }),
    );
  }
  if (role === 'all' || role === 'gpu') {
    workers.push(
      await Worker.create({
        connection,
        namespace: env.namespace,
        taskQueue: gpuQueueOf(taskQueue),
        // Training holds the machine; one trainer at a time per worker.
        maxConcurrentActivityTaskExecutions: 1,
        plugins: [new SupertinyPlugin({ deps, workflows: false })],
      }),
    );
  }
  log.info(`worker polling ${workers.map((w) => w.options.taskQueue).join(' and ')} on ${env.temporalAddress}`, {
    teacherEndpoints: endpoints.map((e) => e.name),
  });
  return {
    workers,
    run: async () => {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        await connection.close();
      }
    },
    shutdown: () => workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown()),
  };
}

/** In a deployment the worker may start before the server answers: wait, then fail with a clear error. */
async function connectWithRetry(env: SupertinyEnv): Promise<NativeConnection> {
  const deadline = Date.now() + env.connectTimeoutSeconds * 1000;
  for (;;) {
    try {
      return await NativeConnection.connect(temporalConnectionOptions(env));
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`no Temporal server answered on ${env.temporalAddress} within ${env.connectTimeoutSeconds} s: ${(err as Error).message}`);
      }
      log.info(`waiting for the Temporal server on ${env.temporalAddress}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}
