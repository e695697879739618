// The teacher budget (teacher.maxSpendUsd): each paid request reserves its estimated cost in the pipeline's
// spend ledger before it is sent; the request that would pass the budget is never sent and the activity
// fails non-retryably naming what was spent and the budget; answers from the request cache cost nothing;
// what was paid outlives the attempt, and the process, that paid it. Real HTTP to the teacher simulator.
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { LabelBatchResult, TaskData } from '../activities/types';
import { createTeacherClient, type TeacherInput, type TeacherResult } from '../runtime/teacher/teacher-client';
import { pipelineSpendLedger, SpendLedger, spendLedgerFile, TeacherBudgetError } from '../activities/teacher/spend-ledger';
import { startPipeline } from '../client';
import { resolveTeacherEndpoints, SIMULATOR_PRICES } from '../config/endpoints';
import { readEnv } from '../config/env';
import { FailureType } from '../config/failure-types';
import { parsePipelineConfig } from '../config/pipeline';
import { startTeacherSimulator, type RunningTeacherSimulator, type TeacherSimulatorStats } from '../runtime/teacher-simulator';
import { loadMassiveTask, type MassiveTask } from '../tasks/massive';
import { startFakeEndpoint } from './support/fake-endpoint';
import { waitFor } from '../runtime/wait-for';
import { smallPipelineConfig } from './support/pipeline-config';
import { createTestWorkers, startTestServer, stopTestServer, testDeps, testEnv, withWorkers } from './support/temporal';
import { pipelinePlan } from '../config/plan';

let massive: MassiveTask;
let tmp: string;
let sim: RunningTeacherSimulator;
beforeAll(async () => {
  massive = await loadMassiveTask();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'teacher-spend-'));
  sim = await startTeacherSimulator({ seed: 41 });
});
afterAll(async () => {
  await sim.close();
  await fs.rm(tmp, { recursive: true, force: true });
});
beforeEach(() => sim.resetStats());

/** The simulator's stand-in prices, as a chat client takes them. */
const PRICES = { inputPerMillionTokens: SIMULATOR_PRICES.inputPerMTok, outputPerMillionTokens: SIMULATOR_PRICES.outputPerMTok };
/** What the simulator answered 200 to, at those prices: what an endpoint would bill. */
const billed = (s: TeacherSimulatorStats) => (s.promptTokens * SIMULATOR_PRICES.inputPerMTok + s.completionTokens * SIMULATOR_PRICES.outputPerMTok) / 1e6;

const devInputs = (count: number, offset = 0): TeacherInput[] =>
  massive.examples
    .filter((e) => e.split === 'dev')
    .slice(offset, offset + count)
    .map((e) => ({ id: e.id, text: e.utterance }));

const quiet = new DefaultLogger('ERROR');

describe('the spend ledger', () => {
  test('reservations of three processes on one ledger never pass the budget together', async () => {
    const file = path.join(tmp, 'three-processes.jsonl');
    const go = path.join(tmp, 'go');
    const script = path.join(tmp, 'reserve.ts');
    // Each process waits for `go`, then asks for 80 reservations of $0.01 at once against a $1 budget.
    await fs.writeFile(
      script,
      [
        `import { existsSync } from 'node:fs';`,
        `import { SpendLedger } from ${JSON.stringify(path.join(__dirname, '..', 'activities', 'teacher', 'spend-ledger'))};`,
        `const ledger = new SpendLedger(process.argv[2]);`,
        `console.log('ready');`,
        `const wait = () => (existsSync(process.argv[3]) ? Promise.resolve() : new Promise((r) => setTimeout(r, 5)).then(wait));`,
        `wait().then(() => Promise.allSettled(Array.from({ length: 80 }, () => ledger.reserve(0.01, 1)))).then((r) => console.log(r.filter((x) => x.status === 'fulfilled').length));`,
      ].join('\n'),
    );
    const tsx = path.join(readEnv().projectRoot, 'node_modules', 'tsx', 'dist', 'cli.mjs');
    const children = [0, 1].map(() => {
      const child = spawn(process.execPath, [tsx, script, file, go], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      return { output: () => out, exited: new Promise<void>((resolve) => child.once('close', () => resolve())) };
    });
    await waitFor('both processes to start', () => children.every((c) => c.output().includes('ready')), { timeoutMs: 60_000 });
    const here = new SpendLedger(file);
    await fs.writeFile(go, '');
    const mine = await Promise.allSettled(Array.from({ length: 80 }, () => here.reserve(0.01, 1)));
    await Promise.all(children.map((c) => c.exited));
    const accepted = [mine.filter((r) => r.status === 'fulfilled').length, ...children.map((c) => Number(c.output().trim().split('\n').pop()))];
    // 240 asked for, 100 fit: whichever process asked, in whatever order the appends landed.
    expect(accepted.reduce((a, b) => a + b, 0)).toBe(100);
    const refusal = mine.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (refusal) expect(refusal.reason).toBeInstanceOf(TeacherBudgetError);
    // A fresh reader (a worker started later) finds the same.
    expect((await new SpendLedger(file).snapshot()).reservedUsd).toBeCloseTo(1, 9);
    expect(existsSync(file)).toBe(true);
  }, 90_000);

  test('what was paid, and what a request cut off by a crash reserved, outlive the process; a resend of that request is one payment', async () => {
    const file = path.join(tmp, 'crash.jsonl');
    const before = new SpendLedger(file);
    await (await before.reserve(0.02, 1, 'request-a')).paid(0.015);
    // Sent, then the worker was killed: never settled. With an idempotency key (b) and without (c).
    await before.reserve(0.02, 1, 'request-b');
    await before.reserve(0.03, 1);

    const after = new SpendLedger(file);
    expect(await after.snapshot()).toEqual({ spentUsd: 0.015, reservedUsd: expect.closeTo(0.05, 12), paidRequests: 1 });
    // The retry resends request b with the same idempotency key: the endpoint replays it, one payment. The
    // request without a key may have been billed, so its reservation still counts.
    await (await after.reserve(0.02, 1, 'request-b')).paid(0.012);
    expect(await after.snapshot()).toEqual({ spentUsd: expect.closeTo(0.027, 12), reservedUsd: expect.closeTo(0.03, 12), paidRequests: 2 });
    // An error status was not billed.
    await (await after.reserve(0.5, 1)).unbilled();
    expect((await after.snapshot()).reservedUsd).toBeCloseTo(0.03, 12);
    // A line torn by a kill mid-write hides nothing after it.
    await fs.appendFile(file, '{"kind":"reserve","id":"torn');
    await (await after.reserve(0.01, 1, 'request-d')).paid(0.01);
    expect(await new SpendLedger(file).snapshot()).toEqual({ spentUsd: expect.closeTo(0.037, 12), reservedUsd: expect.closeTo(0.03, 12), paidRequests: 3 });

    const refused = await after.reserve(0.95, 1).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(TeacherBudgetError);
    expect(refused).toMatchObject({ failureType: FailureType.TeacherBudgetReached, retryable: false });
    expect((refused as TeacherBudgetError).failureDetails()).toEqual([
      { spentUsd: expect.closeTo(0.037, 12), reservedUsd: expect.closeTo(0.03, 12), paidRequests: 3, budgetUsd: 1, estimateUsd: 0.95 },
    ]);
    expect((refused as Error).message).toMatch(/spent \$0\.0370 of teacher\.maxSpendUsd \$1\.0000 \(\$0\.0300 more reserved.*estimated at \$0\.9500/);
  });

  test("a stage's activities share its pipeline's ledger; a workflow that is no stage has its own", () => {
    const dataDir = path.join(tmp, 'ids');
    const of = (workflowId: string, workflowType: string) => pipelineSpendLedger(dataDir, { workflowExecution: { workflowId }, workflowType, activityId: '1' }).file;
    const pipeline = spendLedgerFile(dataDir, 'supertiny-demo-1234');
    expect(of('supertiny-demo-1234', 'distillationPipeline')).toBe(pipeline);
    expect(of('supertiny-demo-1234/prototype', 'prototypeStage')).toBe(pipeline);
    expect(of('supertiny-demo-1234/evaluate', 'evaluateStage')).toBe(pipeline);
    expect(of('supertiny-demo-1234/prototype', 'evaluateStage')).not.toBe(pipeline);
    expect(of('other/prototype', 'prototypeStage')).not.toBe(pipeline);
  });
});

describe('a teacher client with a budget', () => {
  test('stops before the request that would pass the budget, fails naming spent and budget, and never sends it', async () => {
    const ledger = new SpendLedger(path.join(tmp, 'client-budget.jsonl'));
    const budgetUsd = 0.03;
    const client = createTeacherClient(
      massive.task,
      { baseURL: sim.url, model: sim.model, prices: PRICES, concurrency: 4, cacheDir: path.join(tmp, 'cache-budget') },
      { spend: ledger.guard(budgetUsd) },
    );
    const error = await client.labelAll(devInputs(150), 2).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(TeacherBudgetError);
    expect((error as Error).message).toMatch(/^the pipeline's teacher budget is reached: spent \$0\.0\d{3} of teacher\.maxSpendUsd \$0\.0300/);
    // The requests in flight at the refusal were reserved; they finish and are paid.
    await waitFor('the requests in flight to settle', async () => (await ledger.snapshot()).reservedUsd < 1e-12);
    const spent = await ledger.snapshot();
    expect(spent.spentUsd).toBeGreaterThan(0);
    expect(spent.spentUsd).toBeLessThanOrEqual(budgetUsd);
    // Every request the endpoint answered was reserved and paid in the ledger, and none was sent without.
    const stats = sim.stats();
    expect(stats.chatRequests).toBe(spent.paidRequests);
    expect(spent.spentUsd).toBeCloseTo(billed(stats), 12);
    expect(client.stats().httpRequests).toBe(spent.paidRequests);
  });

  test('answers from the request cache, or joined in flight, cost nothing: a budget already spent still gets them', async () => {
    const ledger = new SpendLedger(path.join(tmp, 'client-cached.jsonl'));
    const config = { baseURL: sim.url, model: sim.model, prices: PRICES, concurrency: 4, cacheDir: path.join(tmp, 'cache-cached') };
    const inputs = devInputs(4, 200);
    const first = createTeacherClient(massive.task, config, { spend: ledger.guard(1) });
    // The same input twice at once: the second joins the first's requests.
    await Promise.all([first.label(inputs[0], 2), first.label(inputs[0], 2)]);
    const labelled = await first.labelAll(inputs, 2);
    const paid = await ledger.snapshot();
    expect(first.stats().joinedInFlight).toBeGreaterThan(0);
    expect(first.stats().cacheHits).toBeGreaterThan(0);
    expect(paid).toEqual({ spentUsd: expect.closeTo(billed(sim.stats()), 12), reservedUsd: expect.closeTo(0, 12), paidRequests: sim.stats().chatRequests });

    // A budget with nothing left: only free answers fit, and they are all there is.
    const again = createTeacherClient(massive.task, config, { spend: ledger.guard(paid.spentUsd) });
    expect(await again.labelAll(inputs, 2)).toEqual(labelled);
    expect(again.stats()).toMatchObject({ httpRequests: 0, cacheHits: expect.any(Number) });
    expect(again.stats().cacheHits).toBeGreaterThan(0);
    expect(await ledger.snapshot()).toEqual(paid);
  });
});

describe("the pipeline's activities", () => {
  test('a labelling attempt cut off by an outage and its retry pay each answer once; the ledger keeps what both paid', async () => {
    const fake = await startFakeEndpoint({ kind: 'forward', baseURL: sim.url });
    try {
      const env = await testEnv('127.0.0.1:7233');
      const endpoints = resolveTeacherEndpoints(
        { endpoints: [{ name: 'fake', baseURL: fake.url, apiKeyEnv: 'FAKE_KEY', models: ['teacher-simulator'], prices: SIMULATOR_PRICES }] },
        () => 'sk-fake-0123456789',
      );
      const deps = testDeps(env, { endpoints });
      const activities = createActivities(deps);
      const config = parsePipelineConfig(
        smallPipelineConfig('spend-retry', { task: { trainLimit: 8, devLimit: 4, testLimit: 4 }, teacher: { endpoint: 'fake', samples: 2, batchSize: 8, concurrency: 2, maxRetries: 0 } }),
      );
      const attempt = (n: number) => {
        const now = Date.now();
        return new MockActivityEnvironment(
          {
            attempt: n,
            workflowExecution: { workflowId: 'spend-retry/prototype', runId: 'run' },
            workflowType: 'prototypeStage',
            startToCloseTimeoutMs: 60_000,
            heartbeatTimeoutMs: 5000,
            scheduleToCloseTimeoutMs: 0,
            scheduledTimestampMs: now,
            currentAttemptScheduledTimestampMs: now,
          },
          { logger: quiet },
        );
      };
      const data = (await attempt(1).run(activities.prepareTaskData, { plan: pipelinePlan(config).prototype.data })) as TaskData;
      const input = { plan: { ...pipelinePlan(config).prototype.label, batchSize: 8 }, inputs: data.train, batchIndex: 0 };
      // The endpoint goes down after 7 answers: the first attempt fails, its answers are in the cache.
      fake.behave((n) => (n <= 7 ? { kind: 'forward', baseURL: sim.url } : { kind: 'status', status: 503, message: 'down' }));
      await expect(attempt(1).run(activities.labelBatch, input)).rejects.toMatchObject({ type: FailureType.TeacherUnavailable });
      const paidBefore = await new SpendLedger(spendLedgerFile(env.dataDir, 'spend-retry')).snapshot();
      // 7 answers were sent; the one in flight when the outage stopped the batch may have been cut off before its
      // answer was read, and stays reserved (it may have been billed).
      expect([6, 7]).toContain(paidBefore.paidRequests);
      if (paidBefore.paidRequests === 6) expect(paidBefore.reservedUsd).toBeGreaterThan(0);

      fake.behave({ kind: 'forward', baseURL: sim.url });
      const result = (await attempt(2).run(activities.labelBatch, input)) as LabelBatchResult;
      const rows = await deps.store.readJsonl<TeacherResult>(result.samples);
      const spent = await new SpendLedger(spendLedgerFile(env.dataDir, 'spend-retry')).snapshot();
      // The pipeline's ledger (a stage's activity writes it): the cost of every answer the batch holds, each once,
      // also the one in flight when the outage stopped the first attempt (resent with its key and replayed).
      expect(spent.spentUsd).toBeCloseTo(rows.reduce((sum, r) => sum + r.usage.costUsd, 0), 12);
      expect(spent.spentUsd).toBeCloseTo(billed(sim.stats()), 12);
      expect(spent.reservedUsd).toBeCloseTo(0, 12);
      expect(sim.stats().repeatedAnswers).toBe(0);
      await fs.rm(env.dataDir, { recursive: true, force: true });
    } finally {
      await fake.close();
    }
  });

  describe('on a real Temporal server', () => {
    let server: TestWorkflowEnvironment;
    beforeAll(async () => {
      server = await startTestServer();
    }, 120_000);
    afterAll(async () => {
      await stopTestServer(server);
    });

    test('a pipeline whose budget runs out while labelling fails non-retryably with TeacherBudgetReached, naming spent and budget', async () => {
      const env = await testEnv(server.address, { taskQueue: `spend-${Date.now()}` });
      const budgetUsd = 0.01;
      const handle = await startPipeline(server.client, smallPipelineConfig('spend-capped', { task: { trainLimit: 40 }, teacher: { samples: 2, batchSize: 20, maxSpendUsd: budgetUsd } }), {
        taskQueue: env.taskQueue,
      });
      const error = await withWorkers(
        () => createTestWorkers(server, env.taskQueue, testDeps(env, { simulatorBaseURL: sim.url })),
        () => handle.result().then(() => undefined, (err: unknown) => err),
      );
      const chain: unknown[] = [];
      for (let cur = error; cur; cur = (cur as { cause?: unknown }).cause) chain.push(cur);
      const activity = chain.find((e): e is ActivityFailure => e instanceof ActivityFailure);
      const failure = chain.find((e): e is ApplicationFailure => e instanceof ApplicationFailure);
      expect(activity).toMatchObject({ activityType: 'labelBatch', retryState: RetryState.NON_RETRYABLE_FAILURE });
      expect(failure).toMatchObject({ type: FailureType.TeacherBudgetReached, nonRetryable: true });
      expect(failure!.message).toMatch(/teacher budget is reached: spent \$0\.00\d\d of teacher\.maxSpendUsd \$0\.0100/);
      expect(failure!.details?.[0]).toMatchObject({ budgetUsd, spentUsd: expect.any(Number), estimateUsd: expect.any(Number) });
      // The pipeline's ledger (its workflow id, shared by its stages): something was paid, and neither the
      // ledger (paid and still reserved) nor what the endpoint billed passed the budget.
      const spent = await new SpendLedger(spendLedgerFile(env.dataDir, handle.workflowId)).snapshot();
      expect(spent.spentUsd).toBeGreaterThan(0);
      expect(spent.spentUsd + spent.reservedUsd).toBeLessThanOrEqual(budgetUsd);
      expect(billed(sim.stats())).toBeGreaterThan(0);
      expect(billed(sim.stats())).toBeLessThanOrEqual(budgetUsd);
      await fs.rm(env.dataDir, { recursive: true, force: true });
    }, 180_000);
  });
});
