// The plan of a pipeline run, made once from the resolved config (its student family chosen and that family's
// defaults filled in): for each activity, exactly the part of the config it reads. Activities are given their
// part, and an output key is a hash of what the activity was given, so it changes with every field the activity
// reads and with no other. The pipeline's first activity (resolvePlan) makes it; the stage workflows, which
// clients may also start directly with a config their schema checks, take their part of it from the resolved
// config with the same pure function. Workflow-safe: no I/O here.
import { isQuantization, QUANTIZATION_NAMES, QUANTIZATIONS, type CompressStep, type DecoderShape, type PipelineConfig, type Quantization, type StudentFamily, type StudentFamilyChoice, type TransferStep } from './pipeline';
import { registryBaseOf, type EncoderBaseName } from './encoder-bases';
import type { DecoderBaseName } from './decoder-bases';
import { trainingStepConfig } from './step-config';

type TaskConfig = PipelineConfig['task'];
type TeacherConfig = PipelineConfig['teacher'];

/** What names the task and its files on a worker: what every activity that loads the task reads. */
export type TaskRef = Pick<TaskConfig, 'name' | 'dataPath' | 'functionsPath'>;

/** The teacher an activity asks: an endpoint on the worker, one of its models, at a sampling temperature. */
export interface TeacherModelPlan {
  endpoint: string;
  model: string;
  temperature: number;
}

/**
 * How the teacher's requests are made and paid for. It changes what an output costs, never what it holds, so
 * it is the one part of an activity's input that is not in its output key.
 */
export type TeacherClientPlan = Pick<TeacherConfig, 'concurrency' | 'timeoutMs' | 'maxRetries' | 'maxSpendUsd'>;

export interface PrototypePlan {
  /** prepareTaskData: the task and how many inputs of each split to use. */
  data: { task: TaskConfig };
  /** labelBatch: the teacher asked `samples` times per input, `batchSize` inputs per batch. */
  label: { task: TaskRef; teacher: TeacherModelPlan & { samples: number }; batchSize: number; client: TeacherClientPlan };
  /**
   * assembleDataset: the vote, and the judge (null when off), which asks the teacher for dev answers and its own
   * model for verdicts.
   */
  assemble: { task: TaskRef; voteThreshold: number; judge: { teacher: TeacherModelPlan; model: string; devSample: number } | null; client: TeacherClientPlan };
  /** Label batches per run of the prototype workflow before it continues as new. */
  batchesPerRun: number;
}

/**
 * initStudent: a decoder shape (or base model folder) and the seed its weights start from; or a registry base,
 * whose converted folder (decoderBase's artifact) init is given and adds the student's special tokens to.
 */
export type InitPlan = ShapeInitPlan | RegistryBaseInitPlan;
export interface ShapeInitPlan {
  shape: DecoderShape;
  /** The config field that names `shape.baseModelPath`, for the worker's path check to name. */
  field: 'transfer.student.baseModelPath' | 'transfer.kdTeacher.baseModelPath';
  seed: number;
}
export interface RegistryBaseInitPlan {
  base: DecoderBaseName;
  seed: number;
}

/** decoderBase: a registry decoder base, fetched (sha256-checked) and converted to a Hugging Face folder. */
export interface DecoderBasePlan {
  registry: DecoderBaseName;
}

/** trainStudent: one training step, its trainer config, and the task it writes the description of (or null). */
export interface TrainPlan {
  family: StudentFamily;
  step: TransferStep;
  trainer: Record<string, unknown>;
  task: TaskRef | null;
}

export type TransferPlan =
  | {
      family: 'encoder';
      /** encoderBase: a model folder inside the worker's roots, or a registry base. */
      base: { baseModelPath: string } | { registry: EncoderBaseName };
      steps: TrainPlan[];
    }
  | {
      family: 'decoder';
      /**
       * decoderBase: the registry base the student starts from; null (or absent, in plans made before it) when
       * it starts from its shape or a folder.
       */
      base?: DecoderBasePlan | null;
      /**
       * trainTokenizer; null when nothing is initialised from a shape: a registry base, a baseModelPath folder and a
       * kd teacher from its own folder bring their tokenizers.
       */
      tokenizer: { vocabSize: number } | null;
      init: InitPlan;
      /** For kd: the larger white-box student, initialised and trained with sft first; null without kd. */
      kdTeacher: { init: ShapeInitPlan; train: TrainPlan } | null;
      steps: TrainPlan[];
    };

/** One compression step, with what its activity reads. */
export type CompressStepPlan =
  /** pruneVocab: keep a token the sft text uses at least this often; the family picks the trainer command. */
  | { step: 'prune-vocab'; family: StudentFamily; minCount: number; /** decoder only; absent when 0 (and in plans recorded before it) */ keepFirst?: number }
  /** pruneLayers: layers kept, and the distillation from the unpruned model that recovers them; the family picks the
   * trainer command (absent in plans recorded before the decoder had this step: the encoder's). */
  | { step: 'prune-layers'; family?: StudentFamily; layers: number; epochs: number; seed: number }
  /** quantize: one of QUANTIZATIONS, from the float graph. */
  | QuantizePlan;

export interface QuantizePlan {
  step: Quantization;
  /** A trained scheme's (QUANTIZATIONS[step].trained) training of the PyTorch folder into its grid before the export. */
  qat?: { epochs: number; seed: number };
}

export interface CompressPlan {
  /** In order, each behind the dev exact-match gate. */
  steps: CompressStepPlan[];
  toleranceExactMatch: number;
}

export interface ScorePlan {
  task: TaskRef;
}

/**
 * How a model answers when it is scored: onnxruntime-node as `serve` runs it, the trainer's `predict` on a
 * PyTorch folder, or the teacher over its API (no model artifact).
 */
export type ScoreRuntime = 'onnx' | 'trainer' | 'teacher';

/**
 * scoreModel, the one scoring activity: the task, how the model answers, how many of the first inputs are also
 * timed one request at a time, and for a served model whether to add its cascade with the gold calls as the
 * teacher's answers (the refresh's fresh slice, whose gold calls are the teacher's labels).
 */
export type ScoreModelPlan = StudentScorePlan | TeacherScorePlan;
export interface StudentScorePlan {
  task: TaskRef;
  runtime: 'onnx' | 'trainer';
  latencySamples: number;
  cascade: boolean;
}
export interface TeacherScorePlan {
  task: TaskRef;
  runtime: 'teacher';
  latencySamples: number;
  teacher: TeacherModelPlan;
  client: TeacherClientPlan;
}

/** The model of the run a scoring step scores: the teacher, the PyTorch student, its ONNX export, a quantization, the deployed folder. */
export type ScoredModel = 'teacher' | 'student' | 'onnx' | Quantization | 'deployed';

/** One scoring step of the evaluation: the report's row it fills ('served': the cascade's model), the model and how it answers. */
export interface EvaluateStepPlan {
  row: 'teacher' | 'student' | 'student_onnx' | `student_${Quantization}` | 'served';
  model: ScoredModel;
  score: ScoreModelPlan;
}

export interface EvaluatePlan {
  split: 'dev' | 'test';
  /** In order; a quantization's row is scored when the compress stage ran it, the served row when it deployed a folder. */
  steps: EvaluateStepPlan[];
}

export interface PipelinePlan {
  /** The resolved config: what the stage workflows are started with, and what the report shows. */
  config: PipelineConfig;
  /** Present when the config named no student family: the family chosen from the task's schema, and why. */
  studentFamily?: StudentFamilyChoice;
  /** What scoring a model on the task's examples reads (scoreModel's dev scores with devScorePlan, calibrateConfidence). */
  score: ScorePlan;
  prototype: PrototypePlan;
  transfer: TransferPlan;
  compress: CompressPlan;
  evaluate: EvaluatePlan;
}

/** The plan of a resolved config (parsePipelineConfig with the student family chosen). */
export function pipelinePlan(config: PipelineConfig, studentFamily?: StudentFamilyChoice): PipelinePlan {
  const { name, dataPath, functionsPath } = config.task;
  const task: TaskRef = { name, ...(dataPath !== undefined ? { dataPath } : {}), ...(functionsPath !== undefined ? { functionsPath } : {}) };
  return {
    config,
    ...(studentFamily ? { studentFamily } : {}),
    score: { task },
    prototype: prototypePlan(config, task),
    transfer: transferPlan(config, task),
    compress: { steps: config.compress.steps.map((step) => compressStepPlan(config, step)), toleranceExactMatch: config.compress.toleranceExactMatch },
    evaluate: evaluatePlan(config, task),
  };
}

/** Dev scoring of a model (the transfer steps' and the compress gate's): no latency, no cascade. */
export function devScorePlan(score: ScorePlan, runtime: 'onnx' | 'trainer'): StudentScorePlan {
  return { task: score.task, runtime, latencySamples: 0, cascade: false };
}

/**
 * The evaluation's scoring steps on the report split: the teacher, the PyTorch student, the float ONNX graph and
 * each quantization in QUANTIZATIONS' order, each timed on the first latencySamples inputs, then the deployed
 * folder the cascade serves (its answers are the chosen model's, its confidence the calibrated one).
 */
function evaluatePlan(config: PipelineConfig, task: TaskRef): EvaluatePlan {
  const t = config.teacher;
  const latencySamples = config.evaluate.latencySamples;
  const student = (runtime: 'onnx' | 'trainer', samples = latencySamples): StudentScorePlan => ({ task, runtime, latencySamples: samples, cascade: false });
  const quantizations = QUANTIZATION_NAMES.filter((q) => config.compress.steps.includes(q));
  return {
    split: config.evaluate.split,
    steps: [
      {
        row: 'teacher',
        model: 'teacher',
        // At temperature 0, whatever the labelling's: the teacher's best answer is what the student is held to.
        score: {
          task,
          runtime: 'teacher',
          latencySamples,
          teacher: { endpoint: t.endpoint, model: t.model, temperature: 0 },
          client: { concurrency: t.concurrency, timeoutMs: t.timeoutMs, maxRetries: t.maxRetries, maxSpendUsd: t.maxSpendUsd },
        },
      },
      { row: 'student', model: 'student', score: student('trainer') },
      { row: 'student_onnx', model: 'onnx', score: student('onnx') },
      ...quantizations.map((q): EvaluateStepPlan => ({ row: `student_${q}`, model: q, score: student('onnx') })),
      { row: 'served', model: 'deployed', score: student('onnx', 0) },
    ],
  };
}

function compressStepPlan(config: PipelineConfig, step: CompressStep): CompressStepPlan {
  const c = config.compress;
  if (step === 'prune-vocab') {
    const keepFirst = c.pruneVocabKeepFirst ? { keepFirst: c.pruneVocabKeepFirst } : {};
    return { step, family: config.transfer.student.family, minCount: c.pruneVocabMinCount, ...keepFirst };
  }
  if (step === 'prune-layers') {
    return { step, family: config.transfer.student.family, layers: c.pruneLayersKeep, epochs: c.pruneLayersEpochs, seed: config.transfer.seed };
  }
  if (isQuantization(step)) return QUANTIZATIONS[step].trained ? { step, qat: { epochs: c.qatEpochs, seed: config.transfer.seed } } : { step };
  throw new Error(`compression step "${step satisfies never}" has no plan`);
}

function prototypePlan(config: PipelineConfig, task: TaskRef): PrototypePlan {
  const t = config.teacher;
  const teacher = { endpoint: t.endpoint, model: t.model, temperature: t.temperature };
  const client = { concurrency: t.concurrency, timeoutMs: t.timeoutMs, maxRetries: t.maxRetries, maxSpendUsd: t.maxSpendUsd };
  return {
    data: { task: config.task },
    label: { task, teacher: { ...teacher, samples: t.samples }, batchSize: t.batchSize, client },
    assemble: { task, voteThreshold: t.voteThreshold, judge: t.judge.enabled ? { teacher, model: t.judge.model, devSample: t.judge.devSample } : null, client },
    // Histories recorded before the field existed carry configs without it; they ran 100 per run.
    batchesPerRun: t.batchesPerRun ?? 100,
  };
}

function transferPlan(config: PipelineConfig, task: TaskRef): TransferPlan {
  const t = config.transfer;
  const student = t.student;
  // The task's functions and argument kinds are written beside the data where the trainer needs them: the
  // encoder's heads and grpo's reward follow from them.
  const train = (step: TransferStep): TrainPlan => ({
    family: student.family,
    step,
    trainer: trainingStepConfig(t, step),
    task: student.family === 'encoder' || step === 'grpo' ? task : null,
  });
  if (student.family === 'encoder') {
    const registry = registryBaseOf(student);
    return { family: 'encoder', base: registry ? { registry } : { baseModelPath: student.baseModelPath! }, steps: t.steps.map(train) };
  }
  if (student.base !== undefined) {
    // The base brings its shape and tokenizer: no tokenizer is trained, init starts from the converted folder.
    // The schema refuses kd beside a base.
    return { family: 'decoder', base: { registry: student.base }, tokenizer: null, init: { base: student.base, seed: t.seed }, kdTeacher: null, steps: t.steps.map(train) };
  }
  const { family: _family, base: _base, ...shape } = student;
  const kd = t.steps.includes('kd');
  // init from a folder reads no tokenizer (initStep): one is trained only for a model initialised from its shape.
  const fromShape = shape.baseModelPath === undefined || (kd && t.kdTeacher.baseModelPath === undefined);
  return {
    family: 'decoder',
    base: null,
    tokenizer: fromShape ? { vocabSize: student.vocabSize } : null,
    init: { shape, field: 'transfer.student.baseModelPath', seed: t.seed },
    kdTeacher: kd ? { init: { shape: t.kdTeacher, field: 'transfer.kdTeacher.baseModelPath', seed: t.seed }, train: train('sft') } : null,
    steps: t.steps.map(train),
  };
}

/** The models of a run a scoring step may score (artifact refs): the transfer stage's student and the compress stage's models. */
export interface ScorableModels<Model> {
  transfer: { student: Model };
  compress: { onnx: Model; deployed?: { model: Model } } & Partial<Record<Quantization, Model>>;
}

/** The artifact a scoring step scores (undefined for the teacher, or for a model this run does not have). */
export function scoredModel<Model>(step: EvaluateStepPlan, { transfer, compress }: ScorableModels<Model>): Model | undefined {
  switch (step.model) {
    case 'teacher':
      return undefined;
    case 'student':
      return transfer.student;
    case 'onnx':
      return compress.onnx;
    case 'deployed':
      return compress.deployed?.model;
    default:
      return compress[step.model];
  }
}

/** Whether a run has what the step scores: a quantization its compress stage ran, a deployed folder. */
export function stepApplies<Model>(step: EvaluateStepPlan, models: ScorableModels<Model>): boolean {
  return step.model === 'teacher' || scoredModel(step, models) !== undefined;
}
