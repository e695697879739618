// `supertiny score --task NAME|FUNCTIONS_FILE [--task-data FILE] [--task-functions FILE] --predictions FILE`:
// scores a predictions file (JSONL {id, prediction, gold?}: a report's, or a model's from elsewhere) with the
// task's own call format and metrics, and prints them as JSON.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { scorePredictions } from '../activities/evaluate/predictions';
import { DEFAULT_TASK_NAME } from '../config/pipeline';
import type { Call } from '../tasks/call-format';
import { loadBuiltInTask } from '../tasks/built-in';
import type { TaskFiles } from '../tasks/registry';

export const SCORE_USAGE =
  'usage: supertiny score --predictions FILE [--task NAME|FUNCTIONS_FILE] [--task-data FILE] [--task-functions FILE]\n' +
  '  --task a built-in task (default "massive") or a functions file (a task from files; give its --task-data)';

export class ScoreUsageError extends Error {
  constructor(message: string) {
    super(`${message}\n${SCORE_USAGE}`);
    this.name = 'ScoreUsageError';
  }
}

/** The task a score command names: a built-in task by name, or a functions file for a task from files. */
export function scoreTaskOf(values: { task?: string; 'task-data'?: string; 'task-functions'?: string }): { name: string; files: TaskFiles } {
  const files: TaskFiles = {};
  if (values['task-data'] !== undefined) files.data = path.resolve(values['task-data']);
  if (values['task-functions'] !== undefined) files.functions = path.resolve(values['task-functions']);
  const task = values.task ?? DEFAULT_TASK_NAME;
  if (/\.(json|ya?ml)$/i.test(task)) return { name: 'from-files', files: { ...files, functions: path.resolve(task) } };
  return { name: task, files };
}

export async function score(args: string[]): Promise<Record<string, unknown>> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: { task: { type: 'string' }, 'task-data': { type: 'string' }, 'task-functions': { type: 'string' }, predictions: { type: 'string' } },
    }));
  } catch (err) {
    throw new ScoreUsageError((err as Error).message);
  }
  if (!values.predictions) throw new ScoreUsageError('--predictions FILE is required');
  const { name, files } = scoreTaskOf(values);
  const task = await loadBuiltInTask(name, files);
  // Lines without their own gold are scored against the task's gold of the same id.
  const goldById = new Map<string, Call>();
  for (const split of task.dataset.splits) {
    for (const example of await task.dataset.load(split)) {
      const gold = task.gold(example);
      if (gold) goldById.set(example.id, gold);
    }
  }
  const text = await fs.readFile(values.predictions, 'utf8');
  return { task: task.displayName, predictions: path.resolve(values.predictions), ...scorePredictions(task, text, goldById) };
}
