// What the schema cannot check because it depends on the worker: the task is registered here and its files
// load, the teacher endpoint and models exist here, and every path a config names lies inside the operator's roots. Runs as the pipeline's first
// activity, so a bad config fails before the teacher is paid; path checks run again where paths are used.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InvalidConfigError, parsePipelineConfig, studentFamilyGiven, type PipelineConfig, type StudentFamilyChoice } from '../config/pipeline';
import type { SupertinyEnv } from '../config/env';
import { isInside } from '../artifacts/confined-path';
import type { TaskResources } from './task-resources';
import type { TaskDefinition, TaskFiles } from '../tasks/registry';
import { studentFamilyChoice, studentFamilyProblem } from '../tasks/argument-kinds';

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
export async function taskFiles(config: PipelineConfig, env: SupertinyEnv, definition: TaskDefinition): Promise<TaskFiles> {
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

export async function baseModelPath(config: PipelineConfig, env: SupertinyEnv, student: { baseModelPath?: string } = config.transfer.student): Promise<string | undefined> {
  if (student.baseModelPath === undefined) return undefined;
  const field = student === config.transfer.kdTeacher ? 'transfer.kdTeacher.baseModelPath' : 'transfer.student.baseModelPath';
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

/**
 * The config resolved with the family chosen from its task's schema, when `input` (the config as the user wrote
 * it) names no student family; the config as it is otherwise. A setting the chosen family refuses is an
 * InvalidConfigError that says the family was chosen and why.
 */
export async function resolveStudentFamily(
  config: PipelineConfig,
  input: unknown,
  resources: TaskResources,
): Promise<{ config: PipelineConfig; studentFamily?: StudentFamilyChoice }> {
  if (input === undefined || studentFamilyGiven(input)) return { config };
  resources.taskDefinition(config);
  const { task } = await resources.loadTask(config);
  const studentFamily = studentFamilyChoice(task);
  try {
    return { config: parsePipelineConfig(input, studentFamily.family), studentFamily };
  } catch (err) {
    if (!(err instanceof InvalidConfigError)) throw err;
    const note = ` (the config names no student family, and "${studentFamily.family}" was chosen from the task's schema: ${studentFamily.reason}; name transfer.student.family to choose another)`;
    throw new InvalidConfigError(err.issues.map((issue) => ({ ...issue, message: issue.message + note })));
  }
}

/**
 * Every worker-side check of a config; throws InvalidConfigError (non-retryable) naming the field. With
 * `input`, the config as the user wrote it, a config that names no student family gets the family its task's
 * schema needs (resolveStudentFamily); the checks run on the resolved config, and the choice is returned.
 */
export async function checkConfigOnWorker(
  provisional: PipelineConfig,
  env: SupertinyEnv,
  resources: TaskResources,
  input?: unknown,
): Promise<{ studentFamily?: StudentFamilyChoice }> {
  resources.taskDefinition(provisional);
  const { config, studentFamily } = await resolveStudentFamily(provisional, input, resources);
  const teacher = resources.checkTeacher(config);
  if (config.teacher.judge.enabled) resources.checkTeacher(config, config.teacher.judge.model);
  const { task } = await resources.loadTask(config);
  const familyProblem = studentFamilyProblem(task, config.transfer.student.family);
  if (familyProblem) throw new InvalidConfigError([{ path: 'transfer.student.family', message: familyProblem }]);
  if (teacher.simulated) {
    // The simulator answers from gold calls: an unlabelled input would get a guess, not a teacher's answer.
    const train = (await task.dataset.load('train')).slice(0, config.task.trainLimit);
    const unlabelled = train.filter((e) => !task.gold(e)).length;
    if (unlabelled > 0) {
      throw new InvalidConfigError([
        {
          path: 'teacher.endpoint',
          message: `the teacher simulator answers from gold calls, and ${unlabelled} of the ${train.length} train inputs of task "${config.task.name}" have none: name a real teacher endpoint (SUPERTINY_TEACHER_ENDPOINTS) or label the train inputs`,
        },
      ]);
    }
  }
  await baseModelPath(config, env);
  if (config.transfer.steps.includes('kd')) await baseModelPath(config, env, config.transfer.kdTeacher);
  return studentFamily ? { studentFamily } : {};
}
