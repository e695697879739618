// A GPU activity that no worker picks up fails after timeouts.queueMinutes, naming the queue and the role.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { parsePipelineConfig } from '../config/pipeline';
import { transferStage } from '../workflows/transfer';
import { SupertinyPlugin } from '../workers/plugin';
import type { PrototypeResult } from '../activities/types';
import { startTestServer, stopTestServer, testDeps, testEnv, withWorkers, workflowBundle } from './support/temporal';
import { smallPipelineConfig } from './support/pipeline-config';

describe('task queues', () => {
  let server: TestWorkflowEnvironment;

  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await stopTestServer(server);
  });

  test('a worker built on one queue only: the GPU step fails after queueMinutes with the queue and role named', async () => {
    const taskQueue = `cpu-only-${Date.now()}`;
    const env = await testEnv(server.address, { taskQueue });
    const config = parsePipelineConfig(smallPipelineConfig('cpu-only', { timeouts: { queueMinutes: 0.1 } }));
    const ref = { uri: `file:///nowhere/blobs/sha256/00/${'0'.repeat(64)}`, sha256: '0'.repeat(64), bytes: 0, kind: 'sft' };
    const prototype = { data: { train: ref, dev: ref, test: ref, counts: { train: 0, dev: 0, test: 0 } }, sft: ref, preferences: ref, rejected: ref, stats: ref, summary: {} } as PrototypeResult;
    // As the README's one-line example builds it: the plugin on the workflow queue, nothing on "<queue>-gpu".
    const cpuOnly = async () => [
      await Worker.create({ connection: server.nativeConnection, taskQueue, plugins: [new SupertinyPlugin({ deps: testDeps(env), workflowBundle: await workflowBundle() })] }),
    ];
    const started = Date.now();
    const err = await withWorkers(cpuOnly, () =>
      server.client.workflow.execute(transferStage, { taskQueue, workflowId: `${taskQueue}-transfer`, args: [{ config, prototype }] }).catch((e: unknown) => e),
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause?.message).toMatch(new RegExp(`no worker picked up trainerStep \\(trainTokenizer\\) on task queue "${taskQueue}-gpu" within 0.1 minutes`));
    expect(cause?.message).toMatch(/SUPERTINY_WORKER_ROLE=gpu \(or all\)/);
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 120_000);
});
