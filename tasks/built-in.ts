// The tasks every worker registers before the plugin's own: MASSIVE en-US (the embedded default) and
// tasks from files. This list is the one place outside a task's folder that names a task.
import { readEnv } from '../config/env';
import { DEFAULT_TASK_NAME } from '../config/pipeline';
import type { TaskSpec } from './define';
import { fromFilesTaskDefinition } from './from-files';
import { massiveTaskDefinition } from './massive';
import { TaskRegistry, type TaskFiles, type TaskRegistration } from './registry';

export const BUILT_IN_TASKS: readonly TaskRegistration[] = [massiveTaskDefinition, fromFilesTaskDefinition];

/** A built-in task from its files (default: the default task from the environment's data file). */
export async function loadBuiltInTask(name: string = DEFAULT_TASK_NAME, files: TaskFiles = {}): Promise<TaskSpec<any>> {
  const definition = new TaskRegistry(BUILT_IN_TASKS).require(name);
  return definition.load({ ...files, data: files.data ?? definition.defaultDataPath?.(readEnv()) });
}

/** The task a config gets when it names none, from the environment's data file. */
export const loadDefaultTask = () => loadBuiltInTask();
