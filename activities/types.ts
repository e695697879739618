// Inputs and results of the stage activities: small objects holding ArtifactRefs, never bulk data.
// Workflow-safe (types and no I/O).
import type { ArtifactRef } from '../artifacts/ref';
import type { PipelineConfig, StudentFamilyChoice } from '../config/pipeline';

export interface TaskData {
  /** Train utterances without labels: {id, utterance} per line ("unlabelled production traffic"). */
  train: ArtifactRef;
  /** Dev and test examples with gold labels, for gates and the final report only. */
  dev: ArtifactRef;
  test: ArtifactRef;
  counts: { train: number; dev: number; test: number };
}

export interface LabelBatchInput {
  config: PipelineConfig;
  inputs: ArtifactRef;
  batchIndex: number;
  batchSize: number;
}

export interface LabelBatchResult extends Record<string, unknown> {
  /** One line per input: the teacher's samples and their classification. */
  samples: ArtifactRef;
  items: number;
  /** First item this attempt labelled (0 when it started fresh; items when every chunk file was there); proves resume. */
  resumedFrom: number;
  counts: Record<string, number>;
}

export interface PrototypeResult extends Record<string, unknown> {
  data: TaskData;
  sft: ArtifactRef;
  preferences: ArtifactRef;
  rejected: ArtifactRef;
  stats: ArtifactRef;
  summary: Record<string, number>;
}

export interface TransferResult extends Record<string, unknown> {
  /** The decoder's trained tokenizer; the encoder's comes with its pretrained folder. */
  tokenizer?: ArtifactRef;
  /** Model folder after each configured step, in order. */
  steps: { step: string; model: ArtifactRef; metrics: Record<string, number> }[];
  student: ArtifactRef;
}

export interface GateDecision {
  step: string;
  /** Dev exact match of the uncompressed ONNX model: the gate's reference for every step. */
  exactMatchUncompressed?: number;
  /** Dev exact match of the model the step started from (the last kept one). */
  exactMatchBefore: number;
  exactMatchAfter: number;
  /** Sizes (model folder bytes) of the model the step started from and of its result: the step's gain. */
  bytesBefore?: number;
  bytesAfter?: number;
  kept: boolean;
  reason: string;
}

export interface CompressResult extends Record<string, unknown> {
  onnx: ArtifactRef;
  int8?: ArtifactRef;
  /** The encoder's 4-bit scheme (feed-forward and embedding weights), when the config lists "int4". */
  int4?: ArtifactRef;
  /** The smallest model that passed every gate. */
  chosen: ArtifactRef;
  gates: GateDecision[];
}

export interface EvaluateResult extends Record<string, unknown> {
  report: ArtifactRef;
  html: ArtifactRef;
  /** Local path of report.json for people (the artifact itself is content-addressed). */
  reportPath: string;
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
