// Final stage: the plan's scoring steps on the report split (the teacher, the student checkpoint, the ONNX models,
// the deployed folder), each the one scoreModel activity, then the report of them (report.json, report.html).
import { patched, proxyActivities } from '@temporalio/workflow';
import { z } from 'zod';
import type { SupertinyActivities } from '../activities';
import { PipelineConfigSchema, StudentFamilyChoiceSchema } from '../config/pipeline';
import { pipelinePlan, scoredModel, stepApplies } from '../config/plan';
import type { WriteReportInput } from '../activities/evaluate/activities';
import type { EvaluateResult } from '../activities/types';
import { activityOptions, queueActivities } from './activity-options';
import { SCORE_MODEL_PATCH } from './scoring';
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
  if (!patched(SCORE_MODEL_PATCH)) {
    await reportStageProgress({ stage: 'evaluate', step: 'evaluate models', done: 0, total: 1 });
    return proxyActivities<SupertinyActivities>(activityOptions(input.config, 'cpu')).evaluateModels(input);
  }
  const startedAt = Date.now();
  const cpu = queueActivities(input.config, 'cpu');
  const gpu = queueActivities(input.config, 'gpu');
  const gold = input.prototype.data[input.config.evaluate.split];
  const steps = pipelinePlan(input.config, input.studentFamily).evaluate.steps.filter((step) => stepApplies(step, input));
  const scores: WriteReportInput['scores'] = [];
  for (const [i, step] of steps.entries()) {
    await reportStageProgress({ stage: 'evaluate', step: `score ${step.row}`, done: i, total: steps.length + 1 });
    // The trainer's predict runs where the trainer runs; the teacher and the ONNX models on the CPU queue.
    const queue = step.score.runtime === 'trainer' ? gpu : cpu;
    scores.push({ row: step.row, score: await queue.scoreModel({ plan: step.score, model: scoredModel(step, input), gold }) });
  }
  await reportStageProgress({ stage: 'evaluate', step: 'write report', done: steps.length, total: steps.length + 1 });
  return cpu.writeReport({ ...input, scores, startedAt });
}
