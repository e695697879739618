// Transfer-stage activities: tokenizer, student initialisation and the training steps (sft, dpo, kd),
// each a trainer command whose output folder becomes a directory artifact. Outputs are memoised by
// their inputs, and a retried attempt resumes from the run folder's newest checkpoint.
import * as path from 'node:path';
import type { ArtifactRef } from '../../artifacts/ref';
import type { PipelineConfig } from '../../config/pipeline';
import type { ActivityDeps } from '../deps';
import { baseModelPath } from '../config-check';
import type { PrototypeResult } from '../types';
import { runTrainer, trainerOutputKey, type TrainerCommand } from './trainer-process';

export interface TrainStudentInput {
  config: PipelineConfig;
  step: 'sft' | 'dpo' | 'kd';
  model: ArtifactRef;
  tokenizer: ArtifactRef;
  prototype: Pick<PrototypeResult, 'sft' | 'preferences'>;
  /** For kd: the white-box teacher model folder. */
  teacherModel?: ArtifactRef;
}

export interface TrainedModel extends Record<string, unknown> {
  model: ArtifactRef;
  metrics: Record<string, number>;
}

/** The trainer's config for the student shape (init); a base model folder replaces the shape. */
export function studentInitConfig(student: PipelineConfig['transfer']['student'], seed: number) {
  return student.baseModelPath
    ? { base_model: student.baseModelPath, seed }
    : {
        hidden_size: student.hiddenSize,
        num_layers: student.layers,
        num_heads: student.heads,
        num_kv_heads: student.kvHeads,
        intermediate_size: student.intermediateSize,
        seed,
      };
}

/** The trainer config fields of one training step that come from the pipeline config (not the paths). */
export function trainingStepConfig(t: PipelineConfig['transfer'], step: TrainStudentInput['step']): Record<string, unknown> {
  return {
    epochs: step === 'dpo' ? t.dpoEpochs : t.epochs,
    batch_size: t.batchSize,
    learning_rate: step === 'dpo' ? t.dpoLearningRate : t.learningRate,
    seed: t.seed,
    save_steps: t.checkpointEvery,
    ...(t.maxSteps ? { max_steps: t.maxSteps } : {}),
    // dpo has no dropout field; 0 is left out so that the output keys of earlier runs still match.
    ...(step !== 'dpo' && t.dropout > 0 ? { dropout: t.dropout } : {}),
    ...t.trainer,
  };
}

export function createTransferActivities(deps: ActivityDeps) {
  const { store, env } = deps;

  /** Runs one trainer command in the run folder of `key` and stores its `outputName` folder. */
  async function trainerStep(
    key: string,
    command: TrainerCommand,
    kind: string,
    outputName: string,
    buildConfig: (runDir: string) => Promise<Record<string, unknown>>,
  ): Promise<TrainedModel> {
    const { value } = await store.memo(key, async () => {
      const runDir = await store.workDir(key);
      const done = await runTrainer({ env, command, config: await buildConfig(runDir), runDir });
      const folder = done.outputs[outputName];
      if (!folder) throw new Error(`trainer ${command} reported no "${outputName}" output (outputs: ${Object.keys(done.outputs).join(', ')})`);
      return { model: await store.putDirectory(kind, folder), metrics: numericMetrics(done.metrics) };
    });
    return value;
  }

  const materialize = (ref: ArtifactRef, runDir: string, name: string) => store.materializeDirectory(ref, path.join(runDir, 'inputs', name));

  return {
    async trainTokenizer({ config, sft }: { config: PipelineConfig; sft: ArtifactRef }): Promise<ArtifactRef> {
      const vocabSize = config.transfer.student.vocabSize;
      const key = await trainerOutputKey(env.projectRoot, 'trainTokenizer', { sft: sft.sha256, vocabSize });
      const out = await trainerStep(key, 'tokenizer', 'tokenizer/dir', 'tokenizer', async (runDir) => ({
        data: await store.materializeFile(sft, path.join(runDir, 'inputs', 'sft.jsonl')),
        vocab_size: vocabSize,
      }));
      return out.model;
    },

    async initStudent({
      config,
      tokenizer,
      shape,
    }: {
      config: PipelineConfig;
      tokenizer: ArtifactRef;
      shape?: PipelineConfig['transfer']['student'];
    }): Promise<ArtifactRef> {
      const student = shape ?? config.transfer.student;
      // The checked real path: a config cannot point the trainer outside the worker's model roots.
      const baseModel = await baseModelPath(config, env, student);
      const init = studentInitConfig({ ...student, baseModelPath: baseModel }, config.transfer.seed);
      const key = await trainerOutputKey(env.projectRoot, 'initStudent', { tokenizer: tokenizer.sha256, init });
      const out = await trainerStep(key, 'init', 'model/dir', 'model', async (runDir) => ({
        ...init,
        ...(student.baseModelPath ? {} : { tokenizer: await materialize(tokenizer, runDir, 'tokenizer') }),
      }));
      return out.model;
    },

    async trainStudent(input: TrainStudentInput): Promise<TrainedModel> {
      const { config, step, model, prototype, teacherModel } = input;
      const t = config.transfer;
      const data = step === 'dpo' ? prototype.preferences : prototype.sft;
      if (step === 'kd' && !teacherModel) throw new Error('kd needs a teacher model (transfer.kdTeacher)');
      const common = trainingStepConfig(t, step);
      const key = await trainerOutputKey(env.projectRoot, `train-${step}`, {
        model: model.sha256,
        data: data.sha256,
        teacher: teacherModel?.sha256,
        common,
      });
      return trainerStep(key, step, 'model/dir', 'model', async (runDir) => ({
        ...common,
        model: await materialize(model, runDir, 'model'),
        data: await store.materializeFile(data, path.join(runDir, 'inputs', step === 'dpo' ? 'preferences.jsonl' : 'sft.jsonl')),
        ...(teacherModel ? { teacher: await materialize(teacherModel, runDir, 'teacher') } : {}),
      }));
    },
  };
}

function numericMetrics(metrics: Record<string, unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).filter((e): e is [string, number] => typeof e[1] === 'number'));
}
