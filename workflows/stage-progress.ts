// Stage child workflows report progress to the pipeline that started them.
import { getExternalWorkflowHandle, workflowInfo, setCurrentDetails } from '@temporalio/workflow';
import { stageProgressSignal, type StageProgress } from './messages';

/** The workflow's current details: stage, step and counts, then the step's reward statistics when it has them. */
export function stageDetails(progress: StageProgress): string {
  const m = progress.metrics ?? {};
  const stats = [
    m.reward !== undefined ? `reward ${m.reward.toFixed(3)}` : '',
    m.valid_share !== undefined ? `valid ${(m.valid_share * 100).toFixed(1)}%` : '',
    m.kl !== undefined ? `KL ${m.kl.toFixed(4)}` : '',
  ].filter(Boolean);
  return `**${progress.stage}**: ${progress.step} (${progress.done}/${progress.total})${stats.length ? ` — ${stats.join(', ')}` : ''}`;
}

export async function reportStageProgress(progress: StageProgress): Promise<void> {
  setCurrentDetails(stageDetails(progress));
  const parent = workflowInfo().parent;
  if (!parent) return;
  // The parent may already be finishing (e.g. cancelled); a lost progress update is harmless.
  await getExternalWorkflowHandle(parent.workflowId, parent.runId)
    .signal(stageProgressSignal, progress)
    .catch(() => undefined);
}
