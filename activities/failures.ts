// Turns domain errors into Temporal failures with stable types, so workflows and retry policies can
// tell "retry this" from "re-run the producer" from "the input is wrong".
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { FailureType, SupertinyError } from '../config/failure-types';
import { scrubSecrets } from '../config/endpoints';

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

/** `value` with every string in it scrubbed (failure details: a trainer's stderr lines...); itself when nothing changed. */
function scrubbedValue(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return scrubSecrets(value, secrets);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const items = value.map((v) => scrubbedValue(v, secrets, depth + 1));
    return items.every((v, i) => v === value[i]) ? value : items;
  }
  const entries = Object.entries(value);
  const clean = entries.map(([k, v]) => [k, scrubbedValue(v, secrets, depth + 1)] as const);
  return clean.every(([, v], i) => v === entries[i][1]) ? value : Object.fromEntries(clean);
}

/**
 * The error with every secret, and anything shaped like a credential, replaced in its message, stack,
 * details and causes: a key must never reach workflow history, and the texts failures quote (an endpoint's
 * error, the trainer's stderr) may carry one. An error with nothing to scrub is returned as it is.
 */
function scrubbed(err: unknown, secrets: readonly string[], depth = 0): unknown {
  if (!(err instanceof Error) || depth > 8) return err;
  const message = scrubSecrets(err.message, secrets);
  const stack = err.stack === undefined ? undefined : scrubSecrets(err.stack, secrets);
  const cause: unknown = err.cause;
  const cleanCause = scrubbed(cause, secrets, depth + 1);
  const details = err instanceof ApplicationFailure && err.details ? scrubbedValue(err.details, secrets) : undefined;
  const detailsChanged = err instanceof ApplicationFailure && details !== err.details;
  if (message === err.message && stack === err.stack && cleanCause === cause && !detailsChanged) return err;
  if (err instanceof ApplicationFailure) {
    const clean = ApplicationFailure.create({
      message,
      type: err.type ?? undefined,
      nonRetryable: err.nonRetryable ?? undefined,
      details: details ? [...(details as unknown[])] : undefined,
      cause: cleanCause instanceof Error ? cleanCause : undefined,
      nextRetryDelay: err.nextRetryDelay ?? undefined,
      category: err.category ?? undefined,
    });
    if (stack !== undefined) clean.stack = stack;
    return clean;
  }
  const clean = new Error(message, cleanCause instanceof Error ? { cause: cleanCause } : undefined);
  clean.name = err.name;
  if (stack !== undefined) clean.stack = stack;
  return clean;
}

/**
 * Wraps every activity so that domain errors leave the worker as typed failures, with the worker's
 * secrets (the teacher endpoints' keys) scrubbed from their messages, stacks, details and causes.
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
