// Stage 1: the teacher labels the unlabelled train traffic in batches; rejection sampling keeps what
// the samples agree on. Continues as new every `teacher.batchesPerRun` batches so history stays bounded.
import { continueAsNew } from '@temporalio/workflow';
import { z } from 'zod';
import { ArtifactRefSchema } from '../artifacts/ref';
import { PipelineConfigSchema } from '../config/pipeline';
import { pipelinePlan } from '../config/plan';
import type { PrototypeResult } from '../activities/types';
import { queueActivities } from './activity-options';
import { checkStageInput, TaskDataSchema } from './stage-input';
import { reportStageProgress } from './stage-progress';

export const PrototypeStageInputSchema = z
  .object({
    config: PipelineConfigSchema,
    /** Carried over by continue-as-new: the prepared task data and the batches labelled by earlier runs. */
    data: TaskDataSchema.optional(),
    labelled: z.array(ArtifactRefSchema).max(100_000).optional(),
    /** Batches labelled concurrently (each batch also has its own request concurrency). */
    parallelBatches: z.number().int().min(1).max(64).optional(),
  })
  .strict();
export type PrototypeStageInput = z.infer<typeof PrototypeStageInputSchema>;

export async function prototypeStage(unchecked: PrototypeStageInput): Promise<PrototypeResult> {
  const input = checkStageInput('prototypeStage', PrototypeStageInputSchema, unchecked);
  const { config } = input;
  const plan = pipelinePlan(config).prototype;
  const cpu = queueActivities(config, 'cpu');
  const data = input.data ?? (await cpu.prepareTaskData({ plan: plan.data }));
  const labelled = [...(input.labelled ?? [])];
  const totalBatches = Math.ceil(data.counts.train / plan.label.batchSize);
  const parallel = input.parallelBatches ?? 2;
  const perRun = plan.batchesPerRun;
  const firstThisRun = labelled.length;

  while (labelled.length < totalBatches) {
    const leftThisRun = perRun - (labelled.length - firstThisRun);
    if (leftThisRun <= 0) {
      await continueAsNew<typeof prototypeStage>({ ...input, data, labelled });
    }
    await reportStageProgress({ stage: 'prototype', step: 'label with teacher', done: labelled.length, total: totalBatches });
    // A window never crosses the run's limit, so a run labels exactly batchesPerRun batches.
    const window = Array.from({ length: Math.min(parallel, totalBatches - labelled.length, leftThisRun) }, (_, i) => labelled.length + i);
    const results = await Promise.all(
      window.map((batchIndex) => cpu.labelBatch({ plan: plan.label, inputs: data.train, batchIndex })),
    );
    labelled.push(...results.map((r) => r.samples));
  }

  await reportStageProgress({ stage: 'prototype', step: 'assemble dataset', done: totalBatches, total: totalBatches });
  return cpu.assembleDataset({ plan: plan.assemble, data, batches: labelled });
}
