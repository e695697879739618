// Compress-stage activities: the encoder's vocabulary pruning (on the PyTorch folder), ONNX export (checked
// against PyTorch logits by the trainer), int8 and int4 weight quantization, each a trainer command whose output
// folder becomes a directory artifact.
import type { ArtifactRef } from '../../artifacts/ref';
import type { CompressStepPlan } from '../../config/plan';
import type { ActivityDeps } from '../deps';
import { ENCODER_COMMANDS, runTrainer, type TrainerCommand } from '../trainer/trainer-process';
import { activityOutputKey } from '../output-keys';
import * as path from 'node:path';

type PruneVocabPlan = Extract<CompressStepPlan, { step: 'prune-vocab' }>;
type PruneLayersPlan = Extract<CompressStepPlan, { step: 'prune-layers' }>;

export function createCompressActivities(deps: ActivityDeps) {
  const { store, env } = deps;

  async function convert(
    activity: 'exportOnnx' | 'quantizeInt8' | 'quantizeInt4',
    command: TrainerCommand,
    kind: string,
    model: ArtifactRef,
    options: Record<string, unknown> = {},
  ): Promise<ArtifactRef> {
    const key = await activityOutputKey(env.projectRoot, activity, { plan: {}, inputs: { model: model.sha256 } });
    const { value } = await store.memo(key, async () => {
      const runDir = await store.workDir(key);
      const input = await store.materializeDirectory(model, path.join(runDir, 'inputs', 'model'));
      const done = await runTrainer({ env, command, config: { model: input, ...options }, runDir });
      const folder = done.outputs.model;
      if (!folder) throw new Error(`trainer ${command} reported no "model" output`);
      return { model: await store.putDirectory(kind, folder) };
    });
    return value.model;
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
    const { value } = await store.memo(key, async () => {
      const runDir = await store.workDir(key);
      const done = await runTrainer({
        env,
        command,
        config: {
          model: await store.materializeDirectory(model, path.join(runDir, 'inputs', 'model')),
          data: await store.materializeFile(sft, path.join(runDir, 'inputs', 'sft.jsonl')),
          ...options,
        },
        runDir,
      });
      const folder = done.outputs.model;
      if (!folder) throw new Error(`trainer ${command} reported no "model" output`);
      return { model: await store.putDirectory('model/dir', folder) };
    });
    return value.model;
  }

  // The prune steps and int4 are the encoder's: the config schema refuses them for the decoder family.
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
      return convert('exportOnnx', 'export', 'onnx/dir', model);
    },
    async quantizeInt8({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      return convert('quantizeInt8', 'quantize', 'onnx-int8/dir', model);
    },
    /** The encoder's float graph with 4-bit feed-forward and embedding weights, int8 elsewhere. */
    async quantizeInt4({ model }: { model: ArtifactRef }): Promise<ArtifactRef> {
      return convert('quantizeInt4', 'quantize', 'onnx-int4/dir', model, { scheme: 'int4' });
    },
  };
}
