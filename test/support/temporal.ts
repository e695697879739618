// A real Temporal dev server (the project's CLI binary, no download) and workers for the tests.
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { onLocalServer, readEnv, type SupertinyEnv } from '../../config/env';
import { ArtifactStore } from '../../artifacts/store';
import { STAGE_SEARCH_ATTRIBUTE } from '../../workflows/messages';
import { gpuQueueOf } from '../../workflows/activity-options';
import { SupertinyPlugin, WORKFLOWS_PATH } from '../../workers/plugin';
import type { ActivityDeps } from '../../activities';
import type { WorkflowHandle } from '@temporalio/client';
import { pipelineProgress, type PipelineProgress } from '../../client';

let runtimeInstalled = false;

export async function startTestServer(): Promise<TestWorkflowEnvironment> {
  if (!runtimeInstalled) {
    // Worker lifecycle chatter at INFO drowns the test output; warnings and errors still show.
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const cli = readEnv().temporalCli;
  await fs.access(cli).catch(() => {
    throw new Error(`Temporal CLI not found at ${cli}: run "npm run setup" first`);
  });
  return TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: cli }, searchAttributes: [STAGE_SEARCH_ATTRIBUTE], log: { format: 'pretty', level: 'error' } },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** Bundling takes seconds; do it once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as never });
  return bundle;
}

/** An environment whose data folder is a fresh temporary directory. */
export async function testEnv(address: string, overrides: Partial<SupertinyEnv> = {}): Promise<SupertinyEnv> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-test-'));
  return { ...onLocalServer(readEnv(), address), dataDir, ...overrides };
}

export function testDeps(env: SupertinyEnv, extra: Partial<ActivityDeps> = {}): ActivityDeps {
  return { env, store: new ArtifactStore(path.join(env.dataDir, 'artifacts')), ...extra };
}

/** CPU and GPU workers in this process, as `supertiny worker` runs them. */
export async function createTestWorkers(testEnvironment: TestWorkflowEnvironment, taskQueue: string, deps: ActivityDeps): Promise<Worker[]> {
  const plugin = new SupertinyPlugin({ deps, workflowBundle: await workflowBundle() });
  return [
    await Worker.create({ connection: testEnvironment.nativeConnection, taskQueue, plugins: [plugin] }),
    await Worker.create({
      connection: testEnvironment.nativeConnection,
      taskQueue: gpuQueueOf(taskQueue),
      maxConcurrentActivityTaskExecutions: 1,
      plugins: [new SupertinyPlugin({ deps, workflows: false })],
    }),
  ];
}

/** The workers withWorkers started and has not shut down yet, with their run promises. */
const polling = new Map<Worker, Promise<void>>();

/** Runs `fn` while fresh workers poll, then shuts them down (a Worker runs once). */
export async function withWorkers<T>(create: () => Promise<Worker[]>, fn: () => Promise<T>): Promise<T> {
  const workers = await create();
  const running = workers.map((w) => {
    const run = w.run();
    polling.set(w, run);
    return run;
  });
  try {
    return await fn();
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.all(running);
    for (const w of workers) polling.delete(w);
  }
}

/**
 * Shuts down the workers of a withWorkers whose `fn` never returned (a test that jest timed out goes on running),
 * so that the suite's server can be torn down and the jest process can exit: a worker left polling a stopped
 * server retries for ever. Call before tearing the server down.
 */
async function shutdownLeftoverWorkers(): Promise<number> {
  const left = [...polling.entries()];
  for (const [w] of left) if (w.getState() === 'RUNNING') w.shutdown();
  await Promise.allSettled(left.map(([, run]) => run));
  polling.clear();
  return left.length;
}

/** Tears a suite's server down (when it started), leftover workers first (shutdownLeftoverWorkers). */
export async function stopTestServer(server: TestWorkflowEnvironment | undefined): Promise<void> {
  const left = await shutdownLeftoverWorkers();
  if (left > 0) console.warn(`${left} worker(s) of a test that did not finish were still polling; shut down before the server`);
  await server?.teardown();
}

/**
 * A pipeline's progress for a waitFor probe: undefined while the query fails or takes longer than `timeoutMs` (a
 * query no worker answers can wait far longer than the waitFor's deadline), so the wait fails naming what it waited for.
 */
export async function progressWithin(handle: WorkflowHandle, timeoutMs = 15_000): Promise<PipelineProgress | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    return await Promise.race([pipelineProgress(handle).catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

let scriptedRuns = 0;

/**
 * Runs `workflowType` to its result on a fresh task queue whose CPU and GPU workers run the scripted
 * `activities`. With `recordTo`, saves the run's history there (how replay fixtures are made).
 */
export async function executeOnScriptedWorkers(server: TestWorkflowEnvironment, workflowType: string, args: unknown[], activities: object, recordTo?: string): Promise<unknown> {
  const taskQueue = `scripted-${Date.now()}-${scriptedRuns++}`;
  const workers = [
    await Worker.create({ connection: server.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities }),
    await Worker.create({ connection: server.nativeConnection, taskQueue: gpuQueueOf(taskQueue), activities }),
  ];
  const running = workers.map((w) => w.run());
  try {
    const result = await server.client.workflow.execute(workflowType, { taskQueue, workflowId: taskQueue, args });
    if (recordTo) {
      const shown = await promisify(execFile)(readEnv().temporalCli, ['workflow', 'show', '--workflow-id', taskQueue, '--output', 'json', '--address', server.address], { maxBuffer: 64 << 20 });
      await fs.writeFile(recordTo, JSON.stringify({ workflowId: taskQueue, history: JSON.parse(shown.stdout) }));
    }
    return result;
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.all(running);
  }
}

/**
 * Replays a recorded history from test/fixtures/ with today's workflows (a determinism error fails the test) and
 * returns the activity types it scheduled, in order, for the caller to say which names it expects.
 */
export async function replayFixture(file: string): Promise<string[]> {
  const fixture = JSON.parse(await fs.readFile(path.join(__dirname, '..', 'fixtures', file), 'utf8'));
  await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, fixture.history, fixture.workflowId);
  return (fixture.history.events as { activityTaskScheduledEventAttributes?: { activityType: { name: string } } }[]).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType.name ?? []);
}
