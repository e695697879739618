// createActivities(deps): every supertiny activity, built from injected dependencies so that the
// plugin, a test or another worker can supply the store, the environment and the teacher endpoint.
import type { ActivityDeps } from './deps';
import { withTypedFailures } from './failures';
import { createTaskResources, type TaskResources } from './task-resources';
import { checkConfigOnWorker, resolvePlan } from './config-check';
import { secretsOf } from '../config/endpoints';
import type { PipelineConfig, StudentFamilyChoice } from '../config/pipeline';
import type { PipelinePlan } from '../config/plan';
import { createPrototypeActivities } from './prototype/stage-activities';
import { createTransferActivities } from './transfer/activities';
import { createCompressActivities } from './compress/activities';
import { createEvaluateActivities } from './evaluate/activities';
import { createScoreActivities } from './evaluate/score';
import { createTrainerStepActivity } from './trainer/trainer-step';
import { createRefreshActivities } from './refresh/activities';

export type { ActivityDeps } from './deps';
export { createTaskResources, type TaskResources } from './task-resources';

/**
 * `resources` are what the activities share for a worker's lifetime (loaded tasks, the teacher simulator
 * started on first use); whoever passes them closes them (SupertinyPlugin does when its worker stops).
 */
export function createActivities(deps: ActivityDeps, resources: TaskResources = createTaskResources(deps)) {
  const trainerStep = createTrainerStepActivity(deps, resources);
  const scoreActivities = createScoreActivities(deps, resources);
  const { answersOf: _answersOf, ...scoring } = scoreActivities;
  return withTypedFailures({
    /**
     * The pipeline's first activity: the config as the user wrote it (`input`) resolved into the run's plan (its
     * student family chosen from the task's schema when it names none) and checked on the worker, before
     * anything is paid.
     */
    async resolvePlan({ input }: { input: unknown }): Promise<PipelinePlan> {
      return resolvePlan(input, deps.env, resources);
    },
    /** The first activity of runs started before resolvePlan: the checks, and the family it returned alone. */
    async checkPipelineConfig({ config, input }: { config: PipelineConfig; input?: unknown }): Promise<{ studentFamily?: StudentFamilyChoice }> {
      const { studentFamily } = await checkConfigOnWorker(config, deps.env, resources, input);
      return studentFamily ? { studentFamily } : {};
    },
    ...createPrototypeActivities(deps, resources),
    /** Every trainer step of the plan (config/trainer-steps.ts): tokenizer, init, training, prune, export, quantize. */
    trainerStep,
    ...createTransferActivities(deps, trainerStep),
    ...createCompressActivities(trainerStep),
    /** The one scoring activity (scoreModel) and the scoring activities of older histories, with the calibration. */
    ...scoring,
    ...createEvaluateActivities(deps, resources, scoreActivities),
    ...createRefreshActivities(deps, resources),
  }, secretsOf(deps.endpoints ?? [], deps.env.temporalApiKey));
}

export type SupertinyActivities = ReturnType<typeof createActivities>;
