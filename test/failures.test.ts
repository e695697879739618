// supertiny's errors share one base class that names its failure type; one wrapper types them all.
import { ApplicationFailure } from '@temporalio/common';
import { toActivityFailure, InvalidInputError } from '../activities/failures';
import { ArtifactCorruptedError, ArtifactMissingError } from '../artifacts/store';
import { FailureType, NON_RETRYABLE_FAILURES, SupertinyError } from '../config/failure-types';
import { EndpointConfigError } from '../config/endpoints';
import { InvalidConfigError } from '../config/pipeline';
import { MassiveDataError } from '../tasks/massive/data';
import { EndpointUnavailableError } from '../activities/prototype/chat-client';

const ref = { uri: 'file:///x', sha256: 'a'.repeat(64), bytes: 1, kind: 'sft' };

test.each([
  [new InvalidConfigError([{ path: 'teacher.samples', message: 'too small' }]), FailureType.InvalidConfig, [[{ path: 'teacher.samples', message: 'too small' }]]],
  [new EndpointConfigError('endpoints.0.baseURL: must be http'), FailureType.InvalidConfig, []],
  [new InvalidInputError('line 3: field utt'), FailureType.InvalidInput, []],
  [new MassiveDataError('MASSIVE line 3: not valid JSON'), FailureType.InvalidInput, []],
  [new ArtifactMissingError('artifact sft missing', ref), FailureType.ArtifactMissing, [ref]],
  [new ArtifactCorruptedError('artifact sft corrupted', ref), FailureType.ArtifactCorrupted, [ref]],
  [new EndpointUnavailableError('down', { '503': 5 }), FailureType.TeacherUnavailable, [{ '503': 5 }]],
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
