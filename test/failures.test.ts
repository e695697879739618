// supertiny's errors share one base class that names its failure type; one wrapper types them all.
import { ApplicationFailure } from '@temporalio/common';
import { ERROR_ATTEMPTS, toActivityFailure, withTypedFailures, InvalidInputError } from '../activities/failures';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { ArtifactCorruptedError, ArtifactMissingError } from '../artifacts/store';
import { FailureType, NON_RETRYABLE_FAILURES, SupertinyError } from '../config/failure-types';
import { EndpointConfigError } from '../config/endpoints';
import { InvalidConfigError } from '../config/pipeline';
import { MassiveDataError } from '../tasks/massive/data';
import { EndpointUnavailableError } from '../runtime/teacher/chat-client';
import { TeacherBudgetError } from '../activities/teacher/spend-ledger';

const spend = { spentUsd: 24.99, reservedUsd: 0.01, paidRequests: 70_000, budgetUsd: 25, estimateUsd: 0.003 };

const ref = { uri: 'file:///x', sha256: 'a'.repeat(64), bytes: 1, kind: 'sft' };

test.each([
  [new InvalidConfigError([{ path: 'teacher.samples', message: 'too small' }]), FailureType.InvalidConfig, [[{ path: 'teacher.samples', message: 'too small' }]]],
  [new EndpointConfigError('endpoints.0.baseURL: must be http'), FailureType.InvalidConfig, []],
  [new InvalidInputError('line 3: field utt'), FailureType.InvalidInput, []],
  [new MassiveDataError('MASSIVE line 3: not valid JSON'), FailureType.InvalidInput, []],
  [new ArtifactMissingError('artifact sft missing', ref), FailureType.ArtifactMissing, [ref]],
  [new ArtifactCorruptedError('artifact sft corrupted', ref), FailureType.ArtifactCorrupted, [ref]],
  [new EndpointUnavailableError('down', { '503': 5 }), FailureType.TeacherUnavailable, [{ '503': 5 }]],
  [new TeacherBudgetError(spend), FailureType.TeacherBudgetReached, [spend]],
])('%s leaves an activity as its own non-retryable failure type with its details', (error, type, details) => {
  expect(error).toBeInstanceOf(SupertinyError);
  expect(error.name).toBe(error.constructor.name);
  const failure = toActivityFailure(error) as ApplicationFailure;
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect({ type: failure.type, nonRetryable: failure.nonRetryable, message: failure.message, details: failure.details }).toEqual({
    type,
    nonRetryable: true,
    message: error.message,
    details,
  });
  expect(NON_RETRYABLE_FAILURES).toContain(type);
});

test('other errors pass through untouched (the retry policy decides)', () => {
  const plain = new Error('ECONNRESET');
  expect(toActivityFailure(plain)).toBe(plain);
});

describe('errors that repeat', () => {
  const failing = withTypedFailures({
    async broken() {
      throw new Error('a bug');
    },
    async busy() {
      throw ApplicationFailure.create({ message: 'another trainer runs here', type: FailureType.TrainerBusy });
    },
  });
  const attempt = (n: number) => new MockActivityEnvironment({ attempt: n }, { logger: new DefaultLogger('ERROR') });

  test(`an untyped error is retried until attempt ${ERROR_ATTEMPTS}, then made final (crashes alone may use every attempt)`, async () => {
    const early = await attempt(ERROR_ATTEMPTS - 1).run(failing.broken).catch((e) => e);
    expect(early).not.toBeInstanceOf(ApplicationFailure);
    const late = (await attempt(ERROR_ATTEMPTS).run(failing.broken).catch((e) => e)) as ApplicationFailure;
    expect(late).toBeInstanceOf(ApplicationFailure);
    expect(late.nonRetryable).toBe(true);
    expect(late.message).toBe(`a bug (attempt ${ERROR_ATTEMPTS}; not retried again)`);
  });

  test('a failure that means "come back later" keeps its retries', async () => {
    const busy = (await attempt(ERROR_ATTEMPTS + 3).run(failing.busy).catch((e) => e)) as ApplicationFailure;
    expect(busy.type).toBe(FailureType.TrainerBusy);
    expect(busy.nonRetryable).toBe(false);
  });
});

describe('secrets in failures', () => {
  const key = 'sk-live-0123456789abcdef';
  const scrubbing = withTypedFailures(
    {
      async trainerFailed() {
        // A trainer failure quotes stderr lines in its details.
        throw ApplicationFailure.create({
          message: 'trainer sft failed (data): bad row',
          type: 'TrainerConfigError',
          nonRetryable: true,
          details: [{ kind: 'data', stderr: [`requests: sent Authorization: Bearer ${key}`, 'Bearer tok_abcdefghijkl refused', 'HF token hf_xyz? no, url https://h/x?api_key=q-secret-1'] }],
        });
      },
      async wrapped() {
        throw new Error('labelling failed', { cause: new Error(`upstream echoed ${key}`) });
      },
      async maskedKey() {
        throw new EndpointUnavailableError('the teacher endpoint is unavailable: HTTP 401: Incorrect API key provided: sk-proj-********************abcd.', { '401': 1 });
      },
      async clean() {
        throw ApplicationFailure.create({ message: 'nothing secret', type: 'X', details: [{ n: 1 }] });
      },
    },
    [key],
  );

  test("are scrubbed from a failure's details (a trainer's stderr lines), not only from its message", async () => {
    const failure = (await scrubbing.trainerFailed().catch((e) => e)) as ApplicationFailure;
    expect(failure).toMatchObject({ type: 'TrainerConfigError', nonRetryable: true, message: 'trainer sft failed (data): bad row' });
    const details = JSON.stringify(failure.details);
    expect(details).not.toContain(key);
    expect(details).not.toContain('tok_abcdefghijkl');
    expect(details).not.toContain('q-secret-1');
    expect(failure.details).toEqual([
      { kind: 'data', stderr: ['requests: sent Authorization: Bearer [redacted]', 'Bearer [redacted] refused', 'HF token hf_xyz? no, url https://h/x?api_key=[redacted]'] },
    ]);
  });

  test("are scrubbed from an error's causes and a masked key's visible part is removed", async () => {
    const wrapped = (await scrubbing.wrapped().catch((e) => e)) as Error;
    expect(String((wrapped.cause as Error).message)).toBe('upstream echoed [redacted]');
    expect((wrapped.cause as Error).stack ?? '').not.toContain(key);
    const masked = (await scrubbing.maskedKey().catch((e) => e)) as ApplicationFailure;
    expect(masked.message).toBe('the teacher endpoint is unavailable: HTTP 401: Incorrect API key provided: [redacted]');
    expect(masked.type).toBe(FailureType.TeacherUnavailable);
  });

  test('a failure with nothing to scrub leaves as it was', async () => {
    const failure = (await scrubbing.clean().catch((e) => e)) as ApplicationFailure;
    expect(failure).toMatchObject({ message: 'nothing secret', type: 'X', details: [{ n: 1 }] });
  });
});
