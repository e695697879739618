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
import { EndpointUnavailableError } from '../activities/prototype/chat-client';
import { TeacherBudgetError } from '../activities/prototype/spend-ledger';

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
