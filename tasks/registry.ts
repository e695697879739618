// The task registry: the tasks a worker knows, by the name a config's `task.name` picks. A task is
// registered with the plugin (`new SupertinyPlugin({ tasks: [...] })`) either as a TaskSpec (its data in
// hand) or as a TaskDefinition that loads its spec from the files a config names. Nothing outside a
// task's own folder knows which task runs: activities, the evaluator and the report reach it through here.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../artifacts/store';
import type { SupertinyEnv } from '../config/env';
import { InvalidConfigError } from '../config/pipeline';
import { TaskSpecError, type TaskSpec } from './define';
import { taskDescription } from './task-description';

/** The files a config names for its task, as real paths already checked against the worker's data roots. */
export interface TaskFiles {
  /** task.dataPath, or the task's default data file. */
  data?: string;
  /** task.functionsPath. */
  functions?: string;
}

/** Whether a task reads a file a config names: it must, it may (else its default), or it takes none. */
export type TaskFileUse = 'required' | 'optional' | 'none';

export interface TaskDefinition {
  /** What a config's `task.name` says to pick this task. */
  name: string;
  files: { data: TaskFileUse; functions: TaskFileUse };
  /** The data file when the config names none (`files.data` "optional"). */
  defaultDataPath?(env: SupertinyEnv): string | undefined;
  /** Builds the spec; errors name the file, line and field (never the content). */
  load(files: TaskFiles): Promise<TaskSpec<any>>;
}

/** What the plugin's `tasks` option takes. */
export type TaskRegistration = TaskDefinition | TaskSpec<any>;

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

function isDefinition(entry: TaskRegistration): entry is TaskDefinition {
  return typeof (entry as TaskDefinition).load === 'function';
}

/** A spec with its data in hand, as a definition that takes no files. */
function staticDefinition(spec: TaskSpec<any>): TaskDefinition {
  return { name: spec.name, files: { data: 'none', functions: 'none' }, load: async () => spec };
}

export class TaskRegistry {
  private readonly byName = new Map<string, TaskDefinition>();

  constructor(entries: readonly TaskRegistration[]) {
    for (const entry of entries) {
      const definition = isDefinition(entry) ? entry : staticDefinition(entry);
      if (!NAME.test(definition.name)) {
        throw new TaskSpecError('name', `task name ${JSON.stringify(definition.name)}: letters, digits, dot, dash and underscore only (1-64)`);
      }
      if (this.byName.has(definition.name)) throw new TaskSpecError('name', `task "${definition.name}" is registered twice`);
      this.byName.set(definition.name, definition);
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** The task a config names, or an InvalidConfigError (non-retryable) that lists the registered ones. */
  require(name: string): TaskDefinition {
    const definition = this.byName.get(name);
    if (!definition) {
      throw new InvalidConfigError([
        { path: 'task.name', message: `no task "${name}" is registered on this worker; it has ${this.names().map((n) => `"${n}"`).join(', ')}` },
      ]);
    }
    return definition;
  }
}

/**
 * What a task's teacher answers, student targets and scores depend on besides its data: its prompt, tools,
 * functions and span arguments. Part of the output keys of the activities that use the task.
 */
export function taskFingerprint(task: TaskSpec<any>): string {
  const description = {
    name: task.name,
    systemPrompt: task.systemPrompt,
    entryTools: task.entryTools,
    maxSteps: task.maxSteps,
    tools: task.toolDefinitions([...task.toolNames, ...task.functionNames]),
    description: taskDescription(task),
  };
  return createHash('sha256').update(canonicalJson(description)).digest('hex');
}
