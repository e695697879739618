// Overlapping attempts of an activity that runs the trainer in one run folder: only a stale trainer (its
// worker gone, or an earlier attempt's) is stopped; a newer attempt's or another activity's never is.
// The trainer here is a stand-in script that speaks the trainer's JSON-lines contract.
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { readEnv, type SupertinyEnv } from '../config/env';
import { processIdentity, runTrainer } from '../activities/trainer/trainer-process';
import { waitFor } from '../runtime/wait-for';

let root: string;
let env: SupertinyEnv;
let release: string;
beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'trainer-attempts-'));
  release = path.join(root, 'release');
  // Holds until the test creates `release`, then reports done.
  const script = path.join(root, 'fake-trainer.sh');
  await fs.writeFile(script, `#!/bin/sh\nwhile [ ! -e '${release}' ]; do sleep 0.05; done\necho '{"event":"done","metrics":{"ok":1},"outputs":{}}'\n`, { mode: 0o755 });
  env = { ...readEnv(), python: script };
});
afterEach(async () => {
  await fs.writeFile(release, '');
  await fs.rm(root, { recursive: true, force: true });
});

const quiet = new DefaultLogger('ERROR');
const attempt = (n: number, activityId = 'evaluateModels') =>
  new MockActivityEnvironment(
    { attempt: n, activityId, workflowExecution: { workflowId: 'wf', runId: 'run' }, startToCloseTimeoutMs: 60_000, scheduleToCloseTimeoutMs: 0, heartbeatTimeoutMs: 5000 },
    { logger: quiet },
  );
const predict = (runDir: string) => () => runTrainer({ env, command: 'predict', runDir, config: {} });
const owner = async (runDir: string) => JSON.parse(await fs.readFile(path.join(runDir, 'trainer.pid'), 'utf8').catch(() => '{}')) as { pid?: number; attempt?: number };
/** Running: it exists and is not a zombie waiting to be reaped. */
const running = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('an earlier attempt that arrives late does not kill the newer attempt\'s trainer: it stops itself', async () => {
  const runDir = path.join(root, 'run');
  const second = attempt(2).run(predict(runDir));
  await waitFor('attempt 2 to start its trainer', async () => (await owner(runDir)).attempt === 2);
  const { pid } = await owner(runDir);
  const late = await attempt(1).run(predict(runDir)).catch((err: unknown) => err);
  expect(late).toBeInstanceOf(ApplicationFailure);
  expect(late).toMatchObject({ type: 'AttemptSuperseded' });
  expect(alive(pid!)).toBe(true);
  await fs.writeFile(release, '');
  await expect(second).resolves.toMatchObject({ event: 'done', metrics: { ok: 1 } });
});

test('a newer attempt stops the trainer of the earlier one it supersedes, which leaves the newer one\'s record alone', async () => {
  const runDir = path.join(root, 'run');
  const first = attempt(1).run(predict(runDir)).catch((err: unknown) => err);
  await waitFor('attempt 1 to start its trainer', async () => (await owner(runDir)).attempt === 1);
  const { pid: firstPid } = await owner(runDir);
  const second = attempt(2).run(predict(runDir));
  expect(await first).toBeInstanceOf(Error);
  expect(alive(firstPid!)).toBe(false);
  await waitFor('attempt 2 to start its trainer', async () => (await owner(runDir)).attempt === 2);
  await fs.writeFile(release, '');
  await expect(second).resolves.toMatchObject({ event: 'done' });
});

test('a trainer whose worker is gone (killed with SIGKILL) is stopped before a new one starts', async () => {
  const runDir = path.join(root, 'run');
  await fs.mkdir(runDir, { recursive: true });
  const orphan = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  const gone = 2 ** 22 + 17; // above pid_max: no such process
  const { startTime, bootId } = (await processIdentity(orphan.pid!))!;
  await fs.writeFile(path.join(runDir, 'trainer.pid'), JSON.stringify({ pid: orphan.pid, startTime, bootId, host: os.hostname(), workerPid: gone, activity: 'wf/old/evaluateModels', attempt: 3 }));
  const run = attempt(1).run(predict(runDir));
  await waitFor('the orphaned trainer to be stopped', () => !running(orphan.pid!));
  await fs.writeFile(release, '');
  await expect(run).resolves.toMatchObject({ event: 'done' });
});

test('a process that only has the pid in trainer.pid (its start time differs: the pid was reused) is never killed', async () => {
  const runDir = path.join(root, 'run');
  await fs.mkdir(runDir, { recursive: true });
  // After a container restart the pids repeat: the record's pid now names an unrelated process (group).
  const unrelated = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  try {
    const { startTime, bootId } = (await processIdentity(unrelated.pid!))!;
    const gone = 2 ** 22 + 17;
    const record = { pid: unrelated.pid, bootId, host: os.hostname(), workerPid: gone, activity: 'wf/old/evaluateModels', attempt: 3 };
    for (const recorded of [{ ...record, startTime: String(Number(startTime) - 1) }, { ...record, startTime, bootId: 'another-boot' }, record]) {
      await fs.writeFile(path.join(runDir, 'trainer.pid'), JSON.stringify(recorded));
      const run = attempt(1).run(predict(runDir));
      await waitFor('the new trainer to start', async () => (await owner(runDir)).attempt === 1);
      expect(running(unrelated.pid!)).toBe(true);
      await fs.writeFile(release, '');
      await expect(run).resolves.toMatchObject({ event: 'done' });
      await fs.rm(release);
    }
  } finally {
    unrelated.kill('SIGKILL');
  }
});

test('the trainer gets an allow-listed environment: paths, locale and its library flags, never a teacher key or TEMPORAL_API_KEY', async () => {
  const runDir = path.join(root, 'run');
  const script = path.join(root, 'env-trainer.sh');
  // The run folder is the 7th argument (-m supertiny_trainer predict --config FILE --run-dir DIR).
  await fs.writeFile(script, `#!/bin/sh\nenv > "$7/env.txt"\necho '{"event":"done","metrics":{},"outputs":{}}'\n`, { mode: 0o755 });
  const secrets = { OPENAI_API_KEY: 'sk-teacher-0123456789', TEMPORAL_API_KEY: 'tmprl-0123456789', HF_TOKEN: 'hf_0123456789', CUDA_API_KEY: 'cuda-key-0123456789' };
  const worker = readEnv({ ...process.env, ...secrets, CUDA_VISIBLE_DEVICES: '0', OMP_NUM_THREADS: '2', HF_HOME: '/tmp/hf-home', LC_ALL: 'C.UTF-8' });
  await attempt(1).run(() => runTrainer({ env: { ...worker, python: script }, command: 'predict', runDir, config: {} }));
  const seen = Object.fromEntries(
    (await fs.readFile(path.join(runDir, 'env.txt'), 'utf8'))
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  expect(seen).toMatchObject({ PATH: process.env.PATH, CUDA_VISIBLE_DEVICES: '0', OMP_NUM_THREADS: '2', HF_HOME: '/tmp/hf-home', LC_ALL: 'C.UTF-8', HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' });
  for (const [name, value] of Object.entries(secrets)) {
    expect(Object.keys(seen)).not.toContain(name);
    expect(Object.values(seen)).not.toContain(value);
  }
});

test('a live trainer of another activity in the folder is left alone and the attempt is retried later', async () => {
  const runDir = path.join(root, 'run');
  const other = attempt(1, 'scoreStudentOnDev').run(predict(runDir));
  await waitFor('the other activity to start its trainer', async () => (await owner(runDir)).attempt === 1);
  const { pid } = await owner(runDir);
  await expect(attempt(1).run(predict(runDir))).rejects.toMatchObject({ type: 'TrainerBusy' });
  expect(alive(pid!)).toBe(true);
  await fs.writeFile(release, '');
  await expect(other).resolves.toMatchObject({ event: 'done' });
});
