// Compress-stage activities under their names from before the one trainerStep activity (the prune steps, ONNX
// export and quantization are trainer steps of the plan now), kept for the compress stages that schedule them.
import type { ArtifactRef } from '../../artifacts/ref';
import type { CompressStepPlan, QuantizePlan } from '../../config/plan';
import { compressStep, EXPORT_STEP } from '../../config/trainer-steps';
import type { TrainedModel, TrainerStepInput } from '../trainer/trainer-step';

type PruneVocabPlan = Extract<CompressStepPlan, { step: 'prune-vocab' }>;
type PruneLayersPlan = Extract<CompressStepPlan, { step: 'prune-layers' }>;

export function createCompressActivities(trainerStep: (input: TrainerStepInput) => Promise<TrainedModel>) {
  const prune = async ({ plan, model, sft }: { plan: PruneVocabPlan | PruneLayersPlan; model: ArtifactRef; sft: ArtifactRef }) =>
    (await trainerStep({ plan: compressStep(plan), inputs: { model, data: sft } })).model;
  const quantize = async ({ plan, model }: { plan: QuantizePlan; model: ArtifactRef }) => (await trainerStep({ plan: compressStep(plan), inputs: { model } })).model;
  return {
    pruneVocab: prune,
    pruneLayers: prune,
    async exportOnnx({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      return (await trainerStep({ plan: EXPORT_STEP, inputs: { model } })).model;
    },
    quantize,
    /** quantize's int8 scheme under its name from before quantize. */
    async quantizeInt8({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      return quantize({ plan: { step: 'int8' }, model });
    },
    /** quantize's int4 scheme under its name from before quantize. */
    async quantizeInt4({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      return quantize({ plan: { step: 'int4' }, model });
    },
  };
}
