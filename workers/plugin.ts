// SupertinyPlugin: one line to give a Temporal worker the supertiny workflows and activities.
//   Worker.create({ connection, taskQueue, plugins: [new SupertinyPlugin({ deps, tasks: [myTask] })] })
import { SimplePlugin } from '@temporalio/plugin';
import type { WorkflowBundleOption } from '@temporalio/worker';
import { createActivities, createTaskResources, type ActivityDeps } from '../activities';
import { createLogger } from '../config/logger';
import { BUILT_IN_TASKS } from '../tasks/built-in';
import { TaskRegistry, type TaskRegistration } from '../tasks/registry';

const log = createLogger('worker');

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
    const deps: ActivityDeps = { ...options.deps, tasks: new TaskRegistry([...BUILT_IN_TASKS, ...(options.tasks ?? [])]) };
    const resources = createTaskResources(deps);
    let runningWorkers = 0;
    super({
      name: 'supertiny',
      activities: createActivities(deps, resources),
      ...(withWorkflows ? (options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }) : {}),
      // The worker's run context: what its activities started for the worker's lifetime (the teacher
      // simulator's server, loaded tasks) is closed when it stops, or when the last of the workers
      // sharing this plugin stops.
      runContext: async (runWorker) => {
        runningWorkers += 1;
        try {
          await runWorker();
        } finally {
          runningWorkers -= 1;
          // Logged, not thrown: the worker has stopped either way, and its own error (if any) is the one to see.
          if (runningWorkers === 0) await resources.close().catch((err) => log.warn(`closing the worker's resources: ${(err as Error).message}`));
        }
      },
    });
  }
}
