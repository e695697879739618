// A worker stops on SIGTERM within the shutdown grace period, also when it started the built-in teacher
// simulator and is labelling with it, or runs a trainer; SupertinyPlugin's run context closes what the
// worker started, so the process exits by itself, held by nothing, and leaves no process behind.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startPipeline } from '../client';
import { parsePipelineConfig } from '../config/pipeline';
import { prototypeStage } from '../workflows/prototype';
import { smallPipelineConfig } from './support/pipeline-config';
import { waitFor } from '../runtime/wait-for';
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
  // No simulator URL: the worker starts the simulator in-process when the first labelling needs it.
  const worker = startWorkerProcess(env, { SUPERTINY_SIMULATOR_URL: '' });
  try {
    await worker.ready;
    const config = parsePipelineConfig(smallPipelineConfig('sigterm', { task: { trainLimit: 400 }, teacher: { batchSize: 200, samples: 3 } }));
    await server.client.workflow.start(prototypeStage, { taskQueue: env.taskQueue, workflowId: `sigterm-${Date.now()}`, args: [{ config }] });
    await waitFor('the worker to start the teacher simulator', () => worker.output().includes('started the teacher SIMULATOR'), { timeoutMs: 60_000 });
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
    await fs.rm(env.dataDir, { recursive: true, force: true });
  }
});

/** Whether any process of the group is alive (signal 0 only checks). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a worker stopped by SIGTERM while it trains exits by itself and leaves no trainer process behind', async () => {
  const env = await testEnv(server.address, { taskQueue: `sigterm-training-${Date.now()}` });
  const worker = startWorkerProcess(env, { SUPERTINY_SIMULATOR_URL: '' });
  try {
    await worker.ready;
    // Training long enough to be stopped in the middle.
    const config = smallPipelineConfig('sigterm-training', { transfer: { maxSteps: 2000, checkpointEvery: 100 } });
    await startPipeline(server.client, config, { taskQueue: env.taskQueue });
    const work = path.join(env.dataDir, 'artifacts', 'work');
    // trainer.pid names the trainer, the leader of its own process group.
    const trainer = await waitFor(
      'the sft trainer process to run',
      async () => {
        for (const dir of (await fs.readdir(work).catch(() => [] as string[])).filter((d) => d.startsWith('trainStudent-sft-'))) {
          const owner = await fs.readFile(path.join(work, dir, 'trainer.pid'), 'utf8').then((text) => JSON.parse(text) as { pid: number }, () => undefined);
          if (owner && owner.pid > 0 && groupAlive(owner.pid)) return owner.pid;
        }
        return undefined;
      },
      { timeoutMs: 300_000, intervalMs: 250 },
    );
    worker.child.kill('SIGTERM');
    // The trainer gets SIGTERM with the activity's cancellation (SIGKILL 5 s later); the worker waits for it.
    const { child } = worker;
    const exit = await waitFor('the worker to exit', () => (child.exitCode !== null || child.signalCode !== null) && { code: child.exitCode, signal: child.signalCode }, {
      timeoutMs: 30_000,
    }).catch((err: Error) => `${err.message}:\n${worker.output().slice(-2000)}`);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker.output()).not.toContain('still held');
    expect(groupAlive(trainer)).toBe(false);
  } finally {
    await worker.kill('SIGKILL');
    await fs.rm(env.dataDir, { recursive: true, force: true });
  }
}, 600_000);
