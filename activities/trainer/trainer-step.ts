// One trainer step, as every stage runs it: a trainer command in the run folder of its output key, its output
// folder stored as a directory artifact and memoised under that key. runTrainer heartbeats and resumes a
// retried attempt from the newest checkpoint in the run folder, which is the key's, so every attempt finds it.
import * as path from 'node:path';
import type { ArtifactRef } from '../../artifacts/ref';
import type { ActivityDeps } from '../deps';
import { runTrainer, type TrainerCommand } from './trainer-process';

export interface TrainedModel extends Record<string, unknown> {
  model: ArtifactRef;
  metrics: Record<string, number>;
}

/** Where a step's config puts its inputs: copies of artifacts under the run folder's inputs/. */
export interface StepInputs {
  runDir: string;
  /** A directory artifact copied to inputs/<name>; returns its path. */
  folder(ref: ArtifactRef, name: string): Promise<string>;
  /** A file artifact copied to inputs/<name>; returns its path. */
  file(ref: ArtifactRef, name: string): Promise<string>;
}

export interface TrainerStep {
  /** The output key (activityOutputKey): what the step's output depends on. */
  key: string;
  command: TrainerCommand;
  /** The trainer output to store (done.outputs[name]) and the artifact kind it is stored as. */
  output: { name: 'model' | 'tokenizer'; kind: string };
  /** The command's config, its input paths put in place by `inputs`. */
  config: (inputs: StepInputs) => Promise<Record<string, unknown>>;
}

export function createTrainerStep({ store, env }: Pick<ActivityDeps, 'store' | 'env'>) {
  return async function trainerStep({ key, command, output, config }: TrainerStep): Promise<TrainedModel> {
    const { value } = await store.memo(key, async () => {
      const runDir = await store.workDir(key);
      const inputs: StepInputs = {
        runDir,
        folder: (ref, name) => store.materializeDirectory(ref, path.join(runDir, 'inputs', name)),
        file: (ref, name) => store.materializeFile(ref, path.join(runDir, 'inputs', name)),
      };
      const done = await runTrainer({ env, command, config: await config(inputs), runDir });
      const folder = done.outputs[output.name];
      if (!folder) throw new Error(`trainer ${command} reported no "${output.name}" output (outputs: ${Object.keys(done.outputs).join(', ')})`);
      return { model: await store.putDirectory(output.kind, folder), metrics: numericMetrics(done.metrics) };
    });
    return value;
  };
}

function numericMetrics(metrics: Record<string, unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).filter((e): e is [string, number] => typeof e[1] === 'number'));
}
