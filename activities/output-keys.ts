// Every memoised activity's output key, derived in this one place from everything its output depends on:
// the part of the plan it was given (config/plan.ts), its input artifacts' hashes, the resolved teacher
// endpoint and model, and the code version of both sides (TypeScript and the Python trainer). A repeated
// activity reuses its output; a changed input, plan field or code never reuses a stale one.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { outputKey } from '../artifacts/store';

/** The activities whose outputs are memoised under an output key. */
export type MemoisedActivity =
  | 'prepareTaskData'
  | 'labelBatch'
  | 'assembleDataset'
  | 'encoderBase'
  | 'decoderBase'
  | 'trainerStep'
  | 'scoreModel'
  | 'calibrateConfidence'
  | 'writeReport';

/** What a teacher's answers and their cost depend on (never its key). */
export interface TeacherKeyParts {
  endpoint: string;
  model: string;
  prices: unknown;
}

export interface OutputKeyParts {
  /** The part of the plan the activity was given, less its teacher client settings (TeacherClientPlan). */
  plan: unknown;
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
      hashSources(projectRoot, ['activities', 'artifacts', 'config', 'runtime', 'tasks'], ['.ts'], ['package-lock.json', 'config/decoder-bases.json']),
      hashSources(path.join(projectRoot, 'trainer'), ['supertiny_trainer'], ['.py'], ['requirements.txt']),
    ]).then(([ts, trainer]) => ({ ts, trainer }));
    version.catch(() => versions.delete(projectRoot));
    versions.set(projectRoot, version);
  }
  return version;
}

/**
 * The output key of `activity` (with `variant`, e.g. a step name, kept readable in the key's prefix). A trainer
 * step's key is named by the step alone (trainStudent-sft-…, exportOnnx-…), as when each step was an activity.
 */
export async function activityOutputKey(projectRoot: string, activity: MemoisedActivity, parts: OutputKeyParts, variant?: string): Promise<string> {
  const name = activity === 'trainerStep' && variant ? variant : variant ? `${activity}-${variant}` : activity;
  return outputKey(name, { ...parts, teacher: parts.teacher ?? null, code: await codeVersions(projectRoot) });
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
