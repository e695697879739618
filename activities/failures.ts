// Turns domain errors into Temporal failures with stable types, so workflows and retry policies can
// tell "retry this" from "re-run the producer" from "the input is wrong".
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
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

/** Attempts after which an error that is not typed as retryable stops being retried. */
export const ERROR_ATTEMPTS = 5;

/**
 * The retry policy allows many attempts so that killed workers never fail a pipeline; an untyped error
 * (a bug, a broken environment) that has now failed ERROR_ATTEMPTS attempts is made final here instead.
 */
function giveUpOnRepeatedError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  if (err instanceof ApplicationFailure && (err.nonRetryable || WAITS_ARE_PROGRESS.has(err.type ?? ''))) return err;
  const attempt = currentAttempt();
  if (attempt === undefined || attempt < ERROR_ATTEMPTS) return err;
  const type = err instanceof ApplicationFailure ? (err.type ?? 'Error') : err.name || 'Error';
  return ApplicationFailure.create({ message: `${err.message} (attempt ${attempt}; not retried again)`, type, nonRetryable: true, cause: err });
}

/** Retryable failures that mean "come back later", not "this failed": a retry makes progress or waits its turn. */
const WAITS_ARE_PROGRESS = new Set<string>([FailureType.TeacherDeadline, FailureType.TrainerBusy]);

function currentAttempt(): number | undefined {
  try {
    return Context.current().info.attempt;
  } catch {
    return undefined; // called outside an activity (a test)
  }
}

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
          throw scrubbed(giveUpOnRepeatedError(toActivityFailure(err)), secrets);
        }
      },
    }[name];
  }
  return wrapped as T;
}
