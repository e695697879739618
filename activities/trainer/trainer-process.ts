// The durable adapter around the Python trainer (trainer/, see DESIGN.md "Trainer CLI"):
// runs one command as a child process in its own process group, turns `progress` and `checkpoint`
// events into heartbeats, kills the whole group when the activity is cancelled, and resumes from the
// newest checkpoint when an attempt is retried.
import { spawn } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { ApplicationFailure } from '@temporalio/common';
import { writeFileAtomic } from '../../artifacts/atomic-write';
import { FailureType, trainerFailureType } from '../../config/failure-types';
import { Context } from '@temporalio/activity';
import type { SupertinyEnv } from '../../config/env';
import { createLogger } from '../../config/logger';
import type { TrainerCommand } from '../../config/trainer-contract';
import { waitFor } from '../../runtime/wait-for';

const log = createLogger('trainer');

export type { TrainerCommand } from '../../config/trainer-contract';

export type TrainerEvent =
  | { event: 'progress'; step: number; total: number; loss?: number; tokens_per_s?: number; [k: string]: unknown }
  | { event: 'checkpoint'; step: number; path: string }
  | { event: 'done'; metrics: Record<string, number>; outputs: Record<string, string> }
  | { event: 'error'; kind: string; message: string };

export type TrainerDone = Extract<TrainerEvent, { event: 'done' }>;

/** Heartbeat details of a trainer activity: where a retry resumes. */
export interface TrainerHeartbeat {
  step: number;
  total: number;
  checkpoint?: string;
  /** The step of `checkpoint` (progress events move `step` on past it). */
  checkpointStep?: number;
  loss?: number;
  tokensPerSecond?: number;
  /** grpo: mean reward of the sampled calls, share of them the schema accepts, KL to the reference model. */
  reward?: number;
  validShare?: number;
  kl?: number;
}

/** The heartbeat fields a progress event sets (grpo's reward statistics only when the event has them). */
export function progressHeartbeat(beat: TrainerHeartbeat, event: Extract<TrainerEvent, { event: 'progress' }>): TrainerHeartbeat {
  const number = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
  return {
    ...beat,
    step: event.step,
    total: event.total,
    loss: event.loss,
    tokensPerSecond: event.tokens_per_s,
    reward: number(event.reward),
    validShare: number(event.valid_share),
    kl: number(event.kl),
  };
}

/** Error kinds for which a retry of the same activity cannot help. */
export const NON_RETRYABLE_KINDS = new Set(['config', 'data', 'missing_model', 'oom']);

export interface RunTrainerOptions {
  env: SupertinyEnv;
  command: TrainerCommand;
  config: Record<string, unknown>;
  /** Stable across attempts of one activity, so a retry finds the checkpoints. */
  runDir: string;
  onEvent?: (event: TrainerEvent) => void;
}


export async function runTrainer(options: RunTrainerOptions): Promise<TrainerDone> {
  const { env, command, config, runDir } = options;
  await fs.mkdir(runDir, { recursive: true });
  const ctx = currentActivity();
  const me = await ownerOf(ctx);
  await stopStaleTrainer(runDir, me);
  const configPath = path.join(runDir, `${command}.config.json`);
  await writeFileAtomic(configPath, JSON.stringify(config, null, 2));

  const previous = ctx?.info.heartbeatDetails as TrainerHeartbeat | undefined;
  const resume = previous?.checkpoint !== undefined || (await hasCheckpoint(runDir));
  const args = ['-m', 'supertiny_trainer', command, '--config', configPath, '--run-dir', runDir, ...(resume ? ['--resume'] : [])];
  log.info(`${command}: ${resume ? `resuming from the newest checkpoint in ${runDir}` : `starting in ${runDir}`}`);

  const child = spawn(env.python, args, {
    cwd: env.projectRoot,
    // An allow-list of the worker's environment: no teacher key or TEMPORAL_API_KEY reaches the trainer.
    env: { ...env.trainerEnv, PYTHONPATH: path.join(env.projectRoot, 'trainer'), HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', PYTHONUNBUFFERED: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group: cancellation kills the trainer and anything it started
  });
  // Listened to before any await: a trainer that exits at once must not be missed.
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });

  const stderrTail: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) stderrTail.push(line);
    stderrTail.splice(0, Math.max(0, stderrTail.length - 40));
  });

  let done: TrainerDone | undefined;
  let error: Extract<TrainerEvent, { event: 'error' }> | undefined;
  let beat: TrainerHeartbeat = {
    step: previous?.step ?? 0,
    total: previous?.total ?? 0,
    checkpoint: previous?.checkpoint,
    checkpointStep: previous?.checkpointStep,
  };
  const lines = readline.createInterface({ input: child.stdout! });
  // Every event also goes to <runDir>/events.jsonl, so a run can be inspected after the fact.
  const eventLog = createWriteStream(path.join(runDir, 'events.jsonl'), { flags: 'a' });
  lines.on('line', (line) => {
    let event: TrainerEvent;
    try {
      event = JSON.parse(line) as TrainerEvent;
    } catch {
      log.debug(`${command} stdout: ${line}`);
      return;
    }
    eventLog.write(JSON.stringify({ command, at: new Date().toISOString(), ...event }) + '\n');
    if (event.event === 'progress') {
      beat = progressHeartbeat(beat, event);
      ctx?.heartbeat(beat);
    } else if (event.event === 'checkpoint') {
      beat = { ...beat, step: event.step, checkpoint: event.path, checkpointStep: event.step };
      ctx?.heartbeat(beat);
    } else if (event.event === 'done') done = event;
    else if (event.event === 'error') error = event;
    options.onEvent?.(event);
  });

  const pidFile = path.join(runDir, 'trainer.pid');
  const started = child.pid === undefined ? undefined : await processIdentity(child.pid);
  await writeFileAtomic(pidFile, JSON.stringify({ ...me, pid: child.pid ?? -1, ...(started ? { startTime: started.startTime } : {}) } satisfies TrainerOwner));

  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* already gone */
    }
  };
  const onCancel = () => {
    log.warn(`${command}: activity cancelled, stopping the trainer process group`);
    killGroup('SIGTERM');
    setTimeout(() => killGroup('SIGKILL'), 5000).unref();
  };
  ctx?.cancellationSignal.addEventListener('abort', onCancel);
  if (ctx?.cancellationSignal.aborted) onCancel(); // cancelled while the pid file was written
  // Liveness: some commands (export, quantize, predict) are quiet for a while; beat while the process lives.
  const beatEveryMs = Math.max(1000, Math.min(10_000, (ctx?.info.heartbeatTimeoutMs ?? 30_000) / 3));
  const liveness = ctx ? setInterval(() => ctx.heartbeat(beat), beatEveryMs) : undefined;

  const exitCode = await exited;
  ctx?.cancellationSignal.removeEventListener('abort', onCancel);
  if (liveness) clearInterval(liveness);
  await new Promise<void>((resolve) => eventLog.end(resolve));
  // Only our own record: a newer attempt may have taken the folder over meanwhile.
  if ((await readOwner(runDir))?.pid === child.pid) await fs.rm(pidFile, { force: true });

  if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
  if (error) {
    const message = `trainer ${command} failed (${error.kind}): ${error.message}`;
    throw ApplicationFailure.create({
      message,
      type: trainerFailureType(error.kind),
      nonRetryable: NON_RETRYABLE_KINDS.has(error.kind),
      details: [{ kind: error.kind, stderr: stderrTail.slice(-10) }],
    });
  }
  if (exitCode !== 0 || !done) {
    throw new Error(`trainer ${command} exited with code ${exitCode} without a done event; last stderr:\n${stderrTail.slice(-15).join('\n')}`);
  }
  return done;
}

/** The trainer publishes complete checkpoints as <runDir>/checkpoints/checkpoint-N (atomic renames). */
async function hasCheckpoint(runDir: string): Promise<boolean> {
  const entries = await fs.readdir(path.join(runDir, 'checkpoints')).catch(() => [] as string[]);
  return entries.some((e) => /^checkpoint-\d+$/.test(e));
}

/** Who runs the trainer in a run dir (trainer.pid): tells a stale trainer from a live attempt's. */
interface TrainerOwner {
  /** The trainer's process (and process group) id. */
  pid: number;
  /** The trainer's start time (/proc/<pid>/stat field 22): a pid reused by another process has another. */
  startTime?: string;
  host: string;
  /** The kernel's boot id: pids and start times of another boot (or another machine) mean nothing here. */
  bootId?: string;
  /** The worker process that started it, and its start time. */
  workerPid: number;
  workerStartTime?: string;
  /** workflow id / run id / activity id, or the process outside an activity. */
  activity: string;
  attempt: number;
}

/** The kernel's boot id, where /proc has one (Linux). */
async function bootId(): Promise<string | undefined> {
  return (await fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => undefined))?.trim() || undefined;
}

/**
 * What tells a process from a later one with the same pid: its start time in clock ticks after boot
 * (/proc/<pid>/stat field 22), with the boot id. Undefined where there is no /proc or no such process.
 */
export async function processIdentity(pid: number): Promise<{ startTime: string; bootId: string } | undefined> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  const boot = await bootId();
  if (!stat || !boot) return undefined;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTime = fields[22 - 3];
  return startTime ? { startTime, bootId: boot } : undefined;
}

/** Whether `pid` is still the process that was recorded with `startTime` during boot `boot`. */
async function sameProcess(pid: number, startTime: string | undefined, boot: string | undefined): Promise<boolean> {
  if (startTime === undefined || boot === undefined) return false;
  const now = await processIdentity(pid);
  return now !== undefined && now.bootId === boot && now.startTime === startTime;
}

async function ownerOf(ctx: Context | undefined): Promise<Omit<TrainerOwner, 'pid'>> {
  const info = ctx?.info;
  const worker = await processIdentity(process.pid);
  return {
    host: os.hostname(),
    ...(worker ? { bootId: worker.bootId } : {}),
    workerPid: process.pid,
    ...(worker ? { workerStartTime: worker.startTime } : {}),
    activity: info ? `${info.workflowExecution?.workflowId}/${info.workflowExecution?.runId}/${info.activityId}` : `process-${process.pid}`,
    attempt: info?.attempt ?? 0,
  };
}

async function readOwner(runDir: string): Promise<TrainerOwner | undefined> {
  const text = await fs.readFile(path.join(runDir, 'trainer.pid'), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as TrainerOwner | number;
    // A bare pid (older workers): its owner is unknown, so it counts as stale.
    if (typeof parsed === 'number') return { pid: parsed, host: os.hostname(), workerPid: -1, activity: 'unknown', attempt: -1 };
    return parsed;
  } catch {
    return undefined;
  }
}

/** Whether a process (pid) or a process group (-pid) exists. */
const alive = (pid: number) => {
  if (!Number.isInteger(pid) || Math.abs(pid) <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Before a trainer starts in `runDir`, one that is already there is stopped only when it is stale: its
 * worker is gone (killed with SIGKILL), or it belongs to an earlier attempt of the same activity, which
 * the server has given up on. A newer attempt's or another activity's live trainer is never killed, nor a
 * process that only has the recorded pid (after a container restart the pids repeat, the worker's too): the
 * trainer and its worker count as themselves only while their start times and the boot id match the record.
 */
async function stopStaleTrainer(runDir: string, me: Omit<TrainerOwner, 'pid'>): Promise<void> {
  const owner = await readOwner(runDir);
  if (!owner || owner.pid <= 1 || !alive(-owner.pid)) return;
  if (owner.host !== me.host) {
    log.warn(`a trainer started on ${owner.host} may still run in ${runDir}; it cannot be stopped from here`);
    return;
  }
  if (!(await sameProcess(owner.pid, owner.startTime, owner.bootId))) {
    log.warn(`trainer.pid in ${runDir} names pid ${owner.pid}, which is not (or cannot be shown to be) the trainer it recorded: left alone`);
    return;
  }
  const workerGone = owner.workerPid <= 0 || !(await sameProcess(owner.workerPid, owner.workerStartTime, owner.bootId));
  const sameActivity = owner.activity === me.activity;
  if (!workerGone && sameActivity && owner.attempt > me.attempt) {
    throw ApplicationFailure.create({
      message: `attempt ${owner.attempt} of this activity runs the trainer in ${runDir}; attempt ${me.attempt} is superseded and stops`,
      type: FailureType.AttemptSuperseded,
    });
  }
  if (!workerGone && !sameActivity) {
    throw ApplicationFailure.create({
      message: `another activity (${owner.activity}) runs a trainer in ${runDir} (pid ${owner.pid}); retrying later`,
      type: FailureType.TrainerBusy,
    });
  }
  try {
    process.kill(-owner.pid, 'SIGKILL');
    log.warn(`stopped a stale trainer process group ${owner.pid} left by ${workerGone ? 'a worker that is gone' : `attempt ${owner.attempt}`}`);
  } catch {
    return;
  }
  // A group that outlives SIGKILL (a process stuck in the kernel) does not hold the new trainer back: say so, go on.
  await waitFor(`the stale trainer process group ${owner.pid} to end`, () => !alive(-owner.pid), { timeoutMs: 5_000 }).catch((err: Error) => log.warn(err.message));
}

function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
