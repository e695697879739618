// Stage 3: ONNX export, then each compression step behind a dev exact-match gate.
import type { PipelineConfig } from '../config/pipeline';
import type { CompressResult, GateDecision, PrototypeResult, TransferResult } from '../activities/types';
import { queueActivities } from './activity-options';
import { reportStageProgress } from './stage-progress';

export interface CompressStageInput {
  config: PipelineConfig;
  prototype: PrototypeResult;
  transfer: TransferResult;
}

export async function compressStage({ config, prototype, transfer }: CompressStageInput): Promise<CompressResult> {
  const gpu = queueActivities(config, 'gpu');
  const cpu = queueActivities(config, 'cpu');
  const total = config.compress.steps.length + 1;
  await reportStageProgress({ stage: 'compress', step: 'export onnx', done: 0, total });
  const onnx = await gpu.exportOnnx({ config, model: transfer.student });
  let chosen = onnx;
  let baseline = await cpu.scoreOnDev({ config, model: onnx, dev: prototype.data.dev });
  const gates: GateDecision[] = [];
  let int8: CompressResult['int8'];
  for (const [i, step] of config.compress.steps.entries()) {
    await reportStageProgress({ stage: 'compress', step, done: 1 + i, total });
    const candidate = await gpu.quantizeInt8({ config, model: chosen });
    const score = await cpu.scoreOnDev({ config, model: candidate, dev: prototype.data.dev });
    const lostPoints = (baseline.exactMatch - score.exactMatch) * 100;
    const kept = lostPoints <= config.compress.toleranceExactMatch;
    gates.push({
      step,
      exactMatchBefore: baseline.exactMatch,
      exactMatchAfter: score.exactMatch,
      kept,
      reason: kept
        ? `lost ${lostPoints.toFixed(2)} points, within the tolerance of ${config.compress.toleranceExactMatch}`
        : `rolled back: lost ${lostPoints.toFixed(2)} points, more than the tolerance of ${config.compress.toleranceExactMatch}`,
    });
    if (step === 'int8') int8 = candidate;
    if (kept) {
      chosen = candidate;
      baseline = score;
    }
  }
  return { onnx, int8, chosen, gates };
}
