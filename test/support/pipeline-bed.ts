// What the end-to-end pipeline suites share: a real Temporal dev server, a data folder of their own, one
// teacher simulator for the "simulator" endpoint and the CPU and GPU workers, torn down after the suite.
import { promises as fs } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { SupertinyEnv } from '../../config/env';
import type { ArtifactStore } from '../../artifacts/store';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../../runtime/teacher-simulator';
import { createTestWorkers, startTestServer, stopTestServer, testDeps, testEnv } from './temporal';

export interface PipelineBed {
  server: TestWorkflowEnvironment;
  env: SupertinyEnv;
  store: ArtifactStore;
  simulator: RunningTeacherSimulator;
  taskQueue: string;
  /** Fresh workers for withWorkers (a Worker runs once). */
  workers: () => Promise<Worker[]>;
}

/** Registers the suite's beforeAll/afterAll; the returned object is filled in before the first test. */
export function usePipelineBed(queuePrefix: string, envOverrides: Partial<SupertinyEnv> = {}): PipelineBed {
  const bed = { taskQueue: `${queuePrefix}-${Date.now()}` } as PipelineBed;
  beforeAll(async () => {
    bed.server = await startTestServer();
    bed.env = await testEnv(bed.server.address, { taskQueue: bed.taskQueue, ...envOverrides });
    bed.simulator = await startTeacherSimulator();
    const deps = testDeps(bed.env, { simulatorBaseURL: bed.simulator.url });
    bed.store = deps.store;
    bed.workers = () => createTestWorkers(bed.server, bed.taskQueue, deps);
  }, 120_000);
  afterAll(async () => {
    await bed.simulator?.close();
    await stopTestServer(bed.server);
    if (bed.env) await fs.rm(bed.env.dataDir, { recursive: true, force: true });
  });
  return bed;
}
