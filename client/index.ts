// Start and watch pipelines from another service:
//   const client = await connectClient();
//   const handle = await startPipeline(client, { task: { trainLimit: 500 } });
//   console.log(await handle.query(progressQuery));
import { Client, Connection, ScheduleOverlapPolicy, type ScheduleHandle, type WorkflowHandle } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { randomUUID } from 'node:crypto';
import { readEnv, temporalConnectionOptions, type SupertinyEnv } from '../config/env';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import { distillationPipeline } from '../workflows/pipeline';
import { refreshStudent, RefreshInputSchema, type RefreshInput } from '../workflows/refresh';
import { cancelUpdate, progressQuery, type PipelineProgress } from '../workflows/messages';

export { progressQuery, cancelUpdate, cancelSignal } from '../workflows/messages';
export type { PipelineProgress } from '../workflows/messages';
export type { PipelineResult } from '../activities/types';
export { refreshProgressQuery, type RefreshInput, type RefreshResult } from '../workflows/refresh';

/**
 * A client for the env's server and namespace: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
 * TEMPORAL_TLS* and the TOML client profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE), as Temporal's tools read them.
 */
export async function connectClient(env: SupertinyEnv = readEnv()): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(env));
  return new Client({ connection, namespace: env.namespace });
}

export interface StartPipelineOptions {
  workflowId?: string;
  taskQueue?: string;
}

/**
 * Validates the config here, the one parse on the caller's side (an InvalidConfigError names the bad field
 * before anything starts), then starts `distillationPipeline` with the config as given: its first activity
 * resolves it into the run's plan, and a config that names no student family gets the family its task's schema
 * needs, which only the worker knows (the defaults differ by family, so they are filled in once it is chosen).
 */
export async function startPipeline(
  client: Client,
  input: PipelineConfigInput,
  options: StartPipelineOptions = {},
): Promise<WorkflowHandle<typeof distillationPipeline>> {
  const config = parsePipelineConfig(input);
  const env = readEnv();
  return client.workflow.start(distillationPipeline, {
    taskQueue: options.taskQueue ?? env.taskQueue,
    workflowId: options.workflowId ?? `supertiny-${config.name}-${randomUUID().slice(0, 8)}`,
    args: [input],
  });
}

export async function pipelineProgress(handle: WorkflowHandle): Promise<PipelineProgress> {
  return handle.query(progressQuery);
}

export async function cancelPipeline(handle: WorkflowHandle, reason = 'cancelled by client') {
  return handle.executeUpdate(cancelUpdate, { args: [reason] });
}

/**
 * The refresh's input checked here (an error names the bad field before anything starts): the schema's fields,
 * the config, and absolute paths (the worker resolves nothing against the caller's working folder). Returns the
 * config's name (the default's when it names none), which names refresh workflows and schedules.
 */
export function checkRefreshInput(input: RefreshInput): string {
  const parsed = RefreshInputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`invalid refresh input: ${issue.path.join('.') || '(input)'}: ${issue.message}`);
  }
  const { name } = parsePipelineConfig(input.config);
  for (const field of ['deployment', 'traffic'] as const) {
    if (!input[field].startsWith('/')) throw new Error(`invalid refresh input: ${field} must be an absolute path, got ${JSON.stringify(input[field])}`);
  }
  return name;
}

/** Starts `refreshStudent` (workflow id supertiny-refresh-<config name>-<random>, unless given). */
export async function startRefresh(client: Client, input: RefreshInput, options: StartPipelineOptions = {}): Promise<WorkflowHandle<typeof refreshStudent>> {
  const name = checkRefreshInput(input);
  return client.workflow.start(refreshStudent, {
    taskQueue: options.taskQueue ?? readEnv().taskQueue,
    workflowId: options.workflowId ?? `supertiny-refresh-${name}-${randomUUID().slice(0, 8)}`,
    args: [input],
  });
}

export interface RefreshScheduleOptions {
  /** How often, as Temporal reads a duration: "7d", "12h", "30m". */
  every: string;
  /** The schedule's id (default supertiny-refresh-<config name>); each run's workflow id is it plus the run's time. */
  scheduleId?: string;
  taskQueue?: string;
  /** How late a missed run may still start after an outage (default 1 day); older ones are skipped. */
  catchupWindow?: Duration;
}

const DURATION = /^[1-9][0-9]*(s|m|h|d)$/;

/**
 * A Temporal Schedule that starts `refreshStudent` with `input` every `every`. A run that would overlap one still
 * running is skipped (two refreshes must not promote into one deployment at once); runs missed while the server
 * was down start within the catch-up window only. The input (the config included) is fixed at creation.
 */
export async function createRefreshSchedule(client: Client, input: RefreshInput, options: RefreshScheduleOptions): Promise<ScheduleHandle> {
  const name = checkRefreshInput(input);
  if (!DURATION.test(options.every)) throw new Error(`--every must be a duration such as 7d, 12h or 30m, got ${JSON.stringify(options.every)}`);
  const scheduleId = options.scheduleId ?? `supertiny-refresh-${name}`;
  return client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: options.every as Duration }] },
    action: {
      type: 'startWorkflow',
      workflowType: refreshStudent,
      workflowId: scheduleId,
      taskQueue: options.taskQueue ?? readEnv().taskQueue,
      args: [input],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: options.catchupWindow ?? '1 day' },
    memo: { deployment: input.deployment, traffic: input.traffic },
  });
}
