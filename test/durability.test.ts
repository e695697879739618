// Crash recovery with a real worker process: SIGKILL it in the middle of a stage, start a new one, and
// the stage finishes from where it was (heartbeat details, trainer checkpoints), paying nothing twice.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { defaultPayloadConverter } from '@temporalio/common';
import { parsePipelineConfig, type PipelineConfig } from '../config/pipeline';
import type { SupertinyEnv } from '../config/env';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import { prototypeStage } from '../workflows/prototype';
import { transferStage } from '../workflows/transfer';
import type { PrototypeResult, LabelBatchResult } from '../activities/types';
import type { TrainedModel, TrainerStepInput } from '../activities/trainer/trainer-step';
import type { TrainerHeartbeat } from '../activities/trainer/trainer-process';
import { runTrainer } from '../activities/trainer/trainer-process';
import { ArtifactStore } from '../artifacts/store';
import { createTestWorkers, startTestServer, stopTestServer, testDeps, testEnv, withWorkers } from './support/temporal';
import { waitFor } from '../runtime/wait-for';
import { smallPipelineConfig } from './support/pipeline-config';
import { startWorkerProcess, type WorkerProcess } from './support/worker-process';

/** Decoded results of every completed activity of a type, from a workflow's history. */
/** The results of `workflowId`'s calls of `activityType` (of trainerStep: those that ran the step `stepName`), with their attempts. */
async function activityResults<T>(server: TestWorkflowEnvironment, workflowId: string, activityType: string, stepName?: string): Promise<{ result: T; attempt: number }[]> {
  const history = await server.client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  const attempts = new Map<string, number>();
  const out: { result: T; attempt: number }[] = [];
  for (const event of history.events ?? []) {
    const id = String(event.eventId);
    const scheduling = event.activityTaskScheduledEventAttributes;
    const type = scheduling?.activityType?.name;
    if (type && (!stepName || defaultPayloadConverter.fromPayload<TrainerStepInput>(scheduling.input!.payloads![0] as never).plan.name === stepName)) scheduled.set(id, type);
    const started = event.activityTaskStartedEventAttributes;
    if (started) attempts.set(String(started.scheduledEventId), started.attempt ?? 1);
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed && scheduled.get(String(completed.scheduledEventId)) === activityType) {
      const payload = completed.result!.payloads![0];
      out.push({ result: defaultPayloadConverter.fromPayload<T>(payload as never), attempt: attempts.get(String(completed.scheduledEventId)) ?? 1 });
    }
  }
  return out;
}

/** The last heartbeat details of a workflow's pending activity of a type, if any. */
async function pendingHeartbeat<T>(server: TestWorkflowEnvironment, workflowId: string, activityType: string): Promise<T | undefined> {
  const description = await server.client.workflow.getHandle(workflowId).describe();
  const pending = description.raw.pendingActivities?.find((a) => a.activityType?.name === activityType);
  const payload = pending?.heartbeatDetails?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload<T>(payload as never) : undefined;
}

describe('durability', () => {
  let server: TestWorkflowEnvironment;
  let env: SupertinyEnv;
  let simulator: RunningTeacherSimulator;
  let onChatRequest: (() => void | Promise<void>) | undefined;
  const workers: WorkerProcess[] = [];
  let prototype: PrototypeResult;
  const taskQueue = `durability-${Date.now()}`;

  const config: PipelineConfig = parsePipelineConfig(
    smallPipelineConfig('durability', {
      task: { trainLimit: 60 },
      // One request at a time: when a new request reaches the teacher, every earlier answer is cached.
      teacher: { samples: 3, batchSize: 60, concurrency: 1 },
      transfer: { maxSteps: 200, checkpointEvery: 20 },
      timeouts: { heartbeatSeconds: 3 },
    }),
  );

  beforeAll(async () => {
    server = await startTestServer();
    env = await testEnv(server.address, { taskQueue });
    simulator = await startTeacherSimulator({ seed: 7, faults: { latencyMs: 40 }, onChatRequest: () => onChatRequest?.() });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    await simulator?.close();
    await stopTestServer(server);
    if (env) await fs.rm(env.dataDir, { recursive: true, force: true });
  });

  function worker(): WorkerProcess {
    const w = startWorkerProcess(env, { SUPERTINY_SIMULATOR_URL: simulator.url });
    workers.push(w);
    return w;
  }

  test('prototype stage survives SIGKILL: resumes from its heartbeat, byte-identical artifacts, no teacher request served twice', async () => {
    const first = worker();
    await first.ready;
    const workflowId = `kill-prototype-${Date.now()}`;
    const killed = new Promise<void>((resolve) => {
      // Well into the batch (heartbeats are throttled to 0.8 x the 3 s timeout), kill the worker while
      // this request waits for its answer; the answer is held until the worker is gone.
      onChatRequest = async () => {
        if (simulator.stats().chatRequests >= 130) {
          onChatRequest = undefined;
          await first.kill('SIGKILL');
          resolve();
        }
      };
    });
    const handle = await server.client.workflow.start(prototypeStage, { taskQueue, workflowId, args: [{ config }] });
    await killed;
    const second = worker();
    prototype = await handle.result();
    await second.kill('SIGTERM');

    const labelled = await activityResults<LabelBatchResult>(server, workflowId, 'labelBatch');
    expect(labelled).toHaveLength(1);
    expect(labelled[0].attempt).toBeGreaterThanOrEqual(2);
    expect(labelled[0].result.resumedFrom).toBeGreaterThan(0);
    expect(labelled[0].result.resumedFrom).toBeLessThan(60);
    const stats = simulator.stats();
    const repeated = Object.entries(stats.answeredByContentHash).filter(([, n]) => n > 1).map(([h, n]) => ({ hash: h.slice(0, 12), answered: n, received: stats.receivedByContentHash[h] }));
    expect({ repeated, abandoned: stats.abandoned }).toEqual({ repeated: [], abandoned: expect.any(Number) });

    // The same stage without a crash, on its own store and simulator (same seed), gives the same bytes.
    const referenceSimulator = await startTeacherSimulator({ seed: 7 });
    const referenceEnv = await testEnv(server.address, { taskQueue: `${taskQueue}-reference` });
    try {
      const reference = await withWorkers(
        () => createTestWorkers(server, referenceEnv.taskQueue, testDeps(referenceEnv, { simulatorBaseURL: referenceSimulator.url })),
        () => server.client.workflow.execute(prototypeStage, { taskQueue: referenceEnv.taskQueue, workflowId: `${workflowId}-reference`, args: [{ config }] }),
      );
      for (const name of ['sft', 'preferences', 'rejected', 'stats'] as const) expect(prototype[name].sha256).toBe(reference[name].sha256);
    } finally {
      await referenceSimulator.close();
      await fs.rm(referenceEnv.dataDir, { recursive: true, force: true });
    }
  }, 600_000);

  test('training survives SIGKILL: it continues from the last checkpoint and finishes with a model that loads', async () => {
    expect(prototype).toBeDefined();
    const first = worker();
    await first.ready;
    const workflowId = `kill-transfer-${Date.now()}`;
    const handle = await server.client.workflow.start(transferStage, { taskQueue, workflowId, args: [{ config, prototype }] });
    // Wait for a checkpoint of the sft step to be reported through a heartbeat, then kill the worker.
    const checkpointStep = await waitFor(
      'a checkpoint of the sft step in a heartbeat',
      async () => {
        const beat = await pendingHeartbeat<TrainerHeartbeat>(server, `${workflowId}`, 'trainerStep').catch(() => undefined);
        // The checkpoint's own step: progress heartbeats move `step` on past it before the kill.
        return beat?.checkpoint && beat.checkpointStep ? beat.checkpointStep : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 250 },
    );
    expect(checkpointStep).toBeGreaterThan(0);
    await first.kill('SIGKILL');
    const second = worker();
    const result = await handle.result();
    await second.kill('SIGTERM');

    const trained = await activityResults<TrainedModel>(server, workflowId, 'trainerStep', 'trainStudent-sft');
    expect(trained).toHaveLength(1);
    expect(trained[0].attempt).toBeGreaterThanOrEqual(2);
    expect(trained[0].result.metrics.resumed_from_step).toBeGreaterThanOrEqual(checkpointStep);
    expect(trained[0].result.metrics.resumed_from_step).toBeLessThan(200);

    // The model loads and answers: the trainer's predict on a few dev utterances.
    const store = new ArtifactStore(path.join(env.dataDir, 'artifacts'));
    const runDir = await store.scratchDir('load-check');
    const modelDir = await store.materializeDirectory(result.student, path.join(runDir, 'model'));
    const data = path.join(runDir, 'inputs.jsonl');
    await fs.writeFile(data, ['wake me up at five am', 'what is the weather like'].map((u, i) => JSON.stringify({ id: String(i), utterance: u })).join('\n') + '\n');
    const done = await runTrainer({ env, command: 'predict', runDir, config: { model: modelDir, data } });
    expect(done.metrics.examples).toBe(2);
  }, 600_000);

  test('a SIGKILL between a paid answer and its caching, at concurrency 4: the resend carries the same idempotency key and is not billed again', async () => {
    // Its own store and simulator: nothing cached by the other tests, stats of this run only.
    const windowEnv = await testEnv(server.address, { taskQueue: `${taskQueue}-window` });
    let armed = true;
    let killedHash: string | undefined;
    let victim: WorkerProcess | undefined;
    let killed!: () => void;
    const killedPromise = new Promise<void>((resolve) => (killed = resolve));
    const windowSimulator = await startTeacherSimulator({
      seed: 7,
      faults: { latencyMs: 40 },
      // The answer is computed and billed; the worker dies before a byte of it can reach the worker's cache.
      onAnswer: async ({ hash }) => {
        if (!armed || windowSimulator.stats().completions < 40) return;
        armed = false;
        killedHash = hash;
        await victim!.kill('SIGKILL');
        killed();
      },
    });
    const windowConfig = parsePipelineConfig(
      smallPipelineConfig('durability-window', { task: { trainLimit: 40 }, teacher: { samples: 3, batchSize: 40, concurrency: 4 }, timeouts: { heartbeatSeconds: 3 } }),
    );
    const started: WorkerProcess[] = [];
    try {
      victim = startWorkerProcess(windowEnv, { SUPERTINY_SIMULATOR_URL: windowSimulator.url });
      started.push(victim);
      await victim.ready;
      const handle = await server.client.workflow.start(prototypeStage, { taskQueue: windowEnv.taskQueue, workflowId: `kill-window-${Date.now()}`, args: [{ config: windowConfig }] });
      await killedPromise;
      const second = startWorkerProcess(windowEnv, { SUPERTINY_SIMULATOR_URL: windowSimulator.url });
      started.push(second);
      await handle.result();

      const stats = windowSimulator.stats();
      const billedTwice = Object.entries(stats.answeredByContentHash).filter(([, n]) => n > 1);
      // The request whose answer was lost with the worker was sent again (the window was hit)...
      expect(stats.receivedByContentHash[killedHash!]).toBeGreaterThanOrEqual(2);
      expect(stats.replayed).toBeGreaterThanOrEqual(1);
      // ...and no request was billed twice.
      expect(billedTwice).toEqual([]);
    } finally {
      await Promise.all(started.map((w) => w.kill()));
      await windowSimulator.close();
      await fs.rm(windowEnv.dataDir, { recursive: true, force: true });
    }
  }, 300_000);
});
