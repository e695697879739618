// Compress-stage activities: the encoder's vocabulary and layer pruning (on the PyTorch folder), ONNX export
// (checked against PyTorch logits by the trainer) and weight quantization (QUANTIZATIONS), each a trainer step
// whose output folder becomes a directory artifact.
import type { ArtifactRef } from '../../artifacts/ref';
import { QUANTIZATIONS } from '../../config/pipeline';
import type { CompressStepPlan, QuantizePlan } from '../../config/plan';
import type { ActivityDeps } from '../deps';
import { ENCODER_COMMANDS, type TrainerCommand } from '../trainer/trainer-process';
import { createTrainerStep, type StepInputs } from '../trainer/trainer-step';
import { activityOutputKey } from '../output-keys';

type PruneVocabPlan = Extract<CompressStepPlan, { step: 'prune-vocab' }>;
type PruneLayersPlan = Extract<CompressStepPlan, { step: 'prune-layers' }>;

export function createCompressActivities(deps: ActivityDeps) {
  const { env } = deps;
  const trainerStep = createTrainerStep(deps);

  /** The float graph with its weights quantized by `plan.step`'s scheme. */
  async function quantize({ plan, model }: { plan: QuantizePlan; model: ArtifactRef }): Promise<ArtifactRef> {
    const key = await activityOutputKey(env.projectRoot, 'quantize', { plan, inputs: { model: model.sha256 } }, plan.step);
    const config = async (inputs: StepInputs) => ({ model: await inputs.folder(model, 'model'), ...QUANTIZATIONS[plan.step].options });
    return (await trainerStep({ key, command: 'quantize', output: { name: 'model', kind: `onnx-${plan.step}/dir` }, config })).model;
  }

  /** A trainer command that rewrites the encoder's PyTorch folder from the sft utterances (a prune step). */
  async function pruneFolder(
    activity: 'pruneVocab' | 'pruneLayers',
    command: TrainerCommand,
    plan: PruneVocabPlan | PruneLayersPlan,
    options: Record<string, unknown>,
    model: ArtifactRef,
    sft: ArtifactRef,
  ): Promise<ArtifactRef> {
    const key = await activityOutputKey(env.projectRoot, activity, { plan, inputs: { model: model.sha256, data: sft.sha256 } });
    const out = await trainerStep({
      key,
      command,
      output: { name: 'model', kind: 'model/dir' },
      config: async (inputs) => ({ model: await inputs.folder(model, 'model'), data: await inputs.file(sft, 'sft.jsonl'), ...options }),
    });
    return out.model;
  }

  // The prune steps and some quantizations are the encoder's: the config schema refuses them for the decoder family.
  return {
    /** The encoder's WordPiece vocabulary pruned to the pieces of the sft utterances (plus every single character). */
    async pruneVocab({ plan, model, sft }: { plan: PruneVocabPlan; model: ArtifactRef; sft: ArtifactRef }): Promise<ArtifactRef> {
      return pruneFolder('pruneVocab', ENCODER_COMMANDS.pruneVocab, plan, { min_count: plan.minCount }, model, sft);
    },
    /**
     * The encoder with fewer transformer layers (evenly spaced), recovered by logit distillation from the
     * unpruned model on the sft utterances. A training run: checkpoints, heartbeats and resume as in transfer.
     */
    async pruneLayers({ plan, model, sft }: { plan: PruneLayersPlan; model: ArtifactRef; sft: ArtifactRef }): Promise<ArtifactRef> {
      return pruneFolder('pruneLayers', ENCODER_COMMANDS.pruneLayers, plan, { layers: plan.layers, epochs: plan.epochs, seed: plan.seed }, model, sft);
    },
    async exportOnnx({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      const key = await activityOutputKey(env.projectRoot, 'exportOnnx', { plan: {}, inputs: { model: model.sha256 } });
      const out = await trainerStep({ key, command: 'export', output: { name: 'model', kind: 'onnx/dir' }, config: async (inputs) => ({ model: await inputs.folder(model, 'model') }) });
      return out.model;
    },
    quantize,
    /** quantize's int8 scheme under its name from before quantize: compress stages started then still schedule it. */
    async quantizeInt8({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      return quantize({ plan: { step: 'int8' }, model });
    },
    /** quantize's int4 scheme under its name from before quantize. */
    async quantizeInt4({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      return quantize({ plan: { step: 'int4' }, model });
    },
  };
}
