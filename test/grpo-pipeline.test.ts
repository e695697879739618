// transfer.steps ["sft", "grpo"] end to end on a real Temporal dev server: a tiny student, a few grpo steps.
import { startPipeline } from '../client';
import type { PipelineResult } from '../activities/types';
import { withWorkers } from './support/temporal';
import { usePipelineBed } from './support/pipeline-bed';
import { smallPipelineConfig } from './support/pipeline-config';

describe('grpo in the pipeline', () => {
  const bed = usePipelineBed('grpo-test');

  test('runs sft then grpo, with the reward statistics in the step metrics and the workflow details', async () => {
    const config = smallPipelineConfig('grpo-run', {
      transfer: { steps: ['sft', 'grpo'], maxSteps: 12, grpoMaxSteps: 4, grpoGenerations: 4, batchSize: 16 },
      compress: { steps: [] },
    });
    const handle = await startPipeline(bed.server.client, config, { taskQueue: bed.taskQueue });
    const transfer = bed.server.client.workflow.getHandle(`${handle.workflowId}/transfer`);
    // The metadata query replays the finished child on a worker, so it is asked while they run.
    const [result, metadata] = await withWorkers(bed.workers, async (): Promise<[PipelineResult, { currentDetails: string }]> => {
      const finished = await handle.result();
      return [finished, await transfer.query<{ currentDetails: string }>('__temporal_workflow_metadata')];
    });
    expect(result.status).toBe('completed');
    const steps = result.transfer!.steps;
    expect(steps.map((s) => s.step)).toEqual(['sft', 'grpo']);
    const grpo = steps[1].metrics;
    expect(grpo.steps).toBe(4);
    expect(grpo.final_reward).toBeGreaterThanOrEqual(0);
    expect(grpo.final_reward).toBeLessThanOrEqual(1);
    expect(grpo.final_valid_share).toBeGreaterThanOrEqual(0);
    expect(grpo.final_kl).toBeGreaterThanOrEqual(0);
    expect(grpo.task_functions).toBeGreaterThan(1); // the MASSIVE task's functions reached the trainer
    expect(grpo.dev_exact_match).toBeGreaterThanOrEqual(0);
    expect(result.transfer!.student).toEqual(steps[1].model);

    expect(metadata.currentDetails).toMatch(/^\*\*transfer\*\*: grpo \(\d+\/\d+\) — reward \d\.\d{3}, valid \d+\.\d%, KL \d+\.\d{4}$/);
  }, 900_000);
});
