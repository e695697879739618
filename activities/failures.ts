// Turns domain errors into Temporal failures with stable types, so workflows and retry policies can
// tell "retry this" from "re-run the producer" from "the input is wrong".
import { ApplicationFailure } from '@temporalio/common';
import { ArtifactCorruptedError, ArtifactMissingError } from '../artifacts/store';
import { ARTIFACT_CORRUPTED, ARTIFACT_MISSING } from '../artifacts/ref';
import { InvalidConfigError } from '../config/pipeline';
import { EndpointUnavailableError } from './prototype/chat-client';
import { TEACHER_UNAVAILABLE } from './prototype/teacher-outage';

/** Bad user input (dataset lines, task specs): retrying cannot help. */
export class InvalidInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInputError';
  }
}

export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ArtifactCorruptedError) return ApplicationFailure.create({ message: err.message, type: ARTIFACT_CORRUPTED, nonRetryable: true, details: [err.ref] });
  if (err instanceof ArtifactMissingError) return ApplicationFailure.create({ message: err.message, type: ARTIFACT_MISSING, nonRetryable: true, details: [err.ref] });
  if (err instanceof InvalidConfigError) return ApplicationFailure.create({ message: err.message, type: 'InvalidConfig', nonRetryable: true, details: [err.issues] });
  if (err instanceof InvalidInputError) return ApplicationFailure.create({ message: err.message, type: 'InvalidInput', nonRetryable: true });
  if (err instanceof EndpointUnavailableError) return ApplicationFailure.create({ message: err.message, type: TEACHER_UNAVAILABLE, nonRetryable: true, details: [err.statusCounts] });
  return err;
}

type AsyncFn = (...args: any[]) => Promise<unknown>;

/** Wraps every activity so that domain errors leave the worker as typed failures. */
export function withTypedFailures<T extends Record<string, AsyncFn>>(activities: T): T {
  const wrapped: Record<string, AsyncFn> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = {
      async [name](...args: unknown[]) {
        try {
          return await fn(...args);
        } catch (err) {
          throw toActivityFailure(err);
        }
      },
    }[name];
  }
  return wrapped as T;
}
