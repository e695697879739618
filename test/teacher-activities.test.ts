// The labelling activities against endpoints that misbehave like real ones: slow and faulty, hanging,
// down then back. Heartbeats and cancellation go through a real Temporal dev server; deadlines and outages
// through Temporal's activity test environment (an activity context with a short deadline).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { LabelBatchResult, TaskData } from '../activities/types';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import type { SupertinyEnv } from '../config/env';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import { prototypeStage } from '../workflows/prototype';
import { startFakeEndpoint, type FakeEndpoint } from './support/fake-endpoint';
import { waitFor } from '../runtime/wait-for';
import { resolveTeacherEndpoints } from '../config/endpoints';
import { smallPipelineConfig } from './support/pipeline-config';
import { createTestWorkers, startTestServer, stopTestServer, testDeps, testEnv, withWorkers } from './support/temporal';
import { pipelinePlan } from '../config/plan';

const API_KEY = 'sk-test-never-shown-0123456789';

let server: TestWorkflowEnvironment;
let sim: RunningTeacherSimulator;
let fake: FakeEndpoint;
beforeAll(async () => {
  server = await startTestServer();
  sim = await startTeacherSimulator({ seed: 31 });
});
afterAll(async () => {
  await sim?.close();
  await stopTestServer(server);
});
beforeEach(async () => {
  fake = await startFakeEndpoint();
});
afterEach(async () => {
  await fake.close();
});

const small = (name: string, overrides: PipelineConfigInput = {}) =>
  parsePipelineConfig(
    smallPipelineConfig(name, {
      ...overrides,
      task: { trainLimit: 16, devLimit: 8, testLimit: 8, ...overrides.task },
      teacher: { endpoint: 'fake', samples: 2, batchSize: 8, concurrency: 4, ...overrides.teacher },
    }),
  );

/** The worker's endpoint "fake" at `url`, whose key is API_KEY (the configs below pick it by name). */
const fakeEndpoint = (url: string) =>
  resolveTeacherEndpoints({ endpoints: [{ name: 'fake', baseURL: url, apiKeyEnv: 'FAKE_TEACHER_KEY', models: ['teacher-simulator'] }] }, () => API_KEY);

/** Activities with a fresh data folder whose teacher is `url` and whose key is API_KEY. */
async function activitiesFor(url: string): Promise<{ env: SupertinyEnv; activities: ReturnType<typeof createActivities> }> {
  const env = await testEnv(server.address);
  return { env, activities: createActivities(testDeps(env, { endpoints: fakeEndpoint(url) })) };
}

// The failures these tests provoke are asserted, not printed.
const quiet = new DefaultLogger('ERROR');

/** An activity context as a worker gives it: this deadline, this heartbeat timeout, no schedule-to-close. */
function activityContext(startToCloseTimeoutMs: number, heartbeatTimeoutMs = 1000) {
  const now = Date.now();
  return new MockActivityEnvironment(
    { startToCloseTimeoutMs, heartbeatTimeoutMs, scheduleToCloseTimeoutMs: 0, scheduledTimestampMs: now, currentAttemptScheduledTimestampMs: now },
    { logger: quiet },
  );
}

async function failureOf(work: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await work.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(error instanceof ApplicationFailure)) throw new Error(`expected an ApplicationFailure, got ${String(error)}`);
  return error;
}

test('the prototype stage completes against a teacher with 300 ms latency and 5% 500s and 429s at a 1 s heartbeat timeout', async () => {
  const slow = await startTeacherSimulator({ seed: 32, faults: { latencyMs: 300, rate500: 0.05, rate429: 0.05, retryAfterMs: 200 } });
  try {
    const env = await testEnv(server.address, { taskQueue: `slow-teacher-${Date.now()}` });
    const config = small('slow-teacher', { timeouts: { heartbeatSeconds: 1 } });
    const result = await withWorkers(
      () => createTestWorkers(server, env.taskQueue, testDeps(env, { endpoints: fakeEndpoint(slow.url) })),
      () => server.client.workflow.execute(prototypeStage, { taskQueue: env.taskQueue, workflowId: `slow-teacher-${Date.now()}`, args: [{ config }] }),
    );
    expect(result.summary.inputs).toBe(16);
    const stats = slow.stats();
    // The faults really happened, were retried, and no answer was paid twice.
    expect(stats.injected500 + stats.injected429).toBeGreaterThan(0);
    expect(stats.repeatedAnswers).toBe(0);
  } finally {
    await slow.close();
  }
});

test('cancelling the workflow during labelling aborts the requests in flight and sends none after', async () => {
  const { env } = await activitiesFor(fake.url);
  const taskQueue = `cancel-${Date.now()}`;
  const config = small('cancel', { timeouts: { heartbeatSeconds: 2 } });
  await withWorkers(
    () => createTestWorkers(server, taskQueue, testDeps(env, { endpoints: fakeEndpoint(fake.url) })),
    async () => {
      const handle = await server.client.workflow.start(prototypeStage, { taskQueue, workflowId: `cancel-${Date.now()}`, args: [{ config }] });
      // Two batches in parallel, four requests each, all hanging.
      await waitFor('eight requests in flight', () => fake.open() === 8, { timeoutMs: 30_000 });
      const sentBeforeCancel = fake.requests.length;
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow();
      await waitFor('every request aborted', () => fake.open() === 0);
      expect({ sent: fake.requests.length, aborted: fake.aborted() }).toEqual({ sent: sentBeforeCancel, aborted: sentBeforeCancel });
    },
  );
  // The workers have stopped; nothing was sent after the cancellation.
  expect(fake.requests.length).toBe(8);
});

test('a hanging endpoint is cut off before the activity deadline with a non-retryable failure, and nothing is sent after', async () => {
  const { activities } = await activitiesFor(fake.url);
  const config = small('hang');
  const data = (await new MockActivityEnvironment(undefined, { logger: quiet }).run(activities.prepareTaskData, { plan: pipelinePlan(config).prototype.data })) as TaskData;
  const context = activityContext(2500);
  const beats: number[] = [];
  context.on('heartbeat', () => beats.push(Date.now()));
  const started = Date.now();
  const failure = await failureOf(context.run(activities.labelBatch, { plan: { ...pipelinePlan(config).prototype.label, batchSize: 8 }, inputs: data.train, batchIndex: 0 }));
  const elapsed = Date.now() - started;
  expect(failure).toMatchObject({ type: 'TeacherUnavailable', nonRetryable: true });
  expect(failure.message).toMatch(/answered nothing before the activity's deadline/);
  expect(elapsed).toBeGreaterThan(2000);
  expect(elapsed).toBeLessThan(2500);
  // It heartbeat while it waited (every 250 ms at a 1 s heartbeat timeout), not only between chunks.
  expect(beats.length).toBeGreaterThanOrEqual(6);
  await waitFor('every request aborted', () => fake.open() === 0);
  expect(fake.requests.length).toBe(4);
  expect(fake.aborted()).toBe(4);
});

test('an endpoint that is down fails labelling non-retryably with its status counts; once it is back, labelling succeeds', async () => {
  fake.behave({ kind: 'status', status: 503, message: `upstream overloaded (key ${API_KEY})` });
  const { env, activities } = await activitiesFor(fake.url);
  const config = small('down', { teacher: { maxRetries: 1 } });
  const data = (await new MockActivityEnvironment(undefined, { logger: quiet }).run(activities.prepareTaskData, { plan: pipelinePlan(config).prototype.data })) as TaskData;
  const input = { plan: { ...pipelinePlan(config).prototype.label, batchSize: 8 }, inputs: data.train, batchIndex: 0 };

  const failure = await failureOf(activityContext(60_000).run(activities.labelBatch, input));
  expect(failure).toMatchObject({ type: 'TeacherUnavailable', nonRetryable: true });
  expect(failure.message).toMatch(/503 x\d+/);
  expect(failure.message).toMatch(/last error: HTTP 503: .*upstream overloaded/);
  expect(failure.message).not.toContain(API_KEY);
  const outputs = async () => (await fs.readdir(path.join(env.dataDir, 'artifacts', 'outputs')).catch(() => [] as string[])).filter((f) => f.startsWith('labelBatch'));
  expect(await outputs()).toEqual([]);

  fake.behave({ kind: 'forward', baseURL: sim.url });
  const result = (await activityContext(60_000).run(activities.labelBatch, input)) as LabelBatchResult;
  expect(result.items).toBe(8);
  expect(Object.keys(result.counts).filter((k) => ['http_error', 'timeout', 'connection_error'].includes(k))).toEqual([]);
  expect(await outputs()).toHaveLength(1);
});

test('the judge failing for good fails assembling the dataset non-retryably; nothing is memoised', async () => {
  fake.behave({ kind: 'forward', baseURL: sim.url });
  const { env, activities } = await activitiesFor(fake.url);
  const config = small('judge-down', { teacher: { maxRetries: 1, judge: { enabled: true, devSample: 4 } } });
  const data = (await new MockActivityEnvironment(undefined, { logger: quiet }).run(activities.prepareTaskData, { plan: pipelinePlan(config).prototype.data })) as TaskData;
  const batch = (await activityContext(60_000).run(activities.labelBatch, { plan: { ...pipelinePlan(config).prototype.label, batchSize: 8 }, inputs: data.train, batchIndex: 0 })) as LabelBatchResult;
  fake.behave({ kind: 'status', status: 500, message: 'judge backend crashed' });
  const failure = await failureOf(activityContext(60_000).run(activities.assembleDataset, { plan: pipelinePlan(config).prototype.assemble, data, batches: [batch.samples] }));
  expect(failure).toMatchObject({ type: 'TeacherUnavailable', nonRetryable: true });
  expect(failure.message).toMatch(/500 x\d+.*judge backend crashed/);
  const outputs = await fs.readdir(path.join(env.dataDir, 'artifacts', 'outputs'));
  expect(outputs.filter((f) => f.startsWith('assembleDataset'))).toEqual([]);
});
