// Stage child workflows report progress to the pipeline that started them.
import { getExternalWorkflowHandle, workflowInfo, setCurrentDetails } from '@temporalio/workflow';
import { stageProgressSignal, type StageProgress } from './messages';

export async function reportStageProgress(progress: StageProgress): Promise<void> {
  setCurrentDetails(`**${progress.stage}**: ${progress.step} (${progress.done}/${progress.total})`);
  const parent = workflowInfo().parent;
  if (!parent) return;
  // The parent may already be finishing (e.g. cancelled); a lost progress update is harmless.
  await getExternalWorkflowHandle(parent.workflowId, parent.runId)
    .signal(stageProgressSignal, progress)
    .catch(() => undefined);
}
