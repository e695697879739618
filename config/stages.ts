// The pipeline's stages and the workflow ids they run under: pure, for workflows and activities alike (the
// spend ledger finds its pipeline from an activity's workflow id).
export const STAGES = ['prototype', 'transfer', 'compress', 'evaluate'] as const;
export type StageName = (typeof STAGES)[number];

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
