// The stages' results, as schemas: each stage workflow is a registered workflow type that any client may
// start directly, so it checks its input with these and with the pipeline's config schema before anything is
// scheduled. The pipeline passes exactly such values. Workflow-safe: zod and no I/O.
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { z } from 'zod';
import { ArtifactRefSchema } from '../artifacts/ref';
import { FailureType } from '../config/failure-types';
import { CompressStepSchema, QUANTIZATION_NAMES, TransferStepSchema, type Quantization } from '../config/pipeline';

const count = z.number().int().nonnegative();
const measurements = z.record(z.string().max(200), z.number()).refine((m) => Object.keys(m).length <= 256, 'at most 256 entries');

export const TaskDataSchema = z
  .object({
    /** Train utterances without labels: {id, utterance} per line ("unlabelled production traffic"). */
    train: ArtifactRefSchema,
    /** Dev and test examples with gold labels, for gates and the final report only. */
    dev: ArtifactRefSchema,
    test: ArtifactRefSchema,
    counts: z.object({ train: count, dev: count, test: count }).strict(),
  })
  .strict();
export type TaskData = z.infer<typeof TaskDataSchema>;

export const PrototypeResultSchema = z
  .object({
    data: TaskDataSchema,
    sft: ArtifactRefSchema,
    preferences: ArtifactRefSchema,
    rejected: ArtifactRefSchema,
    stats: ArtifactRefSchema,
    summary: measurements,
  })
  .strict();
export type PrototypeResult = z.infer<typeof PrototypeResultSchema>;

export const TransferResultSchema = z
  .object({
    /** The decoder's trained tokenizer; the encoder's comes with its pretrained folder. */
    tokenizer: ArtifactRefSchema.optional(),
    /** Model folder after each configured step, in order. */
    steps: z.array(z.object({ step: TransferStepSchema, model: ArtifactRefSchema, metrics: measurements }).strict()).max(16),
    student: ArtifactRefSchema,
  })
  .strict();
export type TransferResult = z.infer<typeof TransferResultSchema>;

export const GateDecisionSchema = z
  .object({
    step: CompressStepSchema,
    /** Dev exact match of the uncompressed ONNX model: the gate's reference for every step. */
    exactMatchUncompressed: z.number().optional(),
    /** Dev exact match of the model the step started from (the last kept one). */
    exactMatchBefore: z.number(),
    exactMatchAfter: z.number(),
    /** Sizes (model folder bytes) of the model the step started from and of its result: the step's gain. */
    bytesBefore: count.optional(),
    bytesAfter: count.optional(),
    kept: z.boolean(),
    reason: z.string().max(1000),
  })
  .strict();
export type GateDecision = z.infer<typeof GateDecisionSchema>;

/** The deployed student: the chosen model with its confidence calibrated on dev (encoder), or the chosen model as it is. */
export const CalibratedModelSchema = z
  .object({
    model: ArtifactRefSchema,
    /** Present when calibration.json was fitted and added to the folder. */
    calibration: z
      .object({
        examples: count,
        /** The chosen model's exact match on those dev answers. */
        exactMatch: z.number().min(0).max(1),
        /** Expected calibration error on dev of the raw confidence and of the calibrated one (in-sample). */
        eceRaw: z.number().min(0).max(1),
        eceCalibrated: z.number().min(0).max(1),
      })
      .strict()
      .optional(),
    /** Why no calibration was fitted (e.g. the decoder family). */
    skipped: z.string().max(1000).optional(),
  })
  .strict();
export type CalibratedModel = z.infer<typeof CalibratedModelSchema>;

/** The quantized model of each scheme the config lists (e.g. int8, int4), each from the float graph, kept by its gate or not. */
const quantizedModels = Object.fromEntries(QUANTIZATION_NAMES.map((q) => [q, ArtifactRefSchema.optional()])) as Record<Quantization, z.ZodOptional<typeof ArtifactRefSchema>>;

export const CompressResultSchema = z
  .object({
    onnx: ArtifactRefSchema,
    ...quantizedModels,
    /** The smallest model that passed every gate. */
    chosen: ArtifactRefSchema,
    /** `chosen` with calibration.json (its confidence fitted on dev): the folder to serve. Absent in older runs. */
    deployed: CalibratedModelSchema.optional(),
    gates: z.array(GateDecisionSchema).max(CompressStepSchema.options.length),
  })
  .strict();
export type CompressResult = z.infer<typeof CompressResultSchema>;

/** Stage runs started before their input was checked replay without the check. */
const STAGE_INPUT_CHECK_PATCH = 'stage-input-check';
const SHOWN_ISSUES = 10;

/**
 * `input` parsed with `schema`, or a non-retryable failure whose message names every bad field by its path
 * (e.g. `config.name`, `prototype.sft.uri`): InvalidConfig when only the config is wrong, InvalidInput otherwise.
 */
export function checkStageInput<S extends z.ZodType>(workflowType: string, schema: S, input: unknown): z.output<S> {
  if (!patched(STAGE_INPUT_CHECK_PATCH)) return input as z.output<S>;
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
  // An issue may quote a key of the input: each is cut short, so a hostile input cannot grow the history.
  const shown = issues.slice(0, SHOWN_ISSUES).map((issue) => `${issue.path || '(input)'}: ${issue.message}`.slice(0, 300));
  if (issues.length > SHOWN_ISSUES) shown.push(`and ${issues.length - SHOWN_ISSUES} more`);
  const configOnly = issues.every((issue) => issue.path === 'config' || issue.path.startsWith('config.'));
  throw ApplicationFailure.nonRetryable(
    `invalid ${workflowType} input: ${shown.join('; ')}`,
    configOnly ? FailureType.InvalidConfig : FailureType.InvalidInput,
    issues.slice(0, SHOWN_ISSUES),
  );
}
