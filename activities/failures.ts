// Turns domain errors into Temporal failures with stable types, so workflows and retry policies can
// tell "retry this" from "re-run the producer" from "the input is wrong".
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, SupertinyError } from '../config/failure-types';
import { redact } from '../config/endpoints';

/** Bad user input (dataset lines, task specs): retrying cannot help. */
export class InvalidInputError extends SupertinyError {
  readonly failureType = FailureType.InvalidInput;
}

export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof SupertinyError) {
    return ApplicationFailure.create({ message: err.message, type: err.failureType, nonRetryable: !err.retryable, details: err.failureDetails() });
  }
  return err;
}

type AsyncFn = (...args: any[]) => Promise<unknown>;

/** The error with every secret replaced: a key must never reach workflow history through a message. */
function scrubbed(err: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0 || !(err instanceof Error)) return err;
  const message = redact(err.message, secrets);
  const stack = err.stack === undefined ? undefined : redact(err.stack, secrets);
  if (message === err.message && stack === err.stack) return err;
  if (err instanceof ApplicationFailure) {
    return ApplicationFailure.create({ message, type: err.type ?? undefined, nonRetryable: err.nonRetryable ?? undefined, details: err.details ? [...err.details] : undefined });
  }
  const clean = new Error(message);
  clean.name = err.name;
  if (stack !== undefined) clean.stack = stack;
  return clean;
}

/**
 * Wraps every activity so that domain errors leave the worker as typed failures, with the worker's
 * secrets (the teacher endpoints' keys) scrubbed from their messages.
 */
export function withTypedFailures<T extends Record<string, AsyncFn>>(activities: T, secrets: readonly string[] = []): T {
  const wrapped: Record<string, AsyncFn> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = {
      async [name](...args: unknown[]) {
        try {
          return await fn(...args);
        } catch (err) {
          throw scrubbed(toActivityFailure(err), secrets);
        }
      },
    }[name];
  }
  return wrapped as T;
}
