// Every stage workflow is a registered workflow type that any client may start directly. Hostile input is
// refused naming the field, before anything is scheduled; a ref cannot make the worker read a file outside its
// store, a manifest cannot make it write outside the folder it fills, and no error tells anything about a
// file outside the data folder.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Worker } from '@temporalio/worker';
import type { ArtifactRef } from '../artifacts/ref';
import type { ArtifactStore } from '../artifacts/store';
import type { SupertinyEnv } from '../config/env';
import { parsePipelineConfig } from '../config/pipeline';
import { createTestWorkers, startTestServer, testDeps, testEnv } from './support/temporal';
import { smallPipelineConfig } from './support/pipeline-config';

const SENTINEL = 'root:x:0:0:sentinel outside the data folder\n';
const sha256Of = (text: string) => createHash('sha256').update(text).digest('hex');

describe('stage workflows started directly', () => {
  let server: TestWorkflowEnvironment;
  let env: SupertinyEnv;
  let store: ArtifactStore;
  let workers: Worker[];
  let running: Promise<void>[];
  let outside: string;
  let sentinel: string;
  // A hash that is not the sentinel's: the old store answered a wrong guess with the file's real hash and size.
  const guess = `${'0'.repeat(63)}1`;
  let run = 0;

  beforeAll(async () => {
    server = await startTestServer();
    env = await testEnv(server.address, { taskQueue: `stage-inputs-${Date.now()}` });
    const deps = testDeps(env);
    store = deps.store;
    workers = await createTestWorkers(server, env.taskQueue, deps);
    running = workers.map((w) => w.run());
    outside = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-outside-'));
    sentinel = path.join(outside, 'blobs', 'sha256', guess.slice(0, 2), guess);
    await fs.mkdir(path.dirname(sentinel), { recursive: true });
    await fs.writeFile(sentinel, SENTINEL);
  }, 120_000);

  afterAll(async () => {
    for (const w of workers ?? []) w.shutdown();
    await Promise.all(running ?? []);
    await server?.teardown();
    for (const dir of [env?.dataDir, outside]) if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    // Nothing was written outside the data folder, and the sentinel is as it was.
    expect((await fs.readdir(outside, { recursive: true })).sort()).toEqual(['blobs', 'blobs/sha256', `blobs/sha256/${guess.slice(0, 2)}`, path.relative(outside, sentinel)].sort());
    expect(await fs.readFile(sentinel, 'utf8')).toBe(SENTINEL);
  });

  const ref = (name: string, kind = name): ArtifactRef => {
    const sha256 = sha256Of(name);
    return { uri: `file://${env.dataDir}/artifacts/blobs/sha256/${sha256.slice(0, 2)}/${sha256}`, sha256, bytes: 1, kind };
  };

  /** A stage input as the pipeline would pass it (its refs name blobs that need not exist). */
  function stageInput() {
    const prototype = {
      data: { train: ref('inputs'), dev: ref('gold/dev'), test: ref('gold/test'), counts: { train: 1, dev: 1, test: 1 } },
      sft: ref('sft'),
      preferences: ref('preferences'),
      rejected: ref('rejected'),
      stats: ref('stats'),
      summary: { inputs: 1 },
    };
    const transfer = { steps: [{ step: 'sft', model: ref('model', 'model/dir'), metrics: { final_loss: 1 } }], student: ref('model', 'model/dir') };
    const compress = {
      onnx: ref('onnx', 'onnx/dir'),
      int8: ref('int8', 'onnx-int8/dir'),
      chosen: ref('int8', 'onnx-int8/dir'),
      gates: [{ step: 'int8', exactMatchBefore: 0.5, exactMatchAfter: 0.5, kept: true, reason: 'kept' }],
    };
    return { config: parsePipelineConfig(smallPipelineConfig('stage-inputs')) as Record<string, any>, prototype, transfer, compress };
  }

  /** Starts `workflowType` with `args` and returns its failure: the messages down its cause chain, and the innermost failure's type. */
  async function failureOf(workflowType: string, input: unknown): Promise<{ messages: string; type?: string; nonRetryable?: boolean; scheduled: string[] }> {
    const workflowId = `stage-inputs-${workflowType}-${Date.now()}-${run++}`;
    const err = await server.client.workflow.execute(workflowType, { taskQueue: env.taskQueue, workflowId, args: [input] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const messages: string[] = [];
    let inner: unknown = err;
    for (let cur: unknown = err; cur instanceof Error; cur = (cur as { cause?: unknown }).cause) {
      messages.push(cur.message);
      inner = cur;
    }
    const history = await server.client.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name ?? '?'] : []));
    const failure = inner instanceof ApplicationFailure ? inner : undefined;
    return { messages: messages.join(' <- '), type: failure?.type ?? undefined, nonRetryable: failure?.nonRetryable ?? undefined, scheduled };
  }

  /** Nothing about the sentinel in a message: not its content, hash, size or path. */
  function expectNothingAbout(messages: string) {
    expect(messages).not.toContain('root:x');
    expect(messages).not.toContain(sha256Of(SENTINEL));
    expect(messages).not.toContain(sha256Of(SENTINEL).slice(0, 12));
    expect(messages).not.toMatch(new RegExp(`\\b${Buffer.byteLength(SENTINEL)} bytes`));
    expect(messages).not.toContain(outside);
  }

  type Input = ReturnType<typeof stageInput>;
  const cases: [string, string, (input: Input) => unknown, RegExp[], string][] = [
    ['a report name that leaves the data folder', 'evaluateStage', (i) => ({ ...i, config: { ...i.config, name: '../../../../x-report' } }), [/config\.name: letters, digits, dot, dash and underscore only \(1-64\), not starting with a dot/], 'InvalidConfig'],
    ['the name ".."', 'prototypeStage', (i) => ({ config: { ...i.config, name: '..' } }), [/config\.name: /], 'InvalidConfig'],
    [
      'bad numbers',
      'prototypeStage',
      (i) => ({ config: { ...i.config, teacher: { ...i.config.teacher, samples: 1e9, concurrency: -1 } }, parallelBatches: 1e6 }),
      [/config\.teacher\.samples: /, /config\.teacher\.concurrency: /, /parallelBatches: /],
      'InvalidInput',
    ],
    [
      'a trainer path field (dpo\'s ref_model)',
      'transferStage',
      (i) => ({ config: { ...i.config, transfer: { ...i.config.transfer, steps: ['dpo'], trainer: { ref_model: '/tmp' } } }, prototype: i.prototype }),
      [/config\.transfer\.trainer\.ref_model: is a path or free-text field of the trainer's "dpo" command/],
      'InvalidConfig',
    ],
    [
      'a trainer path field (encoder-sft\'s tools)',
      'compressStage',
      (i) => ({
        config: { ...i.config, transfer: { ...i.config.transfer, student: { family: 'encoder', maxLength: 64, headLearningRateScale: 10 }, trainer: { tools: '/etc/hostname' } } },
        prototype: i.prototype,
        transfer: i.transfer,
      }),
      [/config\.transfer\.trainer\.tools: is a path or free-text field of the trainer's "encoder-sft" command/],
      'InvalidConfig',
    ],
    ['no config at all', 'transferStage', (i) => ({ prototype: i.prototype }), [/transferStage input: config: /], 'InvalidConfig'],
    [
      'a file: ref to a file outside the data folder',
      'compressStage',
      (i) => ({ config: i.config, transfer: i.transfer, prototype: { ...i.prototype, sft: { uri: 'file:///etc/passwd', sha256: guess, bytes: 1, kind: 'sft' } } }),
      [/prototype\.sft\.uri: must name the store blob of the ref's sha256/],
      'InvalidInput',
    ],
    [
      'a ref with a path as its hash and an unknown field',
      'evaluateStage',
      (i) => ({ ...i, transfer: { ...i.transfer, student: { ...i.transfer.student, sha256: '../../../etc/passwd', extra: 1 } } }),
      [/transfer\.student\.sha256: sha256 must be 64 lowercase hex/, /transfer\.student: Unrecognized key: "extra"/],
      'InvalidInput',
    ],
    [
      'a gate step that is not a compression step',
      'evaluateStage',
      (i) => ({ ...i, compress: { ...i.compress, gates: [{ ...i.compress.gates[0], step: '$(reboot)' }] } }),
      [/compress\.gates\.0\.step: /],
      'InvalidInput',
    ],
  ];

  test.each(cases)('%s: %s is refused naming the field, before anything is scheduled', async (_what, workflowType, hostile, fields, type) => {
    const failure = await failureOf(workflowType, hostile(stageInput()));
    expect(failure.messages).toMatch(new RegExp(`invalid ${workflowType} input: `));
    for (const field of fields) expect(failure.messages).toMatch(field);
    expect(failure).toMatchObject({ type, nonRetryable: true, scheduled: [] });
    expectNothingAbout(failure.messages);
  }, 60_000);

  test('a ref whose uri names a file outside the store is read from the store by its hash: missing, and the file is neither read nor described', async () => {
    const input = stageInput();
    // The uri has the store's shape but lies outside; the file there is the sentinel (and its hash is not the ref's).
    const student = { uri: `file://${sentinel}`, sha256: guess, bytes: 7, kind: 'model/dir' };
    const failure = await failureOf('compressStage', { config: input.config, prototype: input.prototype, transfer: { steps: [], student } });
    expect(failure.scheduled).toEqual(['trainerStep']);
    expect(failure).toMatchObject({ type: 'ArtifactMissing', nonRetryable: true });
    expect(failure.messages).toMatch(/artifact model\/dir 000000000000 is missing/);
    expectNothingAbout(failure.messages);
  }, 60_000);

  test('a manifest whose member climbs out of its folder is refused naming the member, and nothing is written outside', async () => {
    const input = stageInput();
    // As if a folder in a model root had become a blob: a manifest whose member path climbs to the outside folder.
    const blob = await store.putBytes('model/dir/file', 'escaped');
    const climb = `${'../'.repeat(40)}${outside.slice(1)}/escaped.txt`;
    const manifest = await store.putJson('model/dir', { files: [{ path: 'config.json', sha256: blob.sha256, bytes: blob.bytes }, { path: climb, sha256: blob.sha256, bytes: blob.bytes }] });
    const failure = await failureOf('compressStage', { config: input.config, prototype: input.prototype, transfer: { steps: [], student: manifest } });
    expect(failure.scheduled).toEqual(['trainerStep']);
    expect(failure).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect(failure.messages).toMatch(/is not a directory manifest: files\.1\.path: must be a relative path inside the folder/);
    await expect(fs.access(path.join(outside, 'escaped.txt'))).rejects.toThrow();
  }, 60_000);
});
