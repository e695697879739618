// How a teacher or judge call that could not finish leaves the activity: as a failure that says what the
// endpoint did, never as a result built from failed requests (which a memo would keep forever).
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../config/failure-types';
import { ActivityDeadlineError } from '../liveness';
import type { ChatClient } from '../../runtime/teacher/chat-client';

/** Failure type of an endpoint that failed requests for good, or answered nothing before the deadline. */
export const TEACHER_UNAVAILABLE = FailureType.TeacherUnavailable;
/** Failure type of an attempt that ran out of time while the endpoint answered: a retry resumes. */
export const TEACHER_DEADLINE = FailureType.TeacherDeadline;

/**
 * Maps a deadline reached while teacher work ran to a failure that names the endpoint's behaviour. An
 * outage (EndpointUnavailableError, see failures.ts) is non-retryable: the client already retried each
 * request within a bounded wait, and retrying the activity would only call a dead endpoint for longer.
 * Nothing of the failed work is stored, so a run after the endpoint recovers redoes it.
 */
export function asTeacherFailure(err: unknown, clients: readonly (ChatClient | undefined)[]): unknown {
  if (err instanceof ActivityDeadlineError) {
    const used = clients.filter((c): c is ChatClient => c !== undefined && c.stats().httpRequests > 0);
    const silent = used.filter((c) => (c.stats().statusCounts['200'] ?? 0) === 0);
    if (silent.length > 0) {
      return ApplicationFailure.create({
        message: `the teacher endpoint answered nothing before the activity's deadline: ${silent.map((c) => c.describeEndpoint()).join('; ')}`,
        type: TEACHER_UNAVAILABLE,
        nonRetryable: true,
      });
    }
    return ApplicationFailure.create({
      message: `${err.message}; a retry resumes from what is done (teacher so far: ${used.map((c) => c.describeEndpoint()).join('; ') || 'no requests sent'})`,
      type: TEACHER_DEADLINE,
    });
  }
  return err;
}
