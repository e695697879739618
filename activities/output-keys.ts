// Every memoised activity's output key, derived in this one place from everything its output depends on:
// the config fields it reads (CONFIG_READ), its input artifacts' hashes, the resolved teacher endpoint and
// model, and the code version of both sides (TypeScript and the Python trainer). A repeated activity
// reuses its output; a changed input, field or code never reuses a stale one.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { outputKey } from '../artifacts/store';
import { DEFAULT_TASK_NAME, type PipelineConfig, type TransferStep } from '../config/pipeline';
import { DEFAULT_ENCODER_BASE } from '../config/encoder-bases';
import { trainingStepConfig } from './trainer/step-config';

/**
 * The config fields each activity's output depends on. evaluateModels writes the whole config into the
 * report, so all of it is part of its key. A test changes every field in turn against this table.
 */
export const CONFIG_READ = {
  // The task's name and functions file join the key only when set, so the default task's keys stay as they were.
  prepareTaskData: (c: PipelineConfig) => ({
    ...(c.task.name !== DEFAULT_TASK_NAME ? { name: c.task.name } : {}),
    dataPath: c.task.dataPath ?? null,
    ...(c.task.functionsPath !== undefined ? { functionsPath: c.task.functionsPath } : {}),
    trainLimit: c.task.trainLimit,
    devLimit: c.task.devLimit,
    testLimit: c.task.testLimit,
  }),
  labelBatch: (c: PipelineConfig) => ({
    endpoint: c.teacher.endpoint,
    model: c.teacher.model,
    temperature: c.teacher.temperature,
    samples: c.teacher.samples,
    batchSize: c.teacher.batchSize,
  }),
  // Without a judge, no teacher is asked here; with one, its answers and cost are part of the output.
  assembleDataset: (c: PipelineConfig) => ({
    voteThreshold: c.teacher.voteThreshold,
    judge: c.teacher.judge,
    teacher: c.teacher.judge.enabled ? { endpoint: c.teacher.endpoint, model: c.teacher.model } : null,
  }),
  trainTokenizer: (c: PipelineConfig) => ({ vocabSize: c.transfer.student.family === 'decoder' ? c.transfer.student.vocabSize : null }),
  initStudent: (c: PipelineConfig) =>
    c.transfer.student.family === 'decoder'
      ? { student: c.transfer.student, kdTeacher: c.transfer.steps.includes('kd') ? c.transfer.kdTeacher : null, seed: c.transfer.seed }
      : null,
  // A registry base other than the default joins the key (its files' hashes do too), so the default's keys stay as they were.
  encoderBase: (c: PipelineConfig) => ({
    baseModelPath: c.transfer.student.family === 'encoder' ? (c.transfer.student.baseModelPath ?? null) : null,
    ...(c.transfer.student.family === 'encoder' && c.transfer.student.base !== undefined && c.transfer.student.base !== DEFAULT_ENCODER_BASE
      ? { base: c.transfer.student.base }
      : {}),
  }),
  trainStudent: (c: PipelineConfig) => Object.fromEntries(c.transfer.steps.map((step: TransferStep) => [step, trainingStepConfig(c.transfer, step)])),
  scoreStudentOnDev: () => ({}),
  scoreOnDev: () => ({}),
  calibrateConfidence: () => ({}),
  cascadeOnSplit: () => ({}),
  pruneVocab: (c: PipelineConfig) => (c.transfer.student.family === 'encoder' ? { minCount: c.compress.pruneVocabMinCount } : null),
  pruneLayers: (c: PipelineConfig) =>
    c.transfer.student.family === 'encoder' ? { layers: c.compress.pruneLayersKeep, epochs: c.compress.pruneLayersEpochs, seed: c.transfer.seed } : null,
  exportOnnx: () => ({}),
  quantizeInt8: () => ({}),
  quantizeInt4: () => ({}),
  evaluateModels: (c: PipelineConfig) => c,
} as const;

export type MemoisedActivity = keyof typeof CONFIG_READ;

/** What a teacher's answers and their cost depend on (never its key). */
export interface TeacherKeyParts {
  endpoint: string;
  model: string;
  prices: unknown;
}

export interface OutputKeyParts {
  /** The config fields the activity reads: CONFIG_READ[activity](config), or a part of it for one step. */
  config: unknown;
  /** Hashes (or null) of the input artifacts and other inputs (batch index, step name, files). */
  inputs: Record<string, unknown>;
  teacher?: TeacherKeyParts;
}

const versions = new Map<string, Promise<{ ts: string; trainer: string }>>();

/** Hashes of the TypeScript that computes outputs and of the trainer: an upgrade never reuses an old output. */
export function codeVersions(projectRoot: string): Promise<{ ts: string; trainer: string }> {
  let version = versions.get(projectRoot);
  if (!version) {
    version = Promise.all([
      hashSources(projectRoot, ['activities', 'artifacts', 'config', 'runtime', 'tasks'], ['.ts'], ['package-lock.json']),
      hashSources(path.join(projectRoot, 'trainer'), ['supertiny_trainer'], ['.py'], ['requirements.txt']),
    ]).then(([ts, trainer]) => ({ ts, trainer }));
    version.catch(() => versions.delete(projectRoot));
    versions.set(projectRoot, version);
  }
  return version;
}

/** The output key of `activity` (with `variant`, e.g. a step name, kept readable in the key's prefix). */
export async function activityOutputKey(projectRoot: string, activity: MemoisedActivity, parts: OutputKeyParts, variant?: string): Promise<string> {
  return outputKey(variant ? `${activity}-${variant}` : activity, { ...parts, teacher: parts.teacher ?? null, code: await codeVersions(projectRoot) });
}

async function hashSources(root: string, dirs: string[], extensions: string[], files: string[]): Promise<string> {
  const walk = async (dir: string): Promise<string[]> => {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    const nested = await Promise.all(
      entries.map((e) => {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) return e.name === 'node_modules' || e.name === '__pycache__' ? Promise.resolve([]) : walk(full);
        return Promise.resolve(extensions.some((x) => e.name.endsWith(x)) ? [full] : []);
      }),
    );
    return nested.flat();
  };
  const all = [...(await Promise.all(dirs.map((d) => walk(path.join(root, d))))).flat().sort(), ...files.map((f) => path.join(root, f))];
  const hash = createHash('sha256');
  for (const file of all) hash.update(path.relative(root, file)).update('\0').update(await fs.readFile(file)).update('\0');
  return hash.digest('hex').slice(0, 16);
}
