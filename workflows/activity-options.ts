// Activity options shared by the stage workflows: timeouts from the config, one CPU and one GPU queue.
import { ActivityCancellationType, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { PipelineConfig } from '../config/pipeline';

/** Errors that retrying the same activity cannot fix. */
export const NON_RETRYABLE = ['InvalidConfig', 'InvalidInput', 'ArtifactMissing', 'ArtifactCorrupted', 'TrainerConfigError', 'TeacherUnavailable'];

/** GPU-bound work goes to "<workflow task queue>-gpu"; workers serve both unless told otherwise. */
export function gpuQueueOf(taskQueue: string): string {
  return `${taskQueue}-gpu`;
}

export function activityOptions(config: PipelineConfig, queue: 'cpu' | 'gpu'): ActivityOptions {
  return {
    taskQueue: queue === 'gpu' ? gpuQueueOf(workflowInfo().taskQueue) : undefined,
    startToCloseTimeout: `${config.timeouts.activityMinutes} minutes`,
    heartbeatTimeout: `${config.timeouts.heartbeatSeconds} seconds`,
    // A cancelled pipeline ends only after its activities stopped (e.g. the trainer process was killed).
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      maximumAttempts: 5,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  };
}
