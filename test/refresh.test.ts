// The loop from production back to the student, end to end on a real Temporal dev server with the teacher
// simulator: a small pipeline's student is deployed; captured traffic is refreshed into a candidate that is
// promoted by the deployment's pointer while serve swaps to it under load; a second refresh over the same
// traffic pays the teacher nothing and, its candidate wrecked by a learning rate of 0.5, keeps the deployed
// version and says why; a schedule starts
// refreshes and answers our CLI and Temporal's alike.
import OpenAI from 'openai';
import { startServe } from '../cli/serve';
import { CAPTURE_FORMAT, CaptureLineSchema as ServeCaptureLineSchema, type CaptureLine as ServeCaptureLine } from '../runtime/serve/capture';
import { MODEL_VERSION_HEADER } from '../runtime/serve';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readEnv } from '../config/env';
import { startPipeline, startRefresh, type RefreshResult } from '../client';
import { initDeployment, readCurrent } from '../runtime/deployments';
import { loadMassiveTask } from '../tasks/massive';
import { SpendLedger, spendLedgerFile } from '../activities/teacher/spend-ledger';
import type { RefreshReport } from '../activities/refresh/report';
import { scheduleCommand } from '../cli/refresh';
import { defaultPayloadConverter } from '@temporalio/common';
import { withWorkers } from './support/temporal';
import { startWorkerProcess } from './support/worker-process';
import { waitFor } from '../runtime/wait-for';
import { usePipelineBed } from './support/pipeline-bed';
import { smallPipelineConfig } from './support/pipeline-config';

const execFileAsync = promisify(execFile);
// The traffic lies in a data root of its own (a worker reads traffic only inside SUPERTINY_DATA_ROOTS).
const trafficRoot = path.join(os.tmpdir(), `supertiny-refresh-traffic-${process.pid}`);

const TRAIN_LIMIT = 120;
const baseConfig = (name: string, maxSteps: number) =>
  smallPipelineConfig(name, {
    task: { trainLimit: TRAIN_LIMIT, devLimit: 40, testLimit: 60 },
    transfer: { steps: ['sft'], student: { family: 'encoder', maxLength: 32 }, epochs: 1, maxSteps, batchSize: 16, checkpointEvery: 5 },
    compress: { steps: ['int8'], toleranceExactMatch: 100 },
  });

/** A captured request as `serve --capture` writes it (runtime/serve/capture.ts's CaptureLineSchema, checked here). */
function capturedLine(i: number, input: string, cascaded: boolean): ServeCaptureLine {
  const call = { name: 'general_quirky', arguments: {} };
  return ServeCaptureLineSchema.parse({
    format: CAPTURE_FORMAT,
    id: `req-${i}`,
    time: new Date(Date.UTC(2026, 11, 1, 0, i)).toISOString(),
    model: 'router',
    model_version: 'v1',
    input,
    student_call: call,
    student_confidence: cascaded ? 0.2 : 0.9,
    cascaded,
    ...(cascaded ? { teacher_model: 'teacher-simulator', teacher_call: call } : {}),
    answered_by: cascaded ? 'teacher' : 'student',
  });
}

/** The lines serve --capture wrote in `dir`, checked against its schema. */
async function capturedLines(dir: string): Promise<ServeCaptureLine[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.startsWith('capture-')).sort();
  const text = (await Promise.all(files.map((f) => fs.readFile(path.join(dir, f), 'utf8')))).join('');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => ServeCaptureLineSchema.parse(JSON.parse(l)));
}

/** Keeps one request in flight at a time until stop(), cycling through `inputs`; records versions and failures. */
function requestStream(openai: OpenAI, inputs: string[]) {
  const answers: { at: number; version: string | null }[] = [];
  const failures: string[] = [];
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped; i += 1) {
      const at = Date.now();
      try {
        const { response } = await openai.chat.completions.create({ model: 'router', messages: [{ role: 'user', content: inputs[i % inputs.length] }] }).withResponse();
        answers.push({ at, version: response.headers.get(MODEL_VERSION_HEADER) });
      } catch (err) {
        // A 422 is the student's honest "no valid call"; anything else is a failed request.
        if ((err as { status?: number }).status !== 422) failures.push((err as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    answers,
    failures,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

describe('refreshStudent', () => {
  const bed = usePipelineBed('refresh', { dataRoots: [...readEnv().dataRoots, trafficRoot] });
  const deployment = () => path.join(bed.env.dataDir, 'deployments', 'router');
  const trafficDir = path.join(trafficRoot, 'captured');
  const liveCapture = path.join(trafficRoot, 'live-capture');
  let firstVersion = '';
  let promotedVersion = '';
  let serving: { url: string; close(): Promise<void> } | undefined;

  beforeAll(async () => {
    await fs.mkdir(trafficDir, { recursive: true });
  });
  afterAll(async () => {
    await serving?.close();
    await fs.rm(trafficRoot, { recursive: true, force: true });
  });

  const refresh = async (workflowId: string, maxSteps: number, extra: { frozenTolerancePoints?: number; learningRate?: number } = {}) => {
    const { learningRate, ...rule } = extra;
    const config = baseConfig('router', maxSteps);
    if (learningRate !== undefined) config.transfer = { ...config.transfer, learningRate };
    const handle = await startRefresh(
      bed.server.client,
      { deployment: deployment(), traffic: trafficDir, config, ...rule },
      { taskQueue: bed.taskQueue, workflowId },
    );
    const started = Date.now();
    const result: RefreshResult = await withWorkers(bed.workers, () => handle.result());
    const report = JSON.parse(await fs.readFile(result.reportPath, 'utf8')) as RefreshReport;
    return { result, report, seconds: (Date.now() - started) / 1000 };
  };

  test('labels captured traffic once, trains from the deployed student, and promotes a candidate that is better', async () => {
    const started = Date.now();
    // The deployed student: a pipeline trained for a few steps only, so that more data and steps can beat it.
    const pipeline = await startPipeline(bed.server.client, baseConfig('router', 6), { taskQueue: bed.taskQueue });
    const built = await withWorkers(bed.workers, () => pipeline.result());
    const pipelineSeconds = (Date.now() - started) / 1000;
    const first = await initDeployment(deployment(), built.evaluate!.studentPath!, { trainedModel: built.transfer!.student, family: 'encoder' });
    firstVersion = first.version;

    // Production: serve follows the deployment, cascades its unsure requests to the teacher (the simulator) and
    // captures every request. Traffic: 150 new utterances (train rows the pipeline never labelled), 10 it
    // labelled already, repeats, and one utterance of the frozen test split, which must be neither trained nor
    // compared on.
    const { task } = await loadMassiveTask({ massivePath: bed.env.massivePath });
    const train = (await task.dataset.load('train')).map((e) => task.input(e));
    const test = (await task.dataset.load('test')).map((e) => task.input(e));
    const inputs = [...train.slice(TRAIN_LIMIT, TRAIN_LIMIT + 150), ...train.slice(0, 10), ...train.slice(TRAIN_LIMIT, TRAIN_LIMIT + 5), test[0]];
    serving = await startServe(
      ['--deployment', deployment(), '--port', '0', '--deployment-poll-ms', '200', '--capture', liveCapture, '--cascade-threshold', '0.5', '--teacher-endpoint', 'simulator'],
      bed.env,
    );
    const openai = new OpenAI({ baseURL: serving.url, apiKey: 'unused', maxRetries: 0 });
    const servedBy = async (input: string) => {
      const { data, response } = await openai.chat.completions.create({ model: 'router', messages: [{ role: 'user', content: input }] }).withResponse();
      return { answeredBy: (data as unknown as { supertiny: { answered_by: string } }).supertiny.answered_by, version: response.headers.get(MODEL_VERSION_HEADER) };
    };
    const answered: { answeredBy: string; version: string | null }[] = [];
    for (const input of inputs) {
      // A 422 (no valid student call, and the teacher did not answer) is an answer too, and is captured.
      answered.push(await servedBy(input).catch((err: { status?: number }) => ({ answeredBy: `http ${err.status}`, version: null })));
    }
    expect(answered.every((a) => a.answeredBy === 'student' || a.answeredBy === 'teacher')).toBe(true);
    expect(new Set(answered.map((a) => a.version))).toEqual(new Set([firstVersion]));
    await waitFor('every request captured', async () => (await capturedLines(liveCapture)).length === inputs.length, { timeoutMs: 30_000 });
    // The refresh reads the captures made so far (a copy: serve goes on capturing the requests below).
    for (const file of await fs.readdir(liveCapture)) await fs.copyFile(path.join(liveCapture, file), path.join(trafficDir, file));
    const captured = await capturedLines(trafficDir);
    const cascaded = captured.filter((l) => l.cascaded).length;
    // Each answer the teacher gave is captured with its call; a cascaded request it did not answer says why (here
    // mostly "rate": serve's --teacher-max-rps of 10 keeps most of this burst from the teacher).
    expect(captured.filter((l) => l.teacher_call).length).toBe(answered.filter((a) => a.answeredBy === 'teacher').length);
    expect(captured.filter((l) => l.cascaded && !l.teacher_call).every((l) => l.teacher_error !== undefined)).toBe(true);
    expect(cascaded).toBeGreaterThan(0);

    // While the refresh runs and its candidate is promoted, clients keep asking: not one request may fail.
    const stream = requestStream(openai, inputs.slice(0, 20));

    const { result, report, seconds } = await refresh('refresh-promote', 60);
    console.log(`refresh test timings: pipeline ${pipelineSeconds.toFixed(0)} s, first refresh ${seconds.toFixed(0)} s (report: ${report.wall_seconds.toFixed(0)} s)\n${report.decision.reason}\nteacher: ${JSON.stringify(report.cost.traffic_labelling)}; cascade share on fresh ${report.fresh.deployed.teacher_share} -> ${report.fresh.candidate.teacher_share}`);

    // Expected counts from the texts themselves (MASSIVE repeats a few utterances across rows and splits).
    const frozen = new Set([...(await task.dataset.load('dev')).slice(0, 40), ...(await task.dataset.load('test')).slice(0, 60)].map((e) => task.input(e)));
    const known = new Set(train.slice(0, TRAIN_LIMIT));
    const unique = [...new Set(inputs)];
    const usable = unique.filter((t) => !frozen.has(t));
    expect(report.traffic).toEqual(
      expect.objectContaining({
        files: 1,
        lines: inputs.length,
        captured: inputs.length,
        cascaded,
        unique: unique.length,
        duplicates: inputs.length - unique.length,
        inFrozenSplits: unique.length - usable.length,
        newExamples: usable.filter((t) => !known.has(t)).length,
      }),
    );
    expect(report.traffic.inFrozenSplits).toBeGreaterThanOrEqual(1);
    // What serve's cascade had the teacher answer labels those inputs: the refresh does not ask about them again.
    const answeredTexts = new Set(captured.filter((l) => l.teacher_call).map((l) => l.input.trim()));
    const answeredUsable = usable.filter((t) => answeredTexts.has(t)).length;
    expect(report.traffic.teacherAnswered).toBe(answeredTexts.size);
    expect(report.traffic.labelsFromCapture).toBe(answeredUsable);
    expect(answeredUsable).toBeGreaterThan(0);
    expect(report.traffic.newExamples).toBeGreaterThan(140);
    expect(report.traffic.train + report.traffic.fresh).toBe(usable.length);
    expect(report.traffic.fresh).toBeGreaterThan(20); // about 30% of the 150 new inputs
    expect(report.start.from).toBe('deployed');
    // Paid now: the new inputs' requests; the 10 inputs the pipeline labelled were answered by the request cache.
    const labelling = report.cost.traffic_labelling;
    expect(labelling.paid_now).toBeGreaterThan(0);
    expect(labelling.without_paying).toBeGreaterThan(0);
    expect(labelling.paid_now + labelling.without_paying).toBe(labelling.teacher_requests);
    const ledger = await new SpendLedger(spendLedgerFile(bed.env.dataDir, 'refresh-promote')).snapshot();
    expect(ledger.paidRequests).toBe(report.cost.teacher_paid_requests);
    expect(ledger.paidRequests).toBe(labelling.paid_now);

    expect(result.promoted).toBe(true);
    expect(report.decision.promoted).toBe(true);
    expect(report.decision.reason).toMatch(/^promoted: not worse on the frozen split and better on the fresh slice/);
    expect(report.fresh.candidate.exact_match).toBeGreaterThan(report.fresh.deployed.exact_match);
    expect(report.frozen.candidate.exact_match).toBeGreaterThanOrEqual(report.frozen.deployed.exact_match - 0.005);
    // With the teacher's labels as reference, sending the least confident half to the teacher can only help.
    for (const model of [report.fresh.deployed, report.fresh.candidate]) {
      expect(model.cascade_at_20pct).toBeGreaterThanOrEqual(model.exact_match);
      expect(model.cascade_at_50pct).toBeGreaterThanOrEqual(model.cascade_at_20pct!);
    }
    const current = await readCurrent(deployment());
    expect(current!.version).toBe(result.candidateVersion);
    expect(current!.version).not.toBe(firstVersion);
    expect(current!.previous).toEqual([firstVersion]);
    promotedVersion = current!.version;
    // The new version records its trained weights, so that the next refresh continues from them.
    const info = JSON.parse(await fs.readFile(path.join(current!.path, 'deployment-version.json'), 'utf8'));
    expect(info.refresh).toBe('refresh-promote');
    expect(info.trainedModel.sha256).toMatch(/^[0-9a-f]{64}$/);
    const html = await fs.readFile(path.join(path.dirname(result.reportPath), 'report.html'), 'utf8');
    expect(html).toContain(`Promoted ${promotedVersion}`);

    // serve swaps to the promoted version under the stream of requests, without failing one.
    await waitFor('serve answering from the promoted version', async () => (await servedBy(inputs[0])).version === promotedVersion, { timeoutMs: 60_000 });
    const swappedAt = Date.now();
    await waitFor('answers after the swap', () => stream.answers.filter((a) => a.at > swappedAt).length >= 20, { timeoutMs: 60_000 });
    await stream.stop();
    expect(stream.failures).toEqual([]);
    expect(new Set(stream.answers.map((a) => a.version))).toEqual(new Set([firstVersion, promotedVersion]));
    expect(new Set(stream.answers.filter((a) => a.at > swappedAt).map((a) => a.version))).toEqual(new Set([promotedVersion]));
    await serving.close();
    serving = undefined;
  }, 1_800_000);

  test('a second refresh over the same traffic pays the teacher nothing, and a candidate that is worse on the frozen split is not promoted and the report says why', async () => {
    expect(promotedVersion).not.toBe('');
    // A learning rate of 0.5 wrecks the deployed student's weights in a few steps: a genuinely worse candidate.
    const { result, report, seconds } = await refresh('refresh-keep', 4, { learningRate: 0.5 });
    console.log(`refresh test timings: second refresh ${seconds.toFixed(0)} s`);
    expect((await new SpendLedger(spendLedgerFile(bed.env.dataDir, 'refresh-keep')).snapshot()).paidRequests).toBe(0);
    expect(report.cost.traffic_labelling.paid_now).toBe(0);
    expect(report.cost.teacher_usd).toBe(0);
    expect(report.start.from).toBe('deployed');
    expect(report.start.note).toContain(promotedVersion);

    expect(result.promoted).toBe(false);
    expect(result.servingVersion).toBe(promotedVersion);
    expect(report.decision.promoted).toBe(false);
    expect(report.decision.frozen.passed).toBe(false);
    expect(report.decision.reason).toMatch(/^kept the deployed version: the candidate is worse on the frozen split/);
    expect(report.frozen.candidate.exact_match).toBeLessThan(report.frozen.deployed.exact_match - 0.005);
    expect(report.decision.reason).toContain('minus 0.5 points');
    expect((await readCurrent(deployment()))!.version).toBe(promotedVersion);
  }, 1_200_000);

  test('a schedule starts refreshStudent with the same arguments; our CLI and Temporal\'s pause, trigger and delete it', async () => {
    const configFile = path.join(bed.env.dataDir, 'router.json');
    await fs.writeFile(configFile, JSON.stringify(baseConfig('router', 4)));
    const out: string[] = [];
    const sink = { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream;
    const id = 'refresh-router-weekly';
    await scheduleCommand(['create', '--every', '7d', '--deployment', deployment(), '--config', configFile, '--traffic', trafficDir, '--id', id], bed.env, sink);
    expect(out.join('')).toContain(`created schedule ${id}`);

    const temporal = (...args: string[]) => execFileAsync(bed.env.temporalCli, ['schedule', ...args, '--address', bed.env.temporalAddress, '--namespace', bed.env.namespace, '-o', 'json']);
    const described = JSON.parse((await temporal('describe', '--schedule-id', id)).stdout);
    expect(JSON.stringify(described)).toContain('refreshStudent');
    expect(JSON.stringify(described.schedule.policies)).toMatch(/SKIP/);
    expect(JSON.stringify(described.schedule.spec)).toContain('604800'); // 7 days in seconds

    await temporal('toggle', '--pause', '--schedule-id', id, '--reason', 'paused by Temporal CLI');
    out.length = 0;
    await scheduleCommand(['list'], bed.env, sink);
    expect(out.join('')).toMatch(new RegExp(`${id}\\tpaused`));
    await scheduleCommand(['unpause', id], bed.env, sink);
    expect((await bed.server.client.schedule.getHandle(id).describe()).state.paused).toBe(false);

    // A manual run, no worker polling: the run is recorded with the schedule's arguments, then stopped here.
    await scheduleCommand(['trigger', id], bed.env, sink);
    let started: string | undefined;
    for (let i = 0; i < 60 && !started; i++) {
      started = (await bed.server.client.schedule.getHandle(id).describe()).info.recentActions[0]?.action.workflow.workflowId;
      if (!started) await new Promise((r) => setTimeout(r, 500));
    }
    expect(started).toMatch(new RegExp(`^${id}-`));
    const triggered = bed.server.client.workflow.getHandle(started!);
    const description = await triggered.describe();
    expect(description.type).toBe('refreshStudent');
    expect(description.taskQueue).toBe(bed.taskQueue);
    const history = await triggered.fetchHistory();
    const input = JSON.parse(Buffer.from(history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0].data!).toString());
    expect(input).toEqual(expect.objectContaining({ deployment: deployment(), traffic: trafficDir }));
    await triggered.terminate('schedule test: no worker runs it');

    await temporal('trigger', '--schedule-id', id);
    await scheduleCommand(['delete', id], bed.env, sink);
    await expect(bed.server.client.schedule.getHandle(id).describe()).rejects.toThrow(/not found/i);
    await expect(scheduleCommand(['pause', id], bed.env, sink)).rejects.toThrow(`no schedule "${id}"`);
    for await (const w of bed.server.client.workflow.list({ query: `WorkflowType = 'refreshStudent' AND ExecutionStatus = 'Running'` })) {
      await bed.server.client.workflow.getHandle(w.workflowId).terminate('schedule test cleanup');
    }
  }, 120_000);

  test('a refresh whose worker is SIGKILLed while it trains finishes from the checkpoint, and no teacher answer is paid twice', async () => {
    expect(promotedVersion).not.toBe('');
    // New traffic (the teacher is paid for it), and a worker in a child process that the test kills.
    const { task } = await loadMassiveTask({ massivePath: bed.env.massivePath });
    const train = (await task.dataset.load('train')).map((e) => task.input(e));
    const killedTraffic = path.join(trafficRoot, 'captured-2');
    await fs.mkdir(killedTraffic, { recursive: true });
    await fs.writeFile(path.join(killedTraffic, 'capture.jsonl'), train.slice(400, 480).map((input, i) => JSON.stringify(capturedLine(i, input, false))).join('\n') + '\n');
    const workerEnv = { SUPERTINY_SIMULATOR_URL: bed.simulator.url, SUPERTINY_DATA_ROOTS: trafficRoot };
    const config = { ...baseConfig('router', 60), timeouts: { heartbeatSeconds: 5 } };
    const first = startWorkerProcess(bed.env, workerEnv);
    await first.ready;
    const workflowId = 'refresh-killed';
    const handle = await startRefresh(bed.server.client, { deployment: deployment(), traffic: killedTraffic, config }, { taskQueue: bed.taskQueue, workflowId });
    // A checkpoint of the candidate's training reported in a heartbeat: then the worker dies.
    await waitFor(
      'a checkpoint of the candidate\'s training',
      async () => {
        const description = await bed.server.client.workflow.getHandle(`${workflowId}/transfer`).describe().catch(() => undefined);
        const pending = description?.raw.pendingActivities?.find((a) => a.activityType?.name === 'trainerStep');
        const payload = pending?.heartbeatDetails?.payloads?.[0];
        const beat = payload ? defaultPayloadConverter.fromPayload<{ checkpointStep?: number }>(payload as never) : undefined;
        return beat?.checkpointStep ? beat.checkpointStep : undefined;
      },
      { timeoutMs: 600_000, intervalMs: 250 },
    );
    await first.kill('SIGKILL');
    const second = startWorkerProcess(bed.env, workerEnv);
    try {
      const result = await handle.result();
      const report = JSON.parse(await fs.readFile(result.reportPath, 'utf8')) as RefreshReport;
      expect(result.reason).toBe(report.decision.refused ?? report.decision.reason);
      expect(report.cost.traffic_labelling.paid_now).toBeGreaterThan(0);
      expect((await new SpendLedger(spendLedgerFile(bed.env.dataDir, workflowId)).snapshot()).paidRequests).toBe(report.cost.traffic_labelling.paid_now);
      // Every request the teacher answered in this suite was answered once.
      expect(Math.max(...Object.values(bed.simulator.stats().answeredByContentHash))).toBe(1);
      const transfer = await bed.server.client.workflow.getHandle(`${workflowId}/transfer`).fetchHistory();
      const attempts = transfer.events!.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : []));
      expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
      expect((await readCurrent(deployment()))!.version).toBe(result.servingVersion);
    } finally {
      await second.kill('SIGTERM');
    }
  }, 1_200_000);
});
