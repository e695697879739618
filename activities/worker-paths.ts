// The paths a config names, checked against the operator's roots on the worker: by the config check (the
// pipeline's first activity) and again where they are used (task resources, transfer).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isInside } from '../artifacts/confined-path';
import type { SupertinyEnv } from '../config/env';
import { InvalidConfigError } from '../config/pipeline';
import type { ShapeInitPlan, TaskRef } from '../config/plan';
import type { TaskDefinition, TaskFiles } from '../tasks/registry';

/**
 * The real path of `value` when it lies inside one of `roots`, else an InvalidConfigError naming the field.
 * Containment is checked on the path as written first (nothing outside the roots is touched), then again on
 * its real path (symlinks resolved on both sides). A path that is missing, unreadable or outside gets one
 * message, which lists no roots: the check tells a config nothing about files outside the roots. The file's
 * content is never read here, so none can leak.
 */
export async function pathInRoots(field: string, value: string, roots: readonly string[], rootsVariable: string, kind: 'file' | 'directory' | 'file or directory'): Promise<string> {
  const fail = (message: string) => new InvalidConfigError([{ path: field, message }]);
  if (!path.isAbsolute(value)) throw fail(`must be an absolute path, got ${JSON.stringify(value)}`);
  const notInRoots = fail(`${value} is outside the worker's allowed folders (${rootsVariable}) or cannot be read`);
  const realRoots = await Promise.all(roots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
  const inRoots = (file: string) => [...roots, ...realRoots].some((root) => isInside(file, root));
  const resolved = path.resolve(value);
  if (!inRoots(resolved)) throw notInRoots;
  const real = await fs.realpath(resolved).catch(() => {
    throw notInRoots;
  });
  if (!realRoots.some((root) => isInside(real, root))) throw notInRoots;
  const stat = await fs.stat(real).catch(() => {
    throw notInRoots;
  });
  const fits = kind === 'file' ? stat.isFile() : kind === 'directory' ? stat.isDirectory() : stat.isFile() || stat.isDirectory();
  if (!fits) throw fail(`${value} is not a ${kind}`);
  return real;
}

/**
 * The first member of `dir` (a relative path) that is a symlink whose target is missing or lies outside
 * `realRoots`; links to folders inside the roots are followed and checked the same way.
 */
async function linkOutOfRoots(dir: string, realRoots: readonly string[], seen = new Set<string>()): Promise<string | undefined> {
  seen.add(dir);
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isSymbolicLink()) continue;
    const member = path.join(entry.parentPath, entry.name);
    const target = await fs.realpath(member).catch(() => undefined);
    if (!target || !realRoots.some((root) => isInside(target, root))) return path.relative(dir, member);
    const isFolder = (await fs.stat(target).catch(() => undefined))?.isDirectory() ?? false;
    if (isFolder && !seen.has(target)) {
      const inner = await linkOutOfRoots(target, realRoots, seen);
      if (inner !== undefined) return path.join(path.relative(dir, member), inner);
    }
  }
  return undefined;
}

/**
 * The files a config's task reads, as checked real paths inside the data roots: task.dataPath (or the task's
 * default data file) and task.functionsPath, each required, allowed or refused as the registered task says.
 */
export async function taskFiles(config: { task: TaskRef }, env: SupertinyEnv, definition: TaskDefinition): Promise<TaskFiles> {
  const fail = (field: string, message: string) => new InvalidConfigError([{ path: field, message }]);
  const named = { data: config.task.dataPath, functions: config.task.functionsPath };
  const fields = { data: 'task.dataPath', functions: 'task.functionsPath' } as const;
  const files: TaskFiles = {};
  for (const kind of ['data', 'functions'] as const) {
    const use = definition.files[kind];
    const value = named[kind];
    if (use === 'none' && value !== undefined) throw fail(fields[kind], `task "${definition.name}" reads no ${kind} file`);
    if (use === 'required' && value === undefined) throw fail(fields[kind], `task "${definition.name}" needs a ${kind} file`);
    if (value !== undefined) files[kind] = await pathInRoots(fields[kind], value, env.dataRoots, 'SUPERTINY_DATA_ROOTS', 'file');
  }
  // The worker's own default is the operator's choice: it is not held to the roots.
  if (files.data === undefined && definition.files.data === 'optional') files.data = definition.defaultDataPath?.(env);
  return files;
}

export async function baseModelPath(env: SupertinyEnv, student: { baseModelPath?: string }, field: ShapeInitPlan['field']): Promise<string | undefined> {
  if (student.baseModelPath === undefined) return undefined;
  const dir = await pathInRoots(field, student.baseModelPath, env.modelRoots, 'SUPERTINY_MODEL_ROOTS', 'directory');
  await fs.access(path.join(dir, 'config.json')).catch(() => {
    throw new InvalidConfigError([{ path: field, message: `${student.baseModelPath} has no config.json: not a Hugging Face model folder` }]);
  });
  // The trainer follows links inside the folder: each must stay inside the model roots as well.
  const realRoots = await Promise.all(env.modelRoots.map((r) => fs.realpath(r).catch(() => path.resolve(r))));
  const link = await linkOutOfRoots(dir, realRoots);
  if (link !== undefined) {
    throw new InvalidConfigError([{ path: field, message: `${student.baseModelPath} has a member (${link}) that links outside the worker's allowed folders (SUPERTINY_MODEL_ROOTS) or to nothing` }]);
  }
  return dir;
}
