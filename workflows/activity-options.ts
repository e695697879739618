// Activity options shared by the stage workflows: timeouts from the config, one CPU and one GPU queue.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  TimeoutFailure,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { SupertinyActivities } from '../activities';
import type { TrainerStepInput } from '../activities/trainer/trainer-step';
import { FailureType, NON_RETRYABLE_FAILURES } from '../config/failure-types';
import type { PipelineConfig } from '../config/pipeline';

/** Errors that retrying the same activity cannot fix. */
export const NON_RETRYABLE: string[] = NON_RETRYABLE_FAILURES;

/** Stages from before the one trainerStep activity schedule each trainer step by its own activity name. */
export const TRAINER_STEP_PATCH = 'trainer-step';

/** The failure type when no worker picks up an activity within timeouts.queueMinutes. */
export const NO_WORKER = FailureType.NoWorkerOnQueue;

/** GPU-bound work goes to "<workflow task queue>-gpu"; workers serve both unless told otherwise. */
export function gpuQueueOf(taskQueue: string): string {
  return `${taskQueue}-gpu`;
}

export function activityOptions(config: Pick<PipelineConfig, 'timeouts'>, queue: 'cpu' | 'gpu'): ActivityOptions {
  return {
    taskQueue: queue === 'gpu' ? gpuQueueOf(workflowInfo().taskQueue) : undefined,
    startToCloseTimeout: `${config.timeouts.activityMinutes} minutes`,
    // Without it an activity on a queue that no worker polls waits forever, silently.
    scheduleToStartTimeout: `${config.timeouts.queueMinutes} minutes`,
    heartbeatTimeout: `${config.timeouts.heartbeatSeconds} seconds`,
    // A cancelled pipeline ends only after its activities stopped (e.g. the trainer process was killed).
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      // A worker that dies (SIGKILL, a lost node) costs an attempt: many are allowed, so that crashes never
      // fail a pipeline, while an error that keeps coming back fails after ERROR_ATTEMPTS (activities/failures.ts).
      maximumAttempts: config.timeouts.maxAttempts,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  };
}

/**
 * The stage's activities on one queue, where "no worker picked this up in time" becomes a non-retryable
 * failure that names the queue and the worker role to start.
 */
export function queueActivities(config: Pick<PipelineConfig, 'timeouts'>, queue: 'cpu' | 'gpu') {
  const options = activityOptions(config, queue);
  const activities = proxyActivities<SupertinyActivities>(options);
  const queueName = options.taskQueue ?? workflowInfo().taskQueue;
  return new Proxy(activities, {
    get(target, name) {
      const activity = target[name as keyof typeof target] as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        try {
          return await activity(...args);
        } catch (err) {
          if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'SCHEDULE_TO_START') {
            // trainerStep runs every trainer step: the step's name says which one waited.
            const step = name === 'trainerStep' ? ` (${(args[0] as TrainerStepInput).plan.name})` : '';
            throw ApplicationFailure.nonRetryable(
              `no worker picked up ${String(name)}${step} on task queue "${queueName}" within ${config.timeouts.queueMinutes} minutes: ` +
                `start a worker with SUPERTINY_WORKER_ROLE=${queue} (or all) and SUPERTINY_TASK_QUEUE=${workflowInfo().taskQueue}`,
              NO_WORKER,
            );
          }
          throw err;
        }
      };
    },
  });
}
