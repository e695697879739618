// Queries, signals and updates of the pipeline, with the types they carry. No I/O: workflow-safe.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { ArtifactRef } from '../artifacts/ref';
import type { StageName } from '../config/stages';

export type PipelineStatus = 'running' | 'completed' | 'cancelled' | 'failed';
export { STAGES, pipelineWorkflowIdOf, stageWorkflowId, type StageName } from '../config/stages';

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
