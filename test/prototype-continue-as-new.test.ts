// Continue-as-new of the prototype stage on a real Temporal dev server: a stage that labels its batches
// over several runs hands every labelled batch on to the next, so its dataset is the one a single run makes.
import { promises as fs } from 'node:fs';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { cancelPipeline, pipelineProgress, startPipeline } from '../client';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import type { PrototypeResult } from '../activities/types';
import { prototypeStage } from '../workflows/prototype';
import { usePipelineBed } from './support/pipeline-bed';
import { smallPipelineConfig } from './support/pipeline-config';
import { createTestWorkers, progressWithin, testDeps, testEnv, withWorkers } from './support/temporal';
import { waitFor } from '../runtime/wait-for';

const bed = usePipelineBed('prototype-can');

// 6 batches of 8 inputs: with 2 batches per run the stage needs 3 runs.
const slice = (batchesPerRun: number): PipelineConfigInput =>
  smallPipelineConfig('continue-as-new', { task: { trainLimit: 48, devLimit: 8, testLimit: 8 }, teacher: { batchSize: 8, samples: 2, batchesPerRun } });

interface RunOfChain {
  runId: string;
  labelBatches: number;
  continuedAsNew: boolean;
}

/** Follows the chain of runs from the first: each run's labelBatch count and how it ended. */
async function runChain(client: Client, workflowId: string, firstRunId: string): Promise<RunOfChain[]> {
  const chain: RunOfChain[] = [];
  for (let runId: string | undefined = firstRunId; runId; ) {
    const history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>> = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events = history.events ?? [];
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'labelBatch').length;
    const next: string | undefined = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    chain.push({ runId, labelBatches: scheduled, continuedAsNew: next !== undefined });
    runId = next;
  }
  return chain;
}

/** Runs the stage to its end with the given workers; returns its result, its chain and the teacher requests it made. */
async function labelOnce(workers: () => ReturnType<typeof bed.workers>, taskQueue: string, input: PipelineConfigInput) {
  const requestsBefore = bed.simulator.stats().chatRequests;
  const handle = await bed.server.client.workflow.start(prototypeStage, {
    taskQueue,
    workflowId: `prototype-can-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
    args: [{ config: parsePipelineConfig(input) }],
  });
  const result: PrototypeResult = await withWorkers(workers, () => handle.result());
  return {
    result,
    chain: await runChain(bed.server.client, handle.workflowId, handle.firstExecutionRunId),
    teacherRequests: bed.simulator.stats().chatRequests - requestsBefore,
  };
}

let single: Awaited<ReturnType<typeof labelOnce>>;

test('the prototype stage continues as new every teacher.batchesPerRun batches and labels the same dataset as one run', async () => {
  single = await labelOnce(bed.workers, bed.taskQueue, slice(100));
  expect(single.chain.map((r) => [r.labelBatches, r.continuedAsNew])).toEqual([[6, false]]);

  // A data folder of its own: nothing memoised by the single run is reused, every batch is labelled again.
  const env = await testEnv(bed.server.address, { taskQueue: `${bed.taskQueue}-chained` });
  try {
    const deps = testDeps(env, { simulatorBaseURL: bed.simulator.url });
    const chained = await labelOnce(() => createTestWorkers(bed.server, env.taskQueue, deps), env.taskQueue, slice(2));

    expect(chained.chain.map((r) => [r.labelBatches, r.continuedAsNew])).toEqual([
      [2, true],
      [2, true],
      [2, false],
    ]);
    expect(new Set(chained.chain.map((r) => r.runId)).size).toBe(3);
    // The chained runs asked the teacher as often as the single run did: they labelled, not reused.
    expect(single.teacherRequests).toBeGreaterThan(0);
    expect(chained.teacherRequests).toBe(single.teacherRequests);
    // Content-addressed: the same hashes are the same labelled data, byte for byte.
    for (const artifact of ['sft', 'preferences', 'rejected', 'stats'] as const) {
      expect({ artifact, sha256: chained.result[artifact].sha256 }).toEqual({ artifact, sha256: single.result[artifact].sha256 });
    }
    expect(chained.result.summary).toEqual(single.result.summary);
  } finally {
    await fs.rm(env.dataDir, { recursive: true, force: true });
  }
}, 120_000);

test("in the pipeline, the stage's last run hands the dataset to the pipeline, which goes on to transfer", async () => {
  expect(single).toBeDefined();
  const handle = await startPipeline(bed.server.client, slice(2), { taskQueue: bed.taskQueue });
  const { progress, result } = await withWorkers(bed.workers, async () => {
    await waitFor('the prototype stage to be done', async () => (await progressWithin(handle))?.stagesDone.includes('prototype'), { timeoutMs: 120_000 });
    const progress = await pipelineProgress(handle);
    // Training is not what this test is about.
    await cancelPipeline(handle, 'prototype stage checked');
    return { progress, result: await handle.result() };
  });
  expect(result.status).toBe('cancelled');
  expect(progress.stagesDone).toEqual(['prototype']);
  expect(progress.stage).toBe('transfer');
  expect(result.prototype?.sft.sha256).toBe(single.result.sft.sha256);
  // The pipeline's child is the chain's first run; the chain went on for three runs.
  const started = (await handle.fetchHistory()).events?.find((e) => e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId?.endsWith('/prototype'));
  const child = started!.childWorkflowExecutionStartedEventAttributes!.workflowExecution!;
  const chain = await runChain(bed.server.client, child.workflowId!, child.runId!);
  expect(chain.map((r) => [r.labelBatches, r.continuedAsNew])).toEqual([
    [2, true],
    [2, true],
    [2, false],
  ]);
}, 180_000);
