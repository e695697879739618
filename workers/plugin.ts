// SupertinyPlugin: one line to give a Temporal worker the supertiny workflows and activities.
//   Worker.create({ connection, taskQueue, plugins: [new SupertinyPlugin({ deps, tasks: [myTask] })] })
import { SimplePlugin } from '@temporalio/plugin';
import type { WorkflowBundleOption } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { BUILT_IN_TASKS } from '../tasks/built-in';
import { TaskRegistry, type TaskRegistration } from '../tasks/registry';

export interface SupertinyPluginOptions {
  /** What the activities need: the artifact store, the environment, the trainer and teacher endpoints. */
  deps: ActivityDeps;
  /** A prebuilt workflow bundle (tests and replays); by default the workflows are bundled from source. */
  workflowBundle?: WorkflowBundleOption;
  /** Register the workflows too (false for an activity-only worker, e.g. on the GPU queue). */
  workflows?: boolean;
  /**
   * Tasks a config may name by `task.name`, besides the built-in ones (BUILT_IN_TASKS: MASSIVE, the
   * default, and "from-files"): TaskSpecs from defineTask, or TaskDefinitions that load from a config's files.
   */
  tasks?: readonly TaskRegistration[];
}

export const WORKFLOWS_PATH = require.resolve('../workflows');

export class SupertinyPlugin extends SimplePlugin {
  constructor(options: SupertinyPluginOptions) {
    const withWorkflows = options.workflows ?? true;
    super({
      name: 'supertiny',
      activities: createActivities({ ...options.deps, tasks: new TaskRegistry([...BUILT_IN_TASKS, ...(options.tasks ?? [])]) }),
      ...(withWorkflows ? (options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }) : {}),
    });
  }
}
