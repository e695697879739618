// Follows a running pipeline: the `progress` query gives the stage and step; the stage's pending
// activity heartbeats (training step, labelled items) give the fine-grained bar for long steps.
import { SingleBar, Presets } from 'cli-progress';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { progressQuery, type PipelineProgress } from '../workflows/messages';

interface Fine {
  activity: string;
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
    const details = defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload as never);
    const done = Number(details.step);
    const total = Number(details.total);
    if (!Number.isFinite(done) || !Number.isFinite(total) || total <= 0) continue;
    const extra = [
      typeof details.loss === 'number' ? `loss=${details.loss.toFixed(3)}` : '',
      typeof details.tokensPerSecond === 'number' ? `${Math.round(details.tokensPerSecond)} tok/s` : '',
    ]
      .filter(Boolean)
      .join(' ');
    return { activity: pending.activityType?.name ?? 'activity', done, total, extra };
  }
  return undefined;
}

export async function watchPipeline(client: Client, handle: WorkflowHandle, options: { intervalMs?: number; stream?: NodeJS.WriteStream } = {}): Promise<void> {
  const stream = options.stream ?? process.stderr;
  let bar: SingleBar | undefined;
  let label = '';
  let finished = false;
  const result = handle.result().finally(() => (finished = true));
  result.catch(() => undefined);
  while (!finished) {
    const p: PipelineProgress | undefined = await handle.query(progressQuery).catch(() => undefined);
    if (p && p.status === 'running') {
      const fine = await activityProgress(client, handle.workflowId, p.stage);
      const nextLabel = fine ? `${p.stage}/${fine.activity}` : `${p.stage}: ${p.step}`;
      const done = fine ? fine.done : p.done;
      const total = Math.max(fine ? fine.total : p.total, 1);
      if (nextLabel !== label) {
        bar?.stop();
        label = nextLabel;
        bar = new SingleBar(
          { format: `${label.padEnd(30).slice(0, 30)} [{bar}] {value}/{total} eta {eta_formatted} {extra}`, stream, noTTYOutput: true, notTTYSchedule: 15000 },
          Presets.shades_classic,
        );
        bar.start(total, done, { extra: '' });
      }
      bar?.setTotal(total);
      bar?.update(done, { extra: fine?.extra ?? '' });
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, options.intervalMs ?? 1000))]);
  }
  bar?.stop();
}
