// createActivities(deps): every supertiny activity, built from injected dependencies so that the
// plugin, a test or another worker can supply the store, the environment and the teacher endpoint.
import type { ActivityDeps } from './deps';
import { withTypedFailures } from './failures';
import { createTaskResources } from './task-resources';
import { createPrototypeActivities } from './prototype/stage-activities';
import { createTransferActivities } from './transfer/activities';
import { createCompressActivities } from './compress/activities';
import { createEvaluateActivities } from './evaluate/activities';

export type { ActivityDeps } from './deps';

export function createActivities(deps: ActivityDeps) {
  const resources = createTaskResources(deps);
  return withTypedFailures({
    ...createPrototypeActivities(deps, resources),
    ...createTransferActivities(deps),
    ...createCompressActivities(deps),
    ...createEvaluateActivities(deps, resources),
  });
}

export type SupertinyActivities = ReturnType<typeof createActivities>;
