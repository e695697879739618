// Stage 2: the student's starting point (per family), then the configured training steps in order.
import { z } from 'zod';
import { ArtifactRefSchema, type ArtifactRef } from '../artifacts/ref';
import { PipelineConfigSchema } from '../config/pipeline';
import type { TransferResult } from '../activities/types';
import { queueActivities } from './activity-options';
import { checkStageInput, PrototypeResultSchema } from './stage-input';
import { reportStageProgress } from './stage-progress';

export const TransferStageInputSchema = z
  .object({
    config: PipelineConfigSchema,
    prototype: PrototypeResultSchema,
    /** A trained student folder to continue from instead of the base (a refresh starts from the deployed student's). */
    startFrom: ArtifactRefSchema.optional(),
  })
  .strict();
export type TransferStageInput = z.infer<typeof TransferStageInputSchema>;

export async function transferStage(input: TransferStageInput): Promise<TransferResult> {
  const checked = checkStageInput('transferStage', TransferStageInputSchema, input);
  return checked.config.transfer.student.family === 'encoder' ? encoderTransfer(checked) : decoderTransfer(checked);
}

/** Encoder family: the pretrained encoder, then its training steps on the accepted samples (teacher votes as soft targets). */
async function encoderTransfer({ config, prototype, startFrom }: TransferStageInput): Promise<TransferResult> {
  const gpu = queueActivities(config, 'gpu');
  const total = config.transfer.steps.length + 1;
  await reportStageProgress({ stage: 'transfer', step: startFrom ? 'trained student' : 'pretrained encoder', done: 0, total });
  let model = startFrom ?? (await gpu.encoderBase({ config }));
  const steps: TransferResult['steps'] = [];
  for (const [i, step] of config.transfer.steps.entries()) {
    await reportStageProgress({ stage: 'transfer', step, done: 1 + i, total });
    const trained = await gpu.trainStudent({ config, step, model, prototype });
    const dev = await gpu.scoreStudentOnDev({ config, model: trained.model, dev: prototype.data.dev });
    steps.push({
      step,
      model: trained.model,
      metrics: { ...trained.metrics, dev_exact_match: dev.exactMatch, dev_intent_accuracy: dev.intentAccuracy, dev_slot_f1: dev.slotF1 },
    });
    model = trained.model;
  }
  return { steps, student: model };
}

/** Decoder family: a tokenizer from the accepted samples, the student from its shape (or a base LLM), then each step. */
async function decoderTransfer({ config, prototype, startFrom }: TransferStageInput): Promise<TransferResult> {
  const gpu = queueActivities(config, 'gpu');
  const total = config.transfer.steps.length + 2;
  await reportStageProgress({ stage: 'transfer', step: 'tokenizer', done: 0, total });
  // A trained student brings its tokenizer; the kd teacher is still initialised from one trained on the data.
  const tokenizer = startFrom && !config.transfer.steps.includes('kd') ? undefined : await gpu.trainTokenizer({ config, sft: prototype.sft });
  await reportStageProgress({ stage: 'transfer', step: startFrom ? 'trained student' : 'init student', done: 1, total });
  let model = startFrom ?? (await gpu.initStudent({ config, tokenizer: tokenizer! }));
  const steps: TransferResult['steps'] = [];
  let kdTeacher: ArtifactRef | undefined;
  for (const [i, step] of config.transfer.steps.entries()) {
    if (step === 'kd' && !kdTeacher) {
      // The white-box teacher for logit distillation: a larger student trained first on the same data.
      await reportStageProgress({ stage: 'transfer', step: 'kd teacher', done: 2 + i, total });
      const teacherInit = await gpu.initStudent({ config, tokenizer: tokenizer!, shape: config.transfer.kdTeacher });
      kdTeacher = (await gpu.trainStudent({ config, step: 'sft', model: teacherInit, prototype })).model;
    }
    await reportStageProgress({ stage: 'transfer', step, done: 2 + i, total });
    const trained = await gpu.trainStudent({ config, step, model, prototype, teacherModel: step === 'kd' ? kdTeacher : undefined });
    // Dev quality after every step, so the value of each step is visible in the result and the report.
    const dev = await gpu.scoreStudentOnDev({ config, model: trained.model, dev: prototype.data.dev });
    steps.push({
      step,
      model: trained.model,
      metrics: { ...trained.metrics, dev_exact_match: dev.exactMatch, dev_intent_accuracy: dev.intentAccuracy, dev_slot_f1: dev.slotF1 },
    });
    if (step === 'grpo') {
      // The reward statistics of the finished run in the workflow's details (live values are in the heartbeats).
      const { final_reward: reward, final_valid_share: valid_share, final_kl: kl } = trained.metrics;
      const metrics = Object.fromEntries(Object.entries({ reward, valid_share, kl }).filter(([, v]) => typeof v === 'number'));
      await reportStageProgress({ stage: 'transfer', step, done: 3 + i, total, metrics: { ...metrics, dev_exact_match: dev.exactMatch } });
    }
    model = trained.model;
  }
  return { ...(tokenizer ? { tokenizer } : {}), steps, student: model };
}
