// Final stage: one evaluator scores the teacher, the student checkpoint and the ONNX models on the
// report split and writes report.json and report.html.
import { proxyActivities } from '@temporalio/workflow';
import type { SupertinyActivities } from '../activities';
import type { PipelineConfig, StudentFamilyChoice } from '../config/pipeline';
import type { CompressResult, EvaluateResult, PrototypeResult, TransferResult } from '../activities/types';
import { activityOptions } from './activity-options';
import { reportStageProgress } from './stage-progress';

export interface EvaluateStageInput {
  config: PipelineConfig;
  prototype: PrototypeResult;
  transfer: TransferResult;
  compress: CompressResult;
  /** Present when the config named no student family: the family chosen from the task's schema, and why. */
  studentFamily?: StudentFamilyChoice;
}

export async function evaluateStage(input: EvaluateStageInput): Promise<EvaluateResult> {
  const cpu = proxyActivities<SupertinyActivities>(activityOptions(input.config, 'cpu'));
  await reportStageProgress({ stage: 'evaluate', step: 'evaluate models', done: 0, total: 1 });
  return cpu.evaluateModels(input);
}
