// The stage workflows' scoring: the one scoreModel activity with a plan for each use, or, in histories recorded
// before it, the scoring activities they scheduled by name.
import { patched } from '@temporalio/workflow';
import type { ArtifactRef } from '../artifacts/ref';
import { devScorePlan, type ScorePlan } from '../config/plan';
import type { CascadeOnSplit, DevScore } from '../activities/evaluate/score';
import type { queueActivities } from './activity-options';

/** Stages from before the one scoring activity schedule scoreStudentOnDev, scoreOnDev, cascadeOnSplit and evaluateModels. */
export const SCORE_MODEL_PATCH = 'score-model';

type Queue = ReturnType<typeof queueActivities>;

export interface Scoring {
  /** A PyTorch folder's answers through the trainer's `predict` (the transfer steps' dev scores). */
  trainer(model: ArtifactRef, gold: ArtifactRef): Promise<DevScore>;
  /** An ONNX model as served, with its files' bytes (the compress gate). */
  onnx(model: ArtifactRef, gold: ArtifactRef): Promise<DevScore>;
  /** A served model with its cascade, the gold calls as the teacher's answers (the refresh's fresh slice). */
  cascade(model: ArtifactRef, gold: ArtifactRef): Promise<CascadeOnSplit>;
}

/** Decides the patch where it is called: call it where the stage first scores, once. */
export function scoringSteps(queue: Queue, score: ScorePlan): Scoring {
  if (patched(SCORE_MODEL_PATCH)) {
    return {
      trainer: (model, gold) => queue.scoreModel({ plan: devScorePlan(score, 'trainer'), model, gold }),
      onnx: (model, gold) => queue.scoreModel({ plan: devScorePlan(score, 'onnx'), model, gold }),
      cascade: async (model, gold) => {
        const { exactMatch, intentAccuracy, slotF1, count, cascade } = await queue.scoreModel({ plan: { ...devScorePlan(score, 'onnx'), cascade: true }, model, gold });
        return { exactMatch, intentAccuracy, slotF1, count, ...cascade! };
      },
    };
  }
  return {
    trainer: (model, dev) => queue.scoreStudentOnDev({ plan: score, model, dev }),
    onnx: (model, dev) => queue.scoreOnDev({ plan: score, model, dev }),
    cascade: (model, gold) => queue.cascadeOnSplit({ plan: score, model, gold }),
  };
}
