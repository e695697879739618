// Inputs and results of the stage activities: small objects holding ArtifactRefs, never bulk data.
// Workflow-safe (types and no I/O).
import type { ArtifactRef } from '../artifacts/ref';
import type { StudentFamilyChoice } from '../config/pipeline';
import type { PrototypePlan } from '../config/plan';
import type { CompressResult, PrototypeResult, TransferResult } from '../workflows/stage-input';

// The stages' results are schemas, which the stage workflows check their input with.
export type { CalibratedModel, CompressResult, GateDecision, PrototypeResult, TaskData, TransferResult } from '../workflows/stage-input';

export interface LabelBatchInput {
  plan: PrototypePlan['label'];
  inputs: ArtifactRef;
  batchIndex: number;
}

export interface LabelBatchResult extends Record<string, unknown> {
  /** One line per input: the teacher's samples and their classification. */
  samples: ArtifactRef;
  items: number;
  /** First item this attempt labelled (0 when it started fresh; items when every chunk file was there); proves resume. */
  resumedFrom: number;
  counts: Record<string, number>;
}

export interface EvaluateResult extends Record<string, unknown> {
  report: ArtifactRef;
  html: ArtifactRef;
  /** Local path of report.json for people (the artifact itself is content-addressed). */
  reportPath: string;
  /** The deployed student folder (the chosen model with its calibration), and its copy beside report.json. */
  student?: ArtifactRef;
  studentPath?: string;
  /** Each model's predictions on the report split (JSONL {id, input, gold, prediction, correct}); also beside report.json. */
  predictions?: Record<string, ArtifactRef>;
  models: Record<string, Record<string, number>>;
}

export interface PipelineResult {
  status: 'completed' | 'cancelled';
  cancelReason?: string;
  prototype?: PrototypeResult;
  transfer?: TransferResult;
  compress?: CompressResult;
  evaluate?: EvaluateResult;
  recoveries: number;
  /** Present when the config named no student family: the family chosen from the task's schema, and why. */
  studentFamily?: StudentFamilyChoice;
}
