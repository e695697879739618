// What the schema cannot check because it depends on the worker: the teacher endpoint and models exist
// here, and every path a config names lies inside the operator's roots. Runs as the pipeline's first
// activity, so a bad config fails before the teacher is paid; path checks run again where paths are used.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InvalidConfigError, type PipelineConfig } from '../config/pipeline';
import type { SupertinyEnv } from '../config/env';
import type { TaskResources } from './task-resources';

function within(file: string, root: string): boolean {
  const relative = path.relative(root, file);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * The real path of `value` when it lies inside one of `roots` (symlinks resolved on both sides), else an
 * InvalidConfigError naming the field. The file's content is never read here, so none can leak.
 */
export async function pathInRoots(field: string, value: string, roots: readonly string[], rootsVariable: string, kind: 'file' | 'directory'): Promise<string> {
  const fail = (message: string) => new InvalidConfigError([{ path: field, message }]);
  if (!path.isAbsolute(value)) throw fail(`must be an absolute path, got ${JSON.stringify(value)}`);
  const real = await fs.realpath(value).catch((err: NodeJS.ErrnoException) => {
    throw fail(`${value} does not exist or cannot be read (${err.code ?? 'error'})`);
  });
  const realRoots = await Promise.all(roots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
  if (!realRoots.some((root) => within(real, root))) {
    throw fail(`${value} is outside the worker's allowed folders (${rootsVariable}: ${roots.join(path.delimiter)})`);
  }
  const stat = await fs.stat(real);
  if (kind === 'file' ? !stat.isFile() : !stat.isDirectory()) throw fail(`${value} is not a ${kind}`);
  return real;
}

/** The task's data file: the config's (inside the data roots) or the worker's own default. */
export async function taskDataPath(config: PipelineConfig, env: SupertinyEnv): Promise<string> {
  if (config.task.dataPath === undefined) return env.massivePath;
  return pathInRoots('task.dataPath', config.task.dataPath, env.dataRoots, 'SUPERTINY_DATA_ROOTS', 'file');
}

export async function baseModelPath(config: PipelineConfig, env: SupertinyEnv, student: { baseModelPath?: string } = config.transfer.student): Promise<string | undefined> {
  if (student.baseModelPath === undefined) return undefined;
  const field = student === config.transfer.kdTeacher ? 'transfer.kdTeacher.baseModelPath' : 'transfer.student.baseModelPath';
  const dir = await pathInRoots(field, student.baseModelPath, env.modelRoots, 'SUPERTINY_MODEL_ROOTS', 'directory');
  await fs.access(path.join(dir, 'config.json')).catch(() => {
    throw new InvalidConfigError([{ path: field, message: `${student.baseModelPath} has no config.json: not a Hugging Face model folder` }]);
  });
  return dir;
}

/** Every worker-side check of a config; throws InvalidConfigError (non-retryable) naming the field. */
export async function checkConfigOnWorker(config: PipelineConfig, env: SupertinyEnv, resources: TaskResources): Promise<void> {
  resources.checkTeacher(config);
  if (config.teacher.judge.enabled) resources.checkTeacher(config, config.teacher.judge.model);
  await taskDataPath(config, env);
  await baseModelPath(config, env);
  if (config.transfer.steps.includes('kd')) await baseModelPath(config, env, config.transfer.kdTeacher);
}
