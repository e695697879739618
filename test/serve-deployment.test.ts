// `supertiny serve --deployment DIR` end to end: real onnxruntime students (two random-weight encoder
// fixtures of different seeds, so their confidences tell them apart), real HTTP, the real `openai` client,
// a continuous stream of concurrent requests while the deployment's pointer is promoted, rolled back and
// pointed at a broken version; and the deploy / rollback / deployment status commands.
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { deploy, deploymentStatus, formatDeploymentStatus, rollbackDeployment } from '../cli/deployment';
import { startServe } from '../cli/serve';
import { readEnv } from '../config/env';
import { addVersion, initDeployment, promote, readCurrent, readHistory, rollback } from '../runtime/deployments';
import { MODEL_VERSION_HEADER, StudentHolder } from '../runtime/serve';
import { loadStudent, type RuntimePrediction, type StudentRuntime } from '../runtime/student';
import { loadServeBed, metricsOf, MODEL, rootOf, sample, type ServeBed, UTTERANCES } from './support/serve-bed';
import { waitFor } from '../runtime/wait-for';

const env = readEnv();
const run = promisify(execFile);

let bed: ServeBed;
/** The two student folders: v1 is the serve bed's (seed 0), v2 the same fixture with seed 1. */
let v1Folder: string;
let v2Folder: string;
/** v1's model.onnx cut in half: loads nowhere. */
let brokenFolder: string;
/** Each folder's own answers under the served (MASSIVE) task, per utterance. */
const reference = new Map<string, Map<string, RuntimePrediction>>();
/** Utterances both students answer with a call, and whose confidences differ between them. */
let inputs: string[];

async function copyFolder(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { recursive: true });
  for (const name of await fs.readdir(from)) await fs.copyFile(path.join(from, name), path.join(to, name));
}

async function answersOf(folder: string): Promise<Map<string, RuntimePrediction>> {
  const student = await loadStudent(folder, { task: bed.massive.task, threads: 1 });
  try {
    return new Map((await student.predictBatch(UTTERANCES)).map((p) => [p.input, p]));
  } finally {
    await student.release();
  }
}

beforeAll(async () => {
  bed = await loadServeBed('serve-deployment-');
  v1Folder = bed.folder;
  v2Folder = path.join(bed.root, 'student-v2');
  await run(env.python, [path.join(env.projectRoot, 'test', 'fixtures', 'make-encoder-fixture.py'), v2Folder, '--massive-names', '--seed', '1'], { cwd: env.projectRoot });
  brokenFolder = path.join(bed.root, 'student-broken');
  await copyFolder(v1Folder, brokenFolder);
  const model = await fs.readFile(path.join(brokenFolder, 'model.onnx'));
  await fs.writeFile(path.join(brokenFolder, 'model.onnx'), model.subarray(0, Math.floor(model.length / 2)));
  reference.set(v1Folder, await answersOf(v1Folder));
  reference.set(v2Folder, await answersOf(v2Folder));
  inputs = UTTERANCES.filter((u) => {
    const [a, b] = [reference.get(v1Folder)!.get(u)!, reference.get(v2Folder)!.get(u)!];
    return a.call && b.call && Math.abs(a.confidence - b.confidence) > 1e-4;
  });
}, 180_000);

afterAll(async () => bed?.remove());

interface Answer {
  input: string;
  sentAt: number;
  version: string | undefined;
  header: string | null;
  confidence: number;
}

/** Keeps `concurrency` requests in flight until stop(); records every answer and every failure. */
function requestStream(openai: OpenAI, concurrency: number) {
  const answers: Answer[] = [];
  const failures: { input: string; error: string }[] = [];
  let stopped = false;
  let next = 0;
  const loop = async () => {
    while (!stopped) {
      const input = inputs[next++ % inputs.length];
      const sentAt = Date.now();
      try {
        const { data, response } = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: input }] }).withResponse();
        const info = (data as unknown as { supertiny: { model_version?: string; confidence: number } }).supertiny;
        answers.push({ input, sentAt, version: info.model_version, header: response.headers.get(MODEL_VERSION_HEADER), confidence: info.confidence });
      } catch (err) {
        failures.push({ input, error: (err as Error).message });
      }
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    answers,
    failures,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

const health = async (url: string) => (await fetch(`${rootOf({ url })}/healthz`)).json() as Promise<Record<string, any>>;

describe('serve --deployment DIR', () => {
  test('follows promote and rollback under a stream of requests without failing one; refuses a broken version and keeps serving', async () => {
    expect(inputs.length).toBeGreaterThanOrEqual(3);
    const dir = path.join(bed.root, 'deployment');
    const v1 = (await initDeployment(dir, v1Folder, { task: 'massive' })).version;
    const v2 = await addVersion(dir, v2Folder, { task: 'massive' });
    const folderOf = new Map([
      [v1, v1Folder],
      [v2, v2Folder],
    ]);
    const captureDir = path.join(bed.root, 'capture');
    const serving = await startServe(['--deployment', dir, '--model-name', MODEL, '--port', '0', '--deployment-poll-ms', '100', '--capture', captureDir], env);
    const openai = new OpenAI({ baseURL: serving.url, apiKey: 'unused', maxRetries: 0 });
    const stream = requestStream(openai, 8);
    try {
      expect(await health(serving.url)).toMatchObject({ status: 'ok', version: v1, deployment: { served_version: v1, pointer_version: v1, in_sync: true } });
      await waitFor('30 answers from v1', () => stream.answers.length >= 30, { timeoutMs: 30_000 });

      const promoteIssued = Date.now();
      await promote(dir, v2, 'test: promote v2');
      await waitFor('v2 served', async () => (await health(serving.url)).version === v2, { timeoutMs: 60_000 });
      const promotedAt = Date.now();
      await waitFor('30 answers after the promote', () => stream.answers.filter((a) => a.sentAt > promotedAt).length >= 30, { timeoutMs: 30_000 });

      await rollback(dir, 'test: roll back');
      const rollbackAt = Date.now();
      await waitFor('v1 served again', async () => (await health(serving.url)).version === v1, { timeoutMs: 60_000 });
      const rolledBackAt = Date.now();
      await waitFor('30 answers after the rollback', () => stream.answers.filter((a) => a.sentAt > rolledBackAt).length >= 30, { timeoutMs: 30_000 });

      // A version whose model does not load: refused once, named in the log, /healthz and /metrics; v1 goes on.
      const broken = await addVersion(dir, brokenFolder, { task: 'massive' });
      await promote(dir, broken, 'test: a broken version');
      const brokenAt = Date.now();
      await waitFor('the broken version refused', async () => (await health(serving.url)).deployment.swap_error?.version === broken, { timeoutMs: 60_000 });
      await waitFor('30 answers after the broken promote', () => stream.answers.filter((a) => a.sentAt > brokenAt).length >= 30, { timeoutMs: 30_000 });
      const refused = await health(serving.url);
      expect(refused).toMatchObject({ status: 'ok', version: v1, deployment: { served_version: v1, pointer_version: broken, in_sync: false, swaps: { ok: 2, failed: 1 } } });
      expect(refused.deployment.swap_error.reason).toMatch(/does not load/);
      expect(refused.deployment.swap_error.reason).toContain('model.onnx');
      // Not retried at every poll: only a move of the pointer tries again.
      await new Promise((resolve) => setTimeout(resolve, 500));
      let metrics = await metricsOf(serving);
      expect(sample(metrics, 'supertiny_model_swaps_total{outcome="ok"}')).toBe(2);
      expect(sample(metrics, 'supertiny_model_swaps_total{outcome="failed"}')).toBe(1);
      expect(sample(metrics, `supertiny_model_info{version="${v1}",family="encoder"}`)).toBe(1);
      expect(sample(metrics, 'supertiny_deployment_in_sync')).toBe(0);

      // Rolling back off the broken version points at v1, which is served: in sync again, the error cleared.
      await rollback(dir, 'test: off the broken version');
      await waitFor('in sync again', async () => (await health(serving.url)).deployment.in_sync === true, { timeoutMs: 30_000 });
      expect((await health(serving.url)).deployment.swap_error).toBeUndefined();
      metrics = await metricsOf(serving);
      expect(sample(metrics, 'supertiny_deployment_in_sync')).toBe(1);
      expect(sample(metrics, 'supertiny_model_draining_requests')).toBe(0);

      await stream.stop();
      expect(stream.failures).toEqual([]);
      const { answers } = stream;
      expect(answers.length).toBeGreaterThan(120);
      for (const answer of answers) {
        // Each answer names the version that computed it, and its confidence is that version's own.
        expect(answer.header).toBe(answer.version);
        expect(answer.confidence).toBeCloseTo(reference.get(folderOf.get(answer.version!)!)!.get(answer.input)!.confidence, 5);
      }
      const between = (from: number, to: number) => answers.filter((a) => a.sentAt > from && a.sentAt < to).map((a) => a.version);
      expect(new Set(between(0, promoteIssued))).toEqual(new Set([v1]));
      expect(new Set(between(promotedAt, rollbackAt))).toEqual(new Set([v2]));
      expect(new Set(between(rolledBackAt, Number.POSITIVE_INFINITY))).toEqual(new Set([v1]));

      // serve --capture records each line with the version that answered it, not the one served at start.
      await serving.close();
      const lines = (await Promise.all((await fs.readdir(captureDir)).map((f) => fs.readFile(path.join(captureDir, f), 'utf8'))))
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { model_version: string; input: string; student_confidence: number });
      expect(lines.length).toBe(answers.length);
      expect(new Set(lines.map((l) => l.model_version))).toEqual(new Set([v1, v2]));
      for (const line of lines) {
        expect(line.student_confidence).toBeCloseTo(reference.get(folderOf.get(line.model_version)!)!.get(line.input)!.confidence, 5);
      }
    } finally {
      await stream.stop();
      await serving.close();
    }
  }, 240_000);

  test('a version of another task is refused with the reason; a damaged pointer is shown while serving goes on; a deployment without a pointer does not start', async () => {
    const dir = path.join(bed.root, 'deployment-task');
    const v1 = (await initDeployment(dir, v1Folder, { task: 'massive' })).version;
    const other = path.join(bed.root, 'student-v2-other-task');
    await copyFolder(v2Folder, other);
    await fs.writeFile(path.join(other, 'README.txt'), 'the same model, recorded for another task\n');
    const wrong = await addVersion(dir, other, { task: 'other-task' });
    const serving = await startServe(['--deployment', dir, '--port', '0', '--deployment-poll-ms', '50', '--inference-thread', 'main'], env);
    try {
      await promote(dir, wrong, 'test: another task');
      await waitFor('the other task refused', async () => (await health(serving.url)).deployment.swap_error !== undefined, { timeoutMs: 30_000 });
      const status = await health(serving.url);
      expect(status.version).toBe(v1);
      expect(status.model).toBe('deployment-task');
      expect(status.deployment.swap_error).toMatchObject({ version: wrong });
      expect(status.deployment.swap_error.reason).toMatch(/made for task "other-task"; this server serves task "massive"/);

      // A pointer that cannot be read is shown, and serving goes on with the served version.
      await fs.writeFile(path.join(dir, 'current.json'), '{"version": ');
      await waitFor('the pointer error', async () => (await health(serving.url)).deployment.pointer_error, { timeoutMs: 30_000 });
      expect((await health(serving.url)).deployment.pointer_error.reason).toMatch(/current.json is damaged/);
      const openai = new OpenAI({ baseURL: serving.url, apiKey: 'unused', maxRetries: 0 });
      const answer = await openai.chat.completions.create({ model: 'student', messages: [{ role: 'user', content: inputs[0] }] });
      expect((answer as unknown as { supertiny: { model_version: string } }).supertiny.model_version).toBe(v1);
    } finally {
      await serving.close();
    }
    await expect(startServe(['--deployment', path.join(bed.root, 'empty'), '--port', '0'], env)).rejects.toThrow(/has no current.json: nothing is deployed there/);
    await expect(startServe(['--deployment', dir, '--model', v1Folder], env)).rejects.toThrow(/exactly one of --model FOLDER and --deployment DIR/);
    await expect(startServe(['--port', '0'], env)).rejects.toThrow(/exactly one of --model FOLDER and --deployment DIR/);
  }, 120_000);
});

describe('the student holder', () => {
  test('a swapped-out student is released only when the last request that leased it ends', async () => {
    const load = (folder: string) => loadStudent(folder, { task: bed.massive.task, threads: 1 });
    const [first, second]: StudentRuntime[] = await Promise.all([load(v1Folder), load(v2Folder)]);
    const holder = new StudentHolder(first, 'v1');
    const inFlight = holder.acquire();
    let released = false;
    const drained = holder.swap(second, 'v2').then(() => (released = true));
    expect(holder.version).toBe('v2');
    expect(holder.drainingRequests).toBe(1);
    // The lease still runs on the old student, which answers as before.
    const input = inputs[0];
    expect((await inFlight.student.predict(input)).confidence).toBeCloseTo(reference.get(v1Folder)!.get(input)!.confidence, 5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(released).toBe(false);
    const fresh = holder.acquire();
    expect(fresh.version).toBe('v2');
    inFlight.release();
    inFlight.release(); // idempotent: one lease, one release
    await drained;
    expect(released).toBe(true);
    expect(holder.drainingRequests).toBe(0);
    fresh.release();
    await holder.close();
    expect(() => holder.acquire()).toThrow(/closed/);
  }, 60_000);
});

describe('supertiny deploy / rollback / deployment status', () => {
  test('deploy starts a deployment, then adds and promotes; rollback goes back; status shows it all', async () => {
    const dir = path.join(bed.root, 'deployment-cli');
    const first = await deploy(['--deployment', dir, '--model', v1Folder]);
    expect(first).toMatchObject({ action: 'init', task: 'massive', family: 'encoder' });
    const second = await deploy(['--deployment', dir, '--model', v2Folder, '--reason', 'a better student']);
    expect(second).toMatchObject({ action: 'promote', previous: first.version });
    expect(await deploy(['--deployment', dir, '--model', v2Folder])).toMatchObject({ action: 'unchanged', version: second.version });
    expect((await readCurrent(dir))?.version).toBe(second.version);

    // A folder that does not load is refused before the pointer moves.
    await expect(deploy(['--deployment', dir, '--model', brokenFolder])).rejects.toThrow(/student-broken is not deployed: .*model\.onnx/);
    await expect(deploy(['--deployment', dir, '--model', v1Folder, '--task', 'other-task'])).rejects.toThrow(/serves task "massive".*must be of one task/);
    expect((await readCurrent(dir))?.version).toBe(second.version);

    const back = await rollbackDeployment(['--deployment', dir, '--reason', 'worse on traffic']);
    expect(back).toMatchObject({ version: first.version, from: second.version, reason: 'worse on traffic' });
    await expect(rollbackDeployment(['--deployment', dir])).rejects.toThrow(/first one deployed; there is nothing to roll back to/);

    const report = await deploymentStatus(['--deployment', dir, '--history', '2']);
    expect(report.current).toMatchObject({ version: first.version, previous: [] });
    expect(report.versions.map((v) => [v.id, v.current, v.info?.task])).toEqual([
      [first.version, true, 'massive'],
      [second.version, false, 'massive'],
    ].sort());
    expect(report.history.map((h) => h.action)).toEqual(['promote', 'rollback']);
    const text = formatDeploymentStatus(report);
    expect(text).toContain(`current:  ${first.version}`);
    expect(text).toContain('worse on traffic');
    expect((await readHistory(dir)).map((h) => h.action)).toEqual(['init', 'promote', 'rollback']);

    await expect(deploymentStatus(['--deployment', path.join(bed.root, 'nothing')])).rejects.toThrow(/has no current.json/);
    await expect(rollbackDeployment([])).rejects.toThrow(/--deployment DIR is required/);
    await expect(deploy(['--deployment', dir])).rejects.toThrow(/--model FOLDER is required/);
  }, 120_000);

  test('the commands run from the command line: status prints the deployment, rollback switches, errors exit 1 naming the folder', async () => {
    const dir = path.join(bed.root, 'deployment-process');
    const v1 = (await initDeployment(dir, v1Folder, { task: 'massive' })).version;
    const v2 = await addVersion(dir, v2Folder, { task: 'massive' });
    await promote(dir, v2, 'refresh r1');
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', path.join(env.projectRoot, 'cli', 'main.ts'), ...args], { cwd: env.projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        child.once('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const [status, rolled] = [await cli('deployment', 'status', '--deployment', dir), await cli('rollback', '--deployment', dir, '--reason', 'operator')];
    expect(status).toMatchObject({ code: 0 });
    expect(status.stdout).toContain(`current:  ${v2}`);
    expect(status.stdout).toContain(`previous: ${v1}`);
    expect(status.stdout).toMatch(/promote\s+\S+ -> \S+ {2}\(refresh r1\)/);
    expect(rolled).toMatchObject({ code: 0 });
    expect(rolled.stdout).toContain(`rolled back from ${v2} to ${v1} (operator)`);
    const again = await cli('rollback', '--deployment', dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`version ${v1} is the first one deployed`);
    const help = await cli('deploy', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: supertiny deploy --deployment DIR --model FOLDER/);
  }, 120_000);
});
