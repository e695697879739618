// Compress-stage activities: ONNX export (checked against PyTorch logits by the trainer) and int8
// weight quantization, each a trainer command whose output folder becomes a directory artifact.
import type { ArtifactRef } from '../../artifacts/ref';
import type { PipelineConfig } from '../../config/pipeline';
import type { ActivityDeps } from '../deps';
import { runTrainer, type TrainerCommand } from '../transfer/trainer-process';
import { activityOutputKey, CONFIG_READ } from '../output-keys';
import * as path from 'node:path';

export function createCompressActivities(deps: ActivityDeps) {
  const { store, env } = deps;

  async function convert(activity: 'exportOnnx' | 'quantizeInt8', command: TrainerCommand, kind: string, model: ArtifactRef): Promise<ArtifactRef> {
    const key = await activityOutputKey(env.projectRoot, activity, { config: CONFIG_READ[activity](), inputs: { model: model.sha256 } });
    const { value } = await store.memo(key, async () => {
      const runDir = await store.workDir(key);
      const input = await store.materializeDirectory(model, path.join(runDir, 'inputs', 'model'));
      const done = await runTrainer({ env, command, config: { model: input }, runDir });
      const folder = done.outputs.model;
      if (!folder) throw new Error(`trainer ${command} reported no "model" output`);
      return { model: await store.putDirectory(kind, folder) };
    });
    return value.model;
  }

  return {
    async exportOnnx({ model }: { config: PipelineConfig; model: ArtifactRef }): Promise<ArtifactRef> {
      return convert('exportOnnx', 'export', 'onnx/dir', model);
    },
    async quantizeInt8({ model }: { config: PipelineConfig; model: ArtifactRef }): Promise<ArtifactRef> {
      return convert('quantizeInt8', 'quantize', 'onnx-int8/dir', model);
    },
  };
}
