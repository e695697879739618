// A worker stops on SIGTERM within the shutdown grace period, also when it started the built-in teacher
// simulator and is labelling with it; SupertinyPlugin's run context closes what the worker started, so the
// process exits by itself, held by nothing.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parsePipelineConfig } from '../config/pipeline';
import { prototypeStage } from '../workflows/prototype';
import { smallPipelineConfig } from './support/pipeline-config';
import { waitFor } from './support/fake-endpoint';
import { startTestServer, testEnv } from './support/temporal';
import { startWorkerProcess } from './support/worker-process';

let server: TestWorkflowEnvironment;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.teardown();
});

test('a worker labelling with its built-in teacher simulator exits on SIGTERM within seconds, by itself', async () => {
  const env = await testEnv(server.address, { taskQueue: `sigterm-${Date.now()}` });
  // No teacher URL: the worker starts the simulator in-process when the first labelling needs it.
  const worker = startWorkerProcess(env, { SUPERTINY_TEACHER_URL: '' });
  try {
    await worker.ready;
    const config = parsePipelineConfig(smallPipelineConfig('sigterm', { task: { trainLimit: 400 }, teacher: { batchSize: 200, samples: 3 } }));
    await server.client.workflow.start(prototypeStage, { taskQueue: env.taskQueue, workflowId: `sigterm-${Date.now()}`, args: [{ config }] });
    await waitFor(() => worker.output().includes('started the teacher SIMULATOR'), 'the worker to start the teacher simulator', 60_000);
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => worker.child.once('exit', (code, signal) => resolve({ code, signal })));
    const sentAt = Date.now();
    worker.child.kill('SIGTERM');
    const exit = await Promise.race([exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 15_000))]);
    expect({ exit, output: exit === 'still running' ? worker.output().slice(-2000) : '' }).toEqual({ exit: { code: 0, signal: null }, output: '' });
    // Activities are cancelled at once (no grace period is configured) and the labelling stops with them.
    expect(Date.now() - sentAt).toBeLessThan(5_000);
    // The run context stopped the simulator, and the event loop drained: workers/main.ts did not have to force the exit.
    expect(worker.output()).toMatch(/stopped the teacher SIMULATOR at http:\/\/127\.0\.0\.1:\d+\/v1/);
    expect(worker.output()).not.toContain('still held');
  } finally {
    await worker.kill('SIGKILL');
  }
});
