// Final stage: one evaluator scores the teacher, the student checkpoint and the ONNX models on the
// report split and writes report.json and report.html.
import { proxyActivities } from '@temporalio/workflow';
import { z } from 'zod';
import type { SupertinyActivities } from '../activities';
import { PipelineConfigSchema, StudentFamilyChoiceSchema } from '../config/pipeline';
import type { EvaluateResult } from '../activities/types';
import { activityOptions } from './activity-options';
import { checkStageInput, CompressResultSchema, PrototypeResultSchema, TransferResultSchema } from './stage-input';
import { reportStageProgress } from './stage-progress';

export const EvaluateStageInputSchema = z
  .object({
    config: PipelineConfigSchema,
    prototype: PrototypeResultSchema,
    transfer: TransferResultSchema,
    compress: CompressResultSchema,
    /** Present when the config named no student family: the family chosen from the task's schema, and why. */
    studentFamily: StudentFamilyChoiceSchema.optional(),
  })
  .strict();
export type EvaluateStageInput = z.infer<typeof EvaluateStageInputSchema>;

export async function evaluateStage(unchecked: EvaluateStageInput): Promise<EvaluateResult> {
  const input = checkStageInput('evaluateStage', EvaluateStageInputSchema, unchecked);
  const cpu = proxyActivities<SupertinyActivities>(activityOptions(input.config, 'cpu'));
  await reportStageProgress({ stage: 'evaluate', step: 'evaluate models', done: 0, total: 1 });
  return cpu.evaluateModels(input);
}
