// Start and watch pipelines from another service:
//   const client = await connectClient();
//   const handle = await startPipeline(client, { task: { trainLimit: 500 } });
//   console.log(await handle.query(progressQuery));
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { readEnv, temporalConnectionOptions, type SupertinyEnv } from '../config/env';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import { distillationPipeline } from '../workflows/pipeline';
import { cancelUpdate, progressQuery, type PipelineProgress } from '../workflows/messages';

export { progressQuery, cancelUpdate, cancelSignal } from '../workflows/messages';
export type { PipelineProgress } from '../workflows/messages';
export type { PipelineResult } from '../activities/types';

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
 * Validates the config here (an InvalidConfigError names the bad field before anything starts), then starts
 * `distillationPipeline` with the config as given: the workflow fills in the defaults, and a config that names
 * no student family gets the family its task's schema needs, which only the worker knows (the defaults differ
 * by family, so they are filled in once the family is chosen).
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
