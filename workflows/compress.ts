// Stage 3: ONNX export, then each compression step behind a dev exact-match gate. Every step is gated
// against the uncompressed ONNX model (not the previous step), so small losses cannot add up unseen.
import { z } from 'zod';
import { isQuantization, PipelineConfigSchema, type Quantization } from '../config/pipeline';
import { pipelinePlan, type CompressStepPlan, type QuantizePlan } from '../config/plan';
import { compressStep, EXPORT_STEP, qatStep } from '../config/trainer-steps';
import type { ArtifactRef } from '../artifacts/ref';
import type { CompressResult, GateDecision } from '../activities/types';
import { patched } from '@temporalio/workflow';
import { queueActivities, TRAINER_STEP_PATCH } from './activity-options';
import { scoringSteps } from './scoring';
import { checkStageInput, PrototypeResultSchema, TransferResultSchema } from './stage-input';
import { reportStageProgress } from './stage-progress';

export const CompressStageInputSchema = z.object({ config: PipelineConfigSchema, prototype: PrototypeResultSchema, transfer: TransferResultSchema }).strict();
export type CompressStageInput = z.infer<typeof CompressStageInputSchema>;

/** Histories recorded before the compress stage calibrated the deployed model's confidence replay without it. */
export const CALIBRATE_CONFIDENCE_PATCH = 'calibrate-confidence';
/** Compress stages from before the one quantize activity schedule quantizeInt8 and quantizeInt4 by name. */
export const QUANTIZE_STEP_PATCH = 'quantize-step';

type Gpu = ReturnType<typeof queueActivities>;

/** The stage's trainer steps: the one trainerStep activity, or the activities by name in a run from before it. */
interface CompressTrainerSteps {
  exportOnnx(model: ArtifactRef): Promise<ArtifactRef>;
  /** A compression step of the plan on `model` (the PyTorch folder for a prune step, the float graph for a quantization); the prune steps read `sft`. */
  compress(plan: CompressStepPlan, model: ArtifactRef, sft: ArtifactRef): Promise<ArtifactRef>;
  /** A trained quantization's training of the PyTorch folder into its grid (decoder-qat), from `sft`. */
  qat(plan: QatPlan, model: ArtifactRef, sft: ArtifactRef): Promise<ArtifactRef>;
}

type QatPlan = QuantizePlan & { qat: NonNullable<QuantizePlan['qat']> };

function trainerSteps(gpu: Gpu): CompressTrainerSteps {
  if (patched(TRAINER_STEP_PATCH)) {
    return {
      exportOnnx: async (model) => (await gpu.trainerStep({ plan: EXPORT_STEP, inputs: { model } })).model,
      compress: async (plan, model, sft) => (await gpu.trainerStep({ plan: compressStep(plan), inputs: { model, data: sft } })).model,
      qat: async (plan, model, sft) => (await gpu.trainerStep({ plan: qatStep(plan), inputs: { model, data: sft } })).model,
    };
  }
  return {
    exportOnnx: (model) => gpu.exportOnnx({ model }),
    compress: (plan, model, sft) => {
      if (plan.step === 'prune-vocab') return gpu.pruneVocab({ plan, model, sft });
      if (plan.step === 'prune-layers') return gpu.pruneLayers({ plan, model, sft });
      if (patched(QUANTIZE_STEP_PATCH)) return gpu.quantize({ plan, model });
      return (plan.step === 'int4' ? gpu.quantizeInt4 : gpu.quantizeInt8)({ model });
    },
    qat: () => {
      // Histories from before the one trainerStep activity predate the trained quantizations too.
      throw new Error('a trained quantization (int4-qat) runs only as a trainerStep');
    },
  };
}

export async function compressStage(input: CompressStageInput): Promise<CompressResult> {
  const { config, prototype, transfer } = checkStageInput('compressStage', CompressStageInputSchema, input);
  const { compress: plan, score } = pipelinePlan(config);
  const gpu = queueActivities(config, 'gpu');
  const cpu = queueActivities(config, 'cpu');
  const trainer = trainerSteps(gpu);
  const tolerance = plan.toleranceExactMatch;
  const total = plan.steps.length + 1;
  await reportStageProgress({ stage: 'compress', step: 'export onnx', done: 0, total });
  const onnx = await trainer.exportOnnx(transfer.student);
  const scoring = scoringSteps(cpu, score);
  const uncompressed = await scoring.onnx(onnx, prototype.data.dev);
  let chosen = onnx;
  let chosenScore = uncompressed;
  // The PyTorch folder behind `chosen`: steps before export (prune-vocab, prune-layers) work on it.
  let folder: ArtifactRef = transfer.student;
  // Its float graph: each quantization scheme starts from it, so a scheme is an alternative to the ones before,
  // not a quantization of them (kept, it replaces them; rolled back, they stay).
  let float = onnx;
  const gates: GateDecision[] = [];
  const quantized: Partial<Record<Quantization, ArtifactRef>> = {};
  for (const [i, stepPlan] of plan.steps.entries()) {
    const { step } = stepPlan;
    await reportStageProgress({ stage: 'compress', step, done: 1 + i, total });
    let candidateFolder = folder;
    let candidate: ArtifactRef;
    if (isQuantization(step) && 'qat' in stepPlan && stepPlan.qat) {
      // Trained into the 4-bit grid from the chosen PyTorch folder, exported, then quantized as its scheme.
      const trained = await trainer.qat({ ...stepPlan, qat: stepPlan.qat }, folder, prototype.sft);
      candidate = await trainer.compress(stepPlan, await trainer.exportOnnx(trained), prototype.sft);
    } else if (isQuantization(step)) {
      candidate = await trainer.compress(stepPlan, float, prototype.sft);
    } else {
      candidateFolder = await trainer.compress(stepPlan, folder, prototype.sft);
      candidate = await trainer.exportOnnx(candidateFolder);
    }
    const candidateScore = await scoring.onnx(candidate, prototype.data.dev);
    const lostPoints = (uncompressed.exactMatch - candidateScore.exactMatch) * 100;
    const stepPoints = (chosenScore.exactMatch - candidateScore.exactMatch) * 100;
    const kept = lostPoints <= tolerance;
    const losses = `lost ${lostPoints.toFixed(2)} points against the uncompressed model (${stepPoints.toFixed(2)} by this step)`;
    gates.push({
      step,
      exactMatchUncompressed: uncompressed.exactMatch,
      exactMatchBefore: chosenScore.exactMatch,
      exactMatchAfter: candidateScore.exactMatch,
      bytesBefore: chosenScore.modelBytes,
      bytesAfter: candidateScore.modelBytes,
      kept,
      reason: kept ? `${losses}, within the tolerance of ${tolerance}` : `rolled back: ${losses}, more than the tolerance of ${tolerance}`,
    });
    if (isQuantization(step)) quantized[step] = candidate;
    if (kept) {
      chosen = candidate;
      chosenScore = candidateScore;
      folder = candidateFolder;
      if (step === 'prune-vocab' || step === 'prune-layers') float = candidate;
    }
  }
  // The folder to deploy: the chosen model with its confidence calibrated on dev (a command histories recorded
  // before this step lack, hence the patch).
  let deployed: CompressResult['deployed'];
  if (patched(CALIBRATE_CONFIDENCE_PATCH)) {
    await reportStageProgress({ stage: 'compress', step: 'calibrate confidence', done: total, total: total + 1 });
    deployed = await cpu.calibrateConfidence({ plan: score, model: chosen, dev: prototype.data.dev });
  }
  return { onnx, ...quantized, chosen, ...(deployed ? { deployed } : {}), gates };
}
