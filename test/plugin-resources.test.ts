// SupertinyPlugin's run context: what the activities start for a worker's lifetime (here the built-in
// teacher simulator's HTTP server) is closed when the worker stops, or, for a plugin shared by several
// workers, when the last of them stops.
import { promises as fs } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { parsePipelineConfig } from '../config/pipeline';
import type { SupertinyEnv } from '../config/env';
import { prototypeStage } from '../workflows/prototype';
import { SupertinyPlugin } from '../workers/plugin';
import { smallPipelineConfig } from './support/pipeline-config';
import { startTestServer, testDeps, testEnv, workflowBundle } from './support/temporal';
import { waitFor } from '../runtime/wait-for';

let server: TestWorkflowEnvironment;
let env: SupertinyEnv;
beforeAll(async () => {
  server = await startTestServer();
  // No simulator URL anywhere: the worker starts the simulator in-process when labelling first needs it.
  env = await testEnv(server.address, { taskQueue: `plugin-resources-${Date.now()}`, simulatorUrl: undefined });
}, 120_000);
afterAll(async () => {
  await server?.teardown();
  if (env) await fs.rm(env.dataDir, { recursive: true, force: true });
});

/** Listening TCP servers in this process (a closed one may linger until the next turn of the event loop). */
const listening = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

/** Whether something answers HTTP at `url`. */
const answers = (url: string) =>
  fetch(`${url}/models`).then(
    (res) => res.ok,
    () => false,
  );

test('the teacher simulator a worker started is closed when the last worker sharing the plugin stops', async () => {
  // The worker logs where it started the simulator and when it stopped it (the logger writes to stderr).
  const spy = jest.spyOn(process.stderr, 'write'); // still writes
  const logged = () => spy.mock.calls.map(([chunk]) => String(chunk)).join('');
  const before = listening();
  const plugin = new SupertinyPlugin({ deps: testDeps(env), workflowBundle: await workflowBundle() });
  // One plugin instance on two workers (two queues: one process may not poll a queue twice).
  const create = (taskQueue: string) => Worker.create({ connection: server.nativeConnection, taskQueue, plugins: [plugin] });
  const [first, second] = [await create(env.taskQueue), await create(`${env.taskQueue}-second`)];
  const runs = [first.run(), second.run()];
  try {
    const config = parsePipelineConfig(smallPipelineConfig('plugin-resources', { task: { trainLimit: 16, devLimit: 8, testLimit: 8 }, teacher: { batchSize: 8, samples: 2 } }));
    const result = await server.client.workflow.execute(prototypeStage, { taskQueue: env.taskQueue, workflowId: `plugin-resources-${Date.now()}`, args: [{ config }] });
    expect(result.summary.accepted).toBeGreaterThan(0);
    const url = logged().match(/started the teacher SIMULATOR (?:for task "[^"]*" )?at (http:\S+)/)?.[1];
    expect(url).toBeDefined();
    expect(listening()).toBe(before + 1);

    first.shutdown();
    await runs[0];
    // The second worker still runs with the same activities: the simulator stays.
    expect(await answers(url!)).toBe(true);

    second.shutdown();
    await runs[1];
    expect(logged()).toContain(`stopped the teacher SIMULATOR at ${url}`);
    expect(await answers(url!)).toBe(false);
    await waitFor('the simulator server handle to go', () => listening() === before, { timeoutMs: 5_000, intervalMs: 20 });
  } finally {
    spy.mockRestore();
    for (const w of [first, second]) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runs);
  }
}, 120_000);
