// `supertiny refresh` and `supertiny schedule`: start a refresh of a deployed student now, or on a Temporal
// Schedule. The schedules are ordinary Temporal Schedules: `temporal schedule list|describe|trigger|toggle|delete`
// works on them as well.
import * as path from 'node:path';
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { SupertinyEnv } from '../config/env';
import { connectClient, createRefreshSchedule, refreshProgressQuery, startRefresh, type RefreshInput } from '../client';
import { readConfigFile } from './config-file';

export const REFRESH_USAGE = `usage: supertiny refresh --deployment DIR --config FILE --traffic PATH [--wait] [--workflow-id ID]
                         [--fresh-share 0.3] [--frozen-tolerance 0.5] [--fresh-min-gain 0]
  Labels the traffic (captured requests from serve --capture, or a task data file; a file or a folder of
  *.jsonl) through the teacher and its request cache, trains a candidate from the deployed student, runs the
  pipeline's compression and gates, and promotes it into DIR (current.json) only when its exact match on the
  frozen split is at least the deployed one's minus --frozen-tolerance points and on the fresh slice of the
  traffic (--fresh-share of it, teacher labels as reference) more than --fresh-min-gain points above it.
  Prints the workflow id; with --wait, the result (the decision and the report's path).`;

export const SCHEDULE_USAGE = `usage: supertiny schedule create --every 7d --deployment DIR --config FILE --traffic PATH [--id NAME]
                              [--fresh-share 0.3] [--frozen-tolerance 0.5] [--fresh-min-gain 0]
       supertiny schedule pause|unpause|trigger|delete ID
       supertiny schedule list
  A Temporal Schedule that starts refreshStudent every --every (s, m, h or d) with these arguments (the config is
  read now); a run that would overlap a running one is skipped, and runs missed during an outage start only
  within a day. The default id is supertiny-refresh-<config name>. Temporal's CLI sees the same schedules:
  temporal schedule list | describe --schedule-id ID | trigger --schedule-id ID | toggle --pause --schedule-id ID | delete --schedule-id ID`;

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function required(args: readonly string[], name: string, usage: string): string {
  const value = flag(args, name);
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} is required\n${usage}`);
  return value;
}

function number(args: readonly string[], name: string): number | undefined {
  const value = flag(args, name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

/** The refresh's input from the command line: paths made absolute, the config file read and checked. */
export async function refreshInputFrom(args: readonly string[], usage: string): Promise<RefreshInput> {
  const input: RefreshInput = {
    deployment: path.resolve(required(args, '--deployment', usage)),
    traffic: path.resolve(required(args, '--traffic', usage)),
    config: await readConfigFile(required(args, '--config', usage)),
  };
  const freshShare = number(args, '--fresh-share');
  const frozenTolerancePoints = number(args, '--frozen-tolerance');
  const freshMinGainPoints = number(args, '--fresh-min-gain');
  return {
    ...input,
    ...(freshShare !== undefined ? { freshShare } : {}),
    ...(frozenTolerancePoints !== undefined ? { frozenTolerancePoints } : {}),
    ...(freshMinGainPoints !== undefined ? { freshMinGainPoints } : {}),
  };
}

export async function refreshCommand(args: readonly string[], env: SupertinyEnv, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) return void out.write(`${REFRESH_USAGE}\n`);
  const input = await refreshInputFrom(args, REFRESH_USAGE);
  const client = await connectClient(env);
  const handle = await startRefresh(client, input, { workflowId: flag(args, '--workflow-id'), taskQueue: env.taskQueue });
  out.write(`started ${handle.workflowId}\n`);
  if (!args.includes('--wait')) return;
  let last = '';
  const timer = setInterval(() => {
    handle
      .query(refreshProgressQuery)
      .then((p) => {
        const line = `${p.step} (${p.done}/${p.total})${p.stage ? ` · ${p.stage.stage}: ${p.stage.step} ${p.stage.done}/${p.stage.total}` : ''}`;
        if (line !== last) process.stderr.write(`${line}\n`);
        last = line;
      })
      .catch(() => undefined);
  }, 5_000);
  try {
    out.write(`${JSON.stringify(await handle.result(), null, 2)}\n`);
  } finally {
    clearInterval(timer);
  }
}

/**
 * The refresh schedules, each with its state from describe: the list comes from the visibility store, which
 * catches up with a pause or an unpause a moment later, so its own `paused` can be stale right after one.
 */
async function listSchedules(client: Client, out: NodeJS.WritableStream): Promise<void> {
  for await (const listed of client.schedule.list()) {
    const action = listed.action?.type === 'startWorkflow' ? listed.action.workflowType : '';
    if (action !== 'refreshStudent') continue;
    let schedule;
    try {
      schedule = await client.schedule.getHandle(listed.scheduleId).describe();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) continue; // deleted since the list was read
      throw err;
    }
    const next = schedule.info.nextActionTimes[0]?.toISOString() ?? 'none';
    out.write(`${schedule.scheduleId}\t${schedule.state.paused ? 'paused' : 'active'}\tnext ${next}\t${schedule.memo?.deployment ?? ''}\n`);
  }
}

export async function scheduleCommand(args: readonly string[], env: SupertinyEnv, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const [action, id] = args;
  if (action === undefined || action === '--help' || action === '-h') return void out.write(`${SCHEDULE_USAGE}\n`);
  const client = await connectClient(env);
  if (action === 'create') {
    const input = await refreshInputFrom(args, SCHEDULE_USAGE);
    const handle = await createRefreshSchedule(client, input, { every: required(args, '--every', SCHEDULE_USAGE), scheduleId: flag(args, '--id'), taskQueue: env.taskQueue });
    return void out.write(`created schedule ${handle.scheduleId}\n`);
  }
  if (action === 'list') return listSchedules(client, out);
  if (!['pause', 'unpause', 'trigger', 'delete'].includes(action)) throw new Error(`unknown schedule command ${JSON.stringify(action)}\n${SCHEDULE_USAGE}`);
  if (id === undefined || id.startsWith('--')) throw new Error(`schedule ${action} needs the schedule's id\n${SCHEDULE_USAGE}`);
  const handle = client.schedule.getHandle(id);
  try {
    if (action === 'pause') await handle.pause('paused with supertiny schedule pause');
    else if (action === 'unpause') await handle.unpause('unpaused with supertiny schedule unpause');
    // A manual run skips too while one runs: two refreshes must not promote into one deployment at once.
    else if (action === 'trigger') await handle.trigger(ScheduleOverlapPolicy.SKIP);
    else await handle.delete();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw new Error(`no schedule ${JSON.stringify(id)} in namespace ${env.namespace} (supertiny schedule list shows them)`);
    throw err;
  }
  out.write(`${action === 'delete' ? 'deleted' : action === 'trigger' ? 'triggered' : `${action}d`} schedule ${id}\n`);
}
