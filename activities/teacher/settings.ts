// What the teacher's and the judge's clients share, from the config and the worker's resolved endpoint: used by
// the prototype stage (teacher, judge) and evaluate (the teacher scored on test).
import type { TeacherClientPlan } from '../../config/plan';
import type { TeacherKeyParts } from '../output-keys';
import type { ResolvedTeacher } from '../task-resources';

/**
 * Endpoint, transport, retry and price settings that the teacher's and the judge's clients share. Prices
 * are the endpoint's (the operator's), so the judge's requests count in `costUsd` too.
 */
export function sharedChatSettings(t: Omit<TeacherClientPlan, 'maxSpendUsd'>, teacher: ResolvedTeacher) {
  return {
    // The request cache's key: the endpoint's stable identity (the simulator's port changes every start).
    endpoint: teacher.identity,
    baseURL: teacher.baseURL,
    apiKey: teacher.apiKey,
    model: teacher.model,
    timeoutMs: t.timeoutMs,
    maxRetries: t.maxRetries,
    concurrency: t.concurrency,
    prices: { inputPerMillionTokens: teacher.prices.inputPerMTok, outputPerMillionTokens: teacher.prices.outputPerMTok },
    idempotencyHeader: teacher.idempotencyHeader,
  };
}

/** What a teacher's answers and their cost depend on, for output keys: never the key itself. */
export function teacherKeyParts(teacher: ResolvedTeacher): TeacherKeyParts {
  return { endpoint: teacher.identity, model: teacher.model, prices: teacher.prices };
}
