// The one place for the failure types that leave activities and workflows (ApplicationFailure.type), so a
// retry policy, a workflow and a test name the same thing. Safe to import from workflow code: no I/O.
export const FailureType = {
  /** A config field is wrong (schema, worker-side check, endpoints file): retrying cannot help. */
  InvalidConfig: 'InvalidConfig',
  /** A data line or task spec is wrong: retrying cannot help. */
  InvalidInput: 'InvalidInput',
  /** An artifact is gone or its bytes changed: the workflow re-runs the stage that produced it. */
  ArtifactMissing: 'ArtifactMissing',
  ArtifactCorrupted: 'ArtifactCorrupted',
  /** The teacher endpoint failed requests for good, or answered nothing before the deadline. */
  TeacherUnavailable: 'TeacherUnavailable',
  /** An attempt ran out of time while the teacher answered: a retry resumes. */
  TeacherDeadline: 'TeacherDeadline',
  /** The pipeline's teacher spend would pass teacher.maxSpendUsd: retrying cannot help, a bigger budget can. */
  TeacherBudgetReached: 'TeacherBudgetReached',
  /** The trainer refused its config or data (error kinds config, data, missing_model). */
  TrainerConfigError: 'TrainerConfigError',
  /** A late attempt found a newer one running the same trainer: it stops itself. */
  AttemptSuperseded: 'AttemptSuperseded',
  /** Another activity's live trainer holds the run folder: retried later. */
  TrainerBusy: 'TrainerBusy',
  /** No worker picked an activity up within timeouts.queueMinutes. */
  NoWorkerOnQueue: 'NoWorkerOnQueue',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Types for which a retry of the same activity cannot help. */
export const NON_RETRYABLE_FAILURES: FailureType[] = [
  FailureType.InvalidConfig,
  FailureType.InvalidInput,
  FailureType.ArtifactMissing,
  FailureType.ArtifactCorrupted,
  FailureType.TrainerConfigError,
  FailureType.TeacherUnavailable,
  FailureType.TeacherBudgetReached,
];

/** The failure type of a trainer error event's kind. */
export function trainerFailureType(kind: string): string {
  return kind === 'config' || kind === 'data' || kind === 'missing_model' ? FailureType.TrainerConfigError : `Trainer_${kind}`;
}

/**
 * The base of supertiny's own errors: each names its failure type, so one wrapper turns any of them into a
 * typed ApplicationFailure (activities/failures.ts) instead of a list of instanceof checks.
 */
export abstract class SupertinyError extends Error {
  abstract readonly failureType: FailureType;
  /** Whether retrying the same activity could help. */
  readonly retryable: boolean = false;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }

  /** What a workflow may need to react (e.g. the broken artifact's ref). */
  failureDetails(): unknown[] {
    return [];
  }
}
