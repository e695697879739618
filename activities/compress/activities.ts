// Compress-stage activities: the encoder's vocabulary pruning (on the PyTorch folder), ONNX export (checked
// against PyTorch logits by the trainer), int8 and int4 weight quantization, each a trainer command whose output
// folder becomes a directory artifact.
import type { ArtifactRef } from '../../artifacts/ref';
import type { PipelineConfig } from '../../config/pipeline';
import type { ActivityDeps } from '../deps';
import { ENCODER_COMMANDS, runTrainer, type TrainerCommand } from '../trainer/trainer-process';
import { activityOutputKey, CONFIG_READ } from '../output-keys';
import * as path from 'node:path';

export function createCompressActivities(deps: ActivityDeps) {
  const { store, env } = deps;

  async function convert(
    activity: 'exportOnnx' | 'quantizeInt8' | 'quantizeInt4',
    command: TrainerCommand,
    kind: string,
    model: ArtifactRef,
    options: Record<string, unknown> = {},
  ): Promise<ArtifactRef> {
    const key = await activityOutputKey(env.projectRoot, activity, { config: CONFIG_READ[activity](), inputs: { model: model.sha256 } });
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
    read: Record<string, unknown>,
    options: Record<string, unknown>,
    model: ArtifactRef,
    sft: ArtifactRef,
  ): Promise<ArtifactRef> {
    const key = await activityOutputKey(env.projectRoot, activity, { config: read, inputs: { model: model.sha256, data: sft.sha256 } });
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

  return {
    /** The encoder's WordPiece vocabulary pruned to the pieces of the sft utterances (plus every single character). */
    async pruneVocab({ config, model, sft }: { config: PipelineConfig; model: ArtifactRef; sft: ArtifactRef }): Promise<ArtifactRef> {
      if (config.transfer.student.family !== 'encoder') throw new Error('pruneVocab: only the encoder student has a WordPiece vocabulary to prune');
      const read = CONFIG_READ.pruneVocab(config)!;
      return pruneFolder('pruneVocab', ENCODER_COMMANDS.pruneVocab, read, { min_count: read.minCount }, model, sft);
    },
    /**
     * The encoder with fewer transformer layers (evenly spaced), recovered by logit distillation from the
     * unpruned model on the sft utterances. A training run: checkpoints, heartbeats and resume as in transfer.
     */
    async pruneLayers({ config, model, sft }: { config: PipelineConfig; model: ArtifactRef; sft: ArtifactRef }): Promise<ArtifactRef> {
      if (config.transfer.student.family !== 'encoder') throw new Error('pruneLayers: only the encoder student has layers to prune here');
      const read = CONFIG_READ.pruneLayers(config)!;
      return pruneFolder('pruneLayers', ENCODER_COMMANDS.pruneLayers, read, { layers: read.layers, epochs: read.epochs, seed: read.seed }, model, sft);
    },
    async exportOnnx({ model }: { config: PipelineConfig; model: ArtifactRef }): Promise<ArtifactRef> {
      return convert('exportOnnx', 'export', 'onnx/dir', model);
    },
    async quantizeInt8({ model }: { config: PipelineConfig; model: ArtifactRef }): Promise<ArtifactRef> {
      return convert('quantizeInt8', 'quantize', 'onnx-int8/dir', model);
    },
    /** The encoder's float graph with 4-bit feed-forward and embedding weights, int8 elsewhere. */
    async quantizeInt4({ config, model }: { config: PipelineConfig; model: ArtifactRef }): Promise<ArtifactRef> {
      if (config.transfer.student.family !== 'encoder') throw new Error('quantizeInt4: only the encoder student has an int4 scheme');
      return convert('quantizeInt4', 'quantize', 'onnx-int4/dir', model, { scheme: 'int4' });
    },
  };
}
