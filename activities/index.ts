// createActivities(deps): every supertiny activity, built from injected dependencies so that the
// plugin, a test or another worker can supply the store, the environment and the teacher endpoint.
import type { ActivityDeps } from './deps';
import { withTypedFailures } from './failures';
import { createTaskResources, type TaskResources } from './task-resources';
import { checkConfigOnWorker } from './config-check';
import { secretsOf } from '../config/endpoints';
import type { PipelineConfig, StudentFamilyChoice } from '../config/pipeline';
import { createPrototypeActivities } from './prototype/stage-activities';
import { createTransferActivities } from './transfer/activities';
import { createCompressActivities } from './compress/activities';
import { createEvaluateActivities } from './evaluate/activities';
import { createRefreshActivities } from './refresh/activities';

export type { ActivityDeps } from './deps';
export { createTaskResources, type TaskResources } from './task-resources';

/**
 * `resources` are what the activities share for a worker's lifetime (loaded tasks, the teacher simulator
 * started on first use); whoever passes them closes them (SupertinyPlugin does when its worker stops).
 */
export function createActivities(deps: ActivityDeps, resources: TaskResources = createTaskResources(deps)) {
  return withTypedFailures({
    /**
     * The pipeline's first activity: worker-side checks of the config, before anything is paid. With `input`
     * (the config as the user wrote it), a config that names no student family gets the one its task's schema
     * needs, returned for the workflow to resolve the config with.
     */
    async checkPipelineConfig({ config, input }: { config: PipelineConfig; input?: unknown }): Promise<{ studentFamily?: StudentFamilyChoice }> {
      return checkConfigOnWorker(config, deps.env, resources, input);
    },
    ...createPrototypeActivities(deps, resources),
    ...createTransferActivities(deps, resources),
    ...createCompressActivities(deps),
    ...createEvaluateActivities(deps, resources),
    ...createRefreshActivities(deps, resources),
  }, secretsOf(deps.endpoints ?? [], deps.env.temporalApiKey));
}

export type SupertinyActivities = ReturnType<typeof createActivities>;
