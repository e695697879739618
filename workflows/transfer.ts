// Stage 2: the student's starting point (per family), then the configured training steps in order.
import { z } from 'zod';
import { ArtifactRefSchema, type ArtifactRef } from '../artifacts/ref';
import { PipelineConfigSchema } from '../config/pipeline';
import { pipelinePlan, type InitPlan, type TrainPlan, type TransferPlan } from '../config/plan';
import { initStep, tokenizerStep, trainingData, trainStep } from '../config/trainer-steps';
import type { TrainedModel } from '../activities/trainer/trainer-step';
import type { TransferResult } from '../activities/types';
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { queueActivities, TRAINER_STEP_PATCH } from './activity-options';
import { scoringSteps, type Scoring } from './scoring';
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
  const { config, prototype, startFrom } = checkStageInput('transferStage', TransferStageInputSchema, input);
  const { transfer, score } = pipelinePlan(config);
  const gpu = queueActivities(config, 'gpu');
  const stage = { gpu, trainer: trainerSteps(gpu, prototype), scoring: scoringSteps(gpu, score), prototype, startFrom };
  return transfer.family === 'encoder' ? encoderTransfer(transfer, stage) : decoderTransfer(transfer, stage);
}

type Gpu = ReturnType<typeof queueActivities>;
type DecoderTransferPlan = Extract<TransferPlan, { family: 'decoder' }>;

/**
 * A decoder whose student (and kd teacher) start from baseModelPath folders trains no tokenizer; runs from before
 * this patch trained one that init never read. The stage makes its plan from the config, not a recorded one, so
 * only the patch tells them apart on replay.
 */
const FOLDER_TOKENIZER_PATCH = 'no-tokenizer-for-folders';

/** The stage's trainer steps: the one trainerStep activity, or the activities by name in a run from before it. */
interface TransferTrainerSteps {
  tokenizer(plan: NonNullable<DecoderTransferPlan['tokenizer']>, sft: ArtifactRef): Promise<ArtifactRef>;
  /** `from`: the tokenizer (none for a baseModelPath folder), or for a registry base (plan.base) the base's converted folder. */
  init(plan: InitPlan, from?: ArtifactRef): Promise<ArtifactRef>;
  train(plan: TrainPlan, model: ArtifactRef, teacherModel?: ArtifactRef): Promise<TrainedModel>;
}

function trainerSteps(gpu: Gpu, prototype: TransferStageInput['prototype']): TransferTrainerSteps {
  if (patched(TRAINER_STEP_PATCH)) {
    return {
      tokenizer: async (plan, sft) => (await gpu.trainerStep({ plan: tokenizerStep(plan), inputs: { data: sft } })).model,
      init: async (plan, from) => (await gpu.trainerStep({ plan: initStep(plan), inputs: !from ? {} : 'base' in plan ? { base: from } : { tokenizer: from } })).model,
      train: (plan, model, teacher) => gpu.trainerStep({ plan: trainStep(plan), inputs: { model, data: prototype[trainingData(plan.step)], ...(teacher ? { teacher } : {}) } }),
    };
  }
  return {
    tokenizer: (plan, sft) => gpu.trainTokenizer({ plan, sft }),
    // Runs from before trainerStep have no registry decoder base and always a tokenizer (both came after).
    init: (plan, tokenizer) => {
      if ('base' in plan) throw ApplicationFailure.nonRetryable('a registry decoder base needs the trainer-step patch', 'InvalidConfig');
      return gpu.initStudent({ plan, tokenizer: tokenizer! });
    },
    train: (plan, model, teacherModel) => gpu.trainStudent({ plan, model, prototype, teacherModel }),
  };
}

interface TransferContext {
  gpu: Gpu;
  trainer: TransferTrainerSteps;
  scoring: Scoring;
  prototype: TransferStageInput['prototype'];
  startFrom?: TransferStageInput['startFrom'];
}

/** Encoder family: the pretrained encoder, then its training steps on the accepted samples (teacher votes as soft targets). */
async function encoderTransfer(plan: Extract<TransferPlan, { family: 'encoder' }>, { gpu, trainer, scoring, prototype, startFrom }: TransferContext): Promise<TransferResult> {
  const total = plan.steps.length + 1;
  await reportStageProgress({ stage: 'transfer', step: startFrom ? 'trained student' : 'pretrained encoder', done: 0, total });
  let model = startFrom ?? (await gpu.encoderBase({ plan: plan.base }));
  const steps: TransferResult['steps'] = [];
  for (const [i, stepPlan] of plan.steps.entries()) {
    const { step } = stepPlan;
    await reportStageProgress({ stage: 'transfer', step, done: 1 + i, total });
    const trained = await trainer.train(stepPlan, model);
    const dev = await scoring.trainer(trained.model, prototype.data.dev);
    steps.push({
      step,
      model: trained.model,
      metrics: { ...trained.metrics, dev_exact_match: dev.exactMatch, dev_intent_accuracy: dev.intentAccuracy, dev_slot_f1: dev.slotF1 },
    });
    model = trained.model;
  }
  return { steps, student: model };
}

/**
 * Decoder family: a tokenizer from the accepted samples and the student from its shape, or the student from a
 * base LLM folder (which brings its tokenizer), then each step; or, with a registry base, the base fetched and
 * converted (it brings its own tokenizer) and the student initialised from it.
 */
async function decoderTransfer(plan: DecoderTransferPlan, context: TransferContext): Promise<TransferResult> {
  const { gpu, trainer, scoring, prototype, startFrom } = context;
  const total = plan.steps.length + 2;
  let tokenizer: ArtifactRef | undefined;
  let model: ArtifactRef;
  if (plan.base) {
    // A registry base (plans made before it have none): its converted folder brings the tokenizer; the schema refuses kd beside it.
    await reportStageProgress({ stage: 'transfer', step: startFrom ? 'trained student' : 'pretrained decoder', done: 0, total });
    const base = startFrom ? undefined : await gpu.decoderBase({ plan: plan.base });
    await reportStageProgress({ stage: 'transfer', step: startFrom ? 'trained student' : 'init student', done: 1, total });
    model = startFrom ?? (await trainer.init(plan.init, base!));
  } else {
    const tokenizerPlan = plan.tokenizer ?? unreadTokenizer(plan.init);
    if (tokenizerPlan) {
      await reportStageProgress({ stage: 'transfer', step: 'tokenizer', done: 0, total });
      // A trained student brings its tokenizer; the kd teacher is still initialised from one trained on the data.
      tokenizer = startFrom && !plan.kdTeacher ? undefined : await trainer.tokenizer(tokenizerPlan, prototype.sft);
    }
    await reportStageProgress({ stage: 'transfer', step: startFrom ? 'trained student' : 'init student', done: 1, total });
    model = startFrom ?? (await trainer.init(plan.init, tokenizer));
  }
  const steps: TransferResult['steps'] = [];
  let kdTeacher: ArtifactRef | undefined;
  for (const [i, stepPlan] of plan.steps.entries()) {
    const { step } = stepPlan;
    if (step === 'kd' && !kdTeacher && plan.kdTeacher) {
      // The white-box teacher for logit distillation: a larger student trained first on the same data.
      await reportStageProgress({ stage: 'transfer', step: 'kd teacher', done: 2 + i, total });
      const teacherInit = await trainer.init(plan.kdTeacher.init, tokenizer);
      kdTeacher = (await trainer.train(plan.kdTeacher.train, teacherInit)).model;
    }
    await reportStageProgress({ stage: 'transfer', step, done: 2 + i, total });
    const trained = await trainer.train(stepPlan, model, step === 'kd' ? kdTeacher : undefined);
    // Dev quality after every step, so the value of each step is visible in the result and the report.
    const dev = await scoring.trainer(trained.model, prototype.data.dev);
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

/** Where the plan has no tokenizer: the one a run from before FOLDER_TOKENIZER_PATCH trained all the same, for its history to replay. */
function unreadTokenizer(init: InitPlan): DecoderTransferPlan['tokenizer'] {
  return 'shape' in init && !patched(FOLDER_TOKENIZER_PATCH) ? { vocabSize: init.shape.vocabSize } : null;
}
