// Stage 2: tokenizer, student initialisation, then the configured training steps in order.
import { proxyActivities } from '@temporalio/workflow';
import type { SupertinyActivities } from '../activities';
import type { ArtifactRef } from '../artifacts/ref';
import type { PipelineConfig } from '../config/pipeline';
import type { PrototypeResult, TransferResult } from '../activities/types';
import { activityOptions } from './activity-options';
import { reportStageProgress } from './stage-progress';

export interface TransferStageInput {
  config: PipelineConfig;
  prototype: PrototypeResult;
}

export async function transferStage({ config, prototype }: TransferStageInput): Promise<TransferResult> {
  const gpu = proxyActivities<SupertinyActivities>(activityOptions(config, 'gpu'));
  const total = config.transfer.steps.length + 2;
  await reportStageProgress({ stage: 'transfer', step: 'tokenizer', done: 0, total });
  const tokenizer = await gpu.trainTokenizer({ config, sft: prototype.sft });
  await reportStageProgress({ stage: 'transfer', step: 'init student', done: 1, total });
  let model = await gpu.initStudent({ config, tokenizer });
  const steps: TransferResult['steps'] = [];
  let kdTeacher: ArtifactRef | undefined;
  for (const [i, step] of config.transfer.steps.entries()) {
    if (step === 'kd' && !kdTeacher) {
      // The white-box teacher for logit distillation: a larger student trained first on the same data.
      await reportStageProgress({ stage: 'transfer', step: 'kd teacher', done: 2 + i, total });
      const teacherInit = await gpu.initStudent({ config, tokenizer, shape: config.transfer.kdTeacher });
      kdTeacher = (await gpu.trainStudent({ config, step: 'sft', model: teacherInit, prototype, tokenizer })).model;
    }
    await reportStageProgress({ stage: 'transfer', step, done: 2 + i, total });
    const trained = await gpu.trainStudent({ config, step, model, prototype, tokenizer, teacherModel: step === 'kd' ? kdTeacher : undefined });
    // Dev quality after every step, so the value of each step is visible in the result and the report.
    const dev = await gpu.scoreStudentOnDev({ config, model: trained.model, dev: prototype.data.dev });
    steps.push({
      step,
      model: trained.model,
      metrics: { ...trained.metrics, dev_exact_match: dev.exactMatch, dev_intent_accuracy: dev.intentAccuracy, dev_slot_f1: dev.slotF1 },
    });
    model = trained.model;
  }
  return { tokenizer, steps, student: model };
}
