// Follows a running pipeline: the `progress` query gives the stage and step; the stage's pending
// activity heartbeats (training step, labelled items) give the fine-grained bar for long steps.
import { SingleBar, Presets } from 'cli-progress';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { progressQuery, type PipelineProgress } from '../workflows/messages';

interface Fine {
  done: number;
  total: number;
  extra: string;
}

/**
 * Progress of the stage's running trainer activity, from its last heartbeat ({step, total}). Short
 * activities (a label batch takes seconds) finish between throttled heartbeats, so for them the stage's
 * own counts (batches done) are the better bar.
 */
async function activityProgress(client: Client, workflowId: string, stage: string): Promise<Fine | undefined> {
  const child = client.workflow.getHandle(`${workflowId}/${stage}`);
  const description = await child.describe().catch(() => undefined);
  for (const pending of description?.raw.pendingActivities ?? []) {
    const payload = pending.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    // A liveness beat may carry no details (an activity waiting on the teacher before its first chunk).
    const details = defaultPayloadConverter.fromPayload<Record<string, unknown> | null | undefined>(payload as never);
    if (!details || typeof details !== 'object') continue;
    const done = Number(details.step);
    const total = Number(details.total);
    if (!Number.isFinite(done) || !Number.isFinite(total) || total <= 0) continue;
    return { done, total, extra: heartbeatExtra(details) };
  }
  return undefined;
}

/** The bar's suffix from a trainer heartbeat: loss, tokens/s and, for grpo, mean reward, valid share and KL. */
export function heartbeatExtra(details: Record<string, unknown>): string {
  const n = (key: string) => (typeof details[key] === 'number' && Number.isFinite(details[key]) ? (details[key] as number) : undefined);
  const [loss, rate, reward, valid, kl] = ['loss', 'tokensPerSecond', 'reward', 'validShare', 'kl'].map(n);
  return [
    loss !== undefined ? `loss=${loss.toFixed(3)}` : '',
    rate !== undefined ? `${Math.round(rate)} tok/s` : '',
    reward !== undefined ? `reward=${reward.toFixed(3)}` : '',
    valid !== undefined ? `valid=${(valid * 100).toFixed(1)}%` : '',
    kl !== undefined ? `kl=${kl.toFixed(4)}` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

export async function watchPipeline(client: Client, handle: WorkflowHandle, options: { intervalMs?: number; stream?: NodeJS.WriteStream } = {}): Promise<void> {
  const stream = options.stream ?? process.stderr;
  let bar: SingleBar | undefined;
  let label = '';
  // cli-progress estimates from every update; progress arrives with heartbeats, less often than the
  // bar is refreshed, so its estimate swings to "INF". The estimate here is the average rate since the
  // bar started.
  let started = { at: 0, value: 0 };
  let finished = false;
  const result = handle.result().finally(() => (finished = true));
  result.catch(() => undefined);
  while (!finished) {
    const p: PipelineProgress | undefined = await handle.query(progressQuery).catch(() => undefined);
    if (p && p.status === 'running') {
      const fine = await activityProgress(client, handle.workflowId, p.stage);
      // The stage's step names the running trainer step (the activity is trainerStep for all of them).
      const nextLabel = fine ? `${p.stage}/${p.step}` : `${p.stage}: ${p.step}`;
      const done = fine ? fine.done : p.done;
      const total = Math.max(fine ? fine.total : p.total, 1);
      if (nextLabel !== label) {
        bar?.stop();
        label = nextLabel;
        bar = new SingleBar(
          { format: `${label.padEnd(30).slice(0, 30)} [{bar}] {value}/{total} eta {remaining} {extra}`, stream, noTTYOutput: true, notTTYSchedule: 15000 },
          Presets.shades_classic,
        );
        started = { at: Date.now(), value: done };
        bar.start(total, done, { extra: '', remaining: '–' });
      }
      bar?.setTotal(total);
      bar?.update(done, { extra: fine?.extra ?? '', remaining: formatEta(started, done, total) });
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, options.intervalMs ?? 1000))]);
  }
  bar?.stop();
}

/** Remaining time at the average rate since `started`, as "1h02m", "3m05s" or "12s"; "–" before any progress. */
export function formatEta(started: { at: number; value: number }, done: number, total: number, now = Date.now()): string {
  const progressed = done - started.value;
  if (progressed <= 0 || now <= started.at) return '–';
  const seconds = Math.max(0, Math.round(((total - done) * (now - started.at)) / progressed / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const sec = seconds % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}
