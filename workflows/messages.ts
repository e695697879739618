// Queries, signals and updates of the pipeline, with the types they carry. No I/O: workflow-safe.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { ArtifactRef } from '../artifacts/ref';

export const STAGES = ['prototype', 'transfer', 'compress', 'evaluate'] as const;
export type StageName = (typeof STAGES)[number];
export type PipelineStatus = 'running' | 'completed' | 'cancelled' | 'failed';

/** The workflow id of a pipeline's stage (a child workflow of the pipeline). */
export function stageWorkflowId(pipelineWorkflowId: string, stage: StageName): string {
  return `${pipelineWorkflowId}/${stage}`;
}

/**
 * The pipeline a workflow belongs to, from its id and type: a stage's parent (stageWorkflowId), else the
 * workflow itself. Activities use it for what is pipeline-wide (the teacher budget's ledger).
 */
export function pipelineWorkflowIdOf(workflowId: string, workflowType: string): string {
  const stage = STAGES.find((s) => workflowType === `${s}Stage` && workflowId.endsWith(`/${s}`));
  return stage ? workflowId.slice(0, -(stage.length + 1)) : workflowId;
}

/** Keyword search attribute with the current stage, registered by `supertiny server` and the worker. */
export const STAGE_SEARCH_ATTRIBUTE = defineSearchAttributeKey('SupertinyStage', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = { SupertinyStage: 'Keyword' } as const;

export interface StageProgress {
  stage: StageName;
  /** The step within the stage, e.g. "label batch 3/12" or "sft". */
  step: string;
  /** Work items done and expected in the current step (batches, epochs, ...). */
  done: number;
  total: number;
  counts?: Record<string, number>;
  /** Measurements of the step, e.g. grpo's mean reward, schema-valid share and KL to the reference. */
  metrics?: Record<string, number>;
}

export interface PipelineProgress extends StageProgress {
  status: PipelineStatus;
  stagesDone: StageName[];
  artifacts: Record<string, ArtifactRef>;
  recoveries: number;
  cancelReason?: string;
}

export const progressQuery = defineQuery<PipelineProgress>('progress');
/** Sent by stage child workflows to their parent. */
export const stageProgressSignal = defineSignal<[StageProgress]>('stageProgress');
/** Fire-and-forget cancel. */
export const cancelSignal = defineSignal<[reason: string]>('cancel');
/** Cancel that answers once the request is accepted; rejected if the pipeline already finished. */
export const cancelUpdate = defineUpdate<{ accepted: true; stage: StageName }, [reason: string]>('requestCancel');
