// Output keys: an activity's key is a hash of the part of the plan it is given (less the teacher client
// settings), so each config field must reach exactly the plan parts of the activities whose output depends on it.
// The trainerStep activity's parts are the trainer steps of the plan, told apart by what each makes.
import type { MemoisedActivity } from '../activities/output-keys';
import { canonicalJson } from '../artifacts/store';
import { isQuantization, parsePipelineConfig, type PipelineConfig } from '../config/pipeline';
import { devScorePlan, pipelinePlan, type PipelinePlan, type ScoreModelPlan, type TrainPlan } from '../config/plan';
import { compressStep, EXPORT_STEP, initStep, qatStep, tokenizerStep, trainStep } from '../config/trainer-steps';

const withoutClient = <T extends { client: unknown }>({ client: _client, ...read }: T) => read;

/** A memoised activity, or one kind of the trainer steps that trainerStep runs. */
type KeyedOutput = Exclude<MemoisedActivity, 'trainerStep'> | 'trainTokenizer' | 'initStudent' | 'trainStudent' | 'pruneVocab' | 'pruneLayers' | 'qat' | 'exportOnnx' | 'quantize';

/** The plan parts each memoised activity is given by the workflows in one run (every call's), as its key sees them. */
const GIVEN: Record<KeyedOutput, (plan: PipelinePlan) => unknown[]> = {
  prepareTaskData: (p) => [p.prototype.data],
  labelBatch: (p) => [withoutClient(p.prototype.label)],
  assembleDataset: (p) => [withoutClient(p.prototype.assemble)],
  encoderBase: (p) => (p.transfer.family === 'encoder' ? [p.transfer.base] : []),
  decoderBase: (p) => (p.transfer.family === 'decoder' && p.transfer.base ? [p.transfer.base] : []),
  trainTokenizer: (p) => (p.transfer.family === 'decoder' && p.transfer.tokenizer ? [tokenizerStep(p.transfer.tokenizer)] : []),
  initStudent: (p) => (p.transfer.family === 'decoder' ? [p.transfer.init, ...(p.transfer.kdTeacher ? [p.transfer.kdTeacher.init] : [])].map(initStep) : []),
  trainStudent: (p) => [...p.transfer.steps, ...(p.transfer.family === 'decoder' && p.transfer.kdTeacher ? [p.transfer.kdTeacher.train] : [])].map((step: TrainPlan) => trainStep(step)),
  // Dev scores (transfer steps, the compress gate), the refresh's fresh slice, and each row of the evaluation.
  scoreModel: (p) => [
    devScorePlan(p.score, 'trainer'),
    devScorePlan(p.score, 'onnx'),
    { ...devScorePlan(p.score, 'onnx'), cascade: true },
    ...p.evaluate.steps.map(({ score }) => (score.runtime === 'teacher' ? withoutClient(score) : score)),
  ] satisfies (ScoreModelPlan | Omit<ScoreModelPlan, 'client'>)[],
  calibrateConfidence: (p) => [p.score],
  pruneVocab: (p) => p.compress.steps.filter((s) => s.step === 'prune-vocab').map(compressStep),
  pruneLayers: (p) => p.compress.steps.filter((s) => s.step === 'prune-layers').map(compressStep),
  qat: (p) => p.compress.steps.flatMap((s) => (isQuantization(s.step) && 'qat' in s && s.qat ? [qatStep({ ...s, qat: s.qat })] : [])),
  exportOnnx: () => [EXPORT_STEP],
  quantize: (p) => p.compress.steps.filter((s) => isQuantization(s.step)).map(compressStep),
  // The report shows the whole config.
  writeReport: (p) => [p.config],
};
const ACTIVITIES = Object.keys(GIVEN) as KeyedOutput[];

/** field path -> [another valid value, the activities whose key must change besides writeReport]. */
type Spec = Record<string, [unknown, KeyedOutput[]]>;

// Whatever loads the task reads its name and files; scoring reads nothing else of the config.
const LOADS_TASK: KeyedOutput[] = ['prepareTaskData', 'labelBatch', 'assembleDataset', 'trainStudent', 'scoreModel', 'calibrateConfidence'];

const COMMON: Spec = {
  name: ['other-name', []],
  'task.name': ['from-files', LOADS_TASK],
  'task.dataPath': ['/data/other.jsonl', LOADS_TASK],
  'task.functionsPath': ['/data/functions.json', LOADS_TASK],
  'task.trainLimit': [10, ['prepareTaskData']],
  'task.devLimit': [10, ['prepareTaskData']],
  'task.testLimit': [10, ['prepareTaskData']],
  // The evaluation scores the teacher's answers on the report split.
  'teacher.endpoint': ['openai', ['labelBatch', 'assembleDataset', 'scoreModel']],
  'teacher.model': ['gpt-4o-mini', ['labelBatch', 'assembleDataset', 'scoreModel']],
  // The judge's calibration asks the teacher for dev answers at the labelling temperature.
  'teacher.temperature': [0.3, ['labelBatch', 'assembleDataset']],
  'teacher.samples': [3, ['labelBatch']],
  'teacher.voteThreshold': [0.6, ['assembleDataset']],
  // How requests are made and paid for changes what an output costs, not what it holds.
  'teacher.concurrency': [4, []],
  'teacher.timeoutMs': [1000, []],
  'teacher.maxRetries': [2, []],
  'teacher.maxSpendUsd': [5, []],
  'teacher.batchSize': [50, ['labelBatch']],
  'teacher.batchesPerRun': [3, []],
  'teacher.judge.enabled': [false, ['assembleDataset']],
  'teacher.judge.model': ['judge-model', ['assembleDataset']],
  'teacher.judge.devSample': [10, ['assembleDataset']],
  'transfer.batchSize': [8, ['trainStudent']],
  'transfer.maxSteps': [5, ['trainStudent']],
  'transfer.checkpointEvery': [7, ['trainStudent']],
  'transfer.epochs': [2, ['trainStudent']],
  'transfer.learningRate': [0.01, ['trainStudent']],
  'transfer.trainer': [{ weight_decay: 0.1 }, ['trainStudent']],
  'compress.toleranceExactMatch': [3, []],
  'evaluate.split': ['dev', []],
  'evaluate.latencySamples': [5, ['scoreModel']],
  'evaluate.vcpuHourUsd': [0.1, []],
  'evaluate.gpuHourUsd': [5, []],
  'timeouts.heartbeatSeconds': [7, []],
  'timeouts.activityMinutes': [7, []],
  'timeouts.queueMinutes': [7, []],
  'timeouts.maxAttempts': [9, []],
};

/** The kd teacher's fields where no kd runs (the encoder, a decoder with a registry base): read by nothing. */
const KD_TEACHER_UNREAD: Spec = {
  'transfer.kdTeacher.baseModelPath': ['/models/big', []],
  'transfer.kdTeacher.hiddenSize': [128, []],
  'transfer.kdTeacher.layers': [3, []],
  'transfer.kdTeacher.heads': [4, []],
  'transfer.kdTeacher.kvHeads': [1, []],
  'transfer.kdTeacher.intermediateSize': [256, []],
  'transfer.kdTeacher.vocabSize': [1000, []],
};

const DECODER: Spec = {
  ...COMMON,
  'transfer.steps': [['sft', 'dpo'], ['initStudent', 'trainStudent']],
  'compress.steps': [[], ['quantize']],
  'compress.pruneVocabMinCount': [3, []], // the decoder's default steps have no vocabulary step
  'compress.pruneVocabKeepFirst': [1000, []],
  'compress.pruneLayersKeep': [3, []],
  'compress.pruneLayersEpochs': [1, []],
  'compress.qatEpochs': [2, []],
  'transfer.grpoEpochs': [2, ['trainStudent']],
  'transfer.grpoLearningRate': [1e-4, ['trainStudent']],
  'transfer.grpoGenerations': [4, ['trainStudent']],
  'transfer.grpoBeta': [0.1, ['trainStudent']],
  'transfer.grpoTemperature': [0.7, ['trainStudent']],
  'transfer.grpoMaxSteps': [9, ['trainStudent']],
  'transfer.student.family': [undefined, []], // the family is a different config altogether: see the encoder table
  'transfer.student.baseModelPath': ['/models/qwen', ['initStudent']],
  'transfer.student.hiddenSize': [96, ['initStudent']],
  'transfer.student.layers': [3, ['initStudent']],
  'transfer.student.heads': [4, ['initStudent']],
  'transfer.student.kvHeads': [1, ['initStudent']],
  'transfer.student.intermediateSize': [256, ['initStudent']],
  // init reads the vocabulary from the tokenizer it is given, whose hash is in its key.
  'transfer.student.vocabSize': [1000, ['trainTokenizer']],
  'transfer.dropout': [0.1, ['trainStudent']],
  'transfer.dpoEpochs': [2, ['trainStudent']],
  'transfer.dpoLearningRate': [1e-4, ['trainStudent']],
  'transfer.seed': [7, ['initStudent', 'trainStudent']],
  'transfer.kdTeacher.baseModelPath': ['/models/big', ['initStudent']],
  'transfer.kdTeacher.hiddenSize': [128, ['initStudent']],
  'transfer.kdTeacher.layers': [3, ['initStudent']],
  'transfer.kdTeacher.heads': [4, ['initStudent']],
  'transfer.kdTeacher.kvHeads': [1, ['initStudent']],
  'transfer.kdTeacher.intermediateSize': [256, ['initStudent']],
  // The kd teacher is initialised with the student's tokenizer: its own vocabSize is read by nothing.
  'transfer.kdTeacher.vocabSize': [1000, []],
};

// A registry base brings its shape and tokenizer (the shape fields are refused beside it, kd too); its default
// compress steps prune the vocabulary (DECODER_BASE_DEFAULTS).
const DECODER_BASE: Spec = {
  ...COMMON,
  'transfer.steps': [['sft', 'dpo'], ['trainStudent']],
  'compress.steps': [[], ['pruneVocab', 'quantize', 'qat']],
  'compress.pruneVocabMinCount': [3, ['pruneVocab']],
  'compress.pruneVocabKeepFirst': [1000, ['pruneVocab']],
  'compress.pruneLayersKeep': [3, []],
  'compress.pruneLayersEpochs': [1, []],
  'compress.qatEpochs': [2, ['qat']],
  'transfer.grpoEpochs': [2, ['trainStudent']],
  'transfer.grpoLearningRate': [1e-4, ['trainStudent']],
  'transfer.grpoGenerations': [4, ['trainStudent']],
  'transfer.grpoBeta': [0.1, ['trainStudent']],
  'transfer.grpoTemperature': [0.7, ['trainStudent']],
  'transfer.grpoMaxSteps': [9, ['trainStudent']],
  'transfer.student.family': [undefined, []],
  // initStudent reads the base through decoderBase's artifact, whose hash is in its key.
  'transfer.student.base': ['another-base', ['decoderBase']],
  'transfer.dropout': [0.1, ['trainStudent']],
  'transfer.dpoEpochs': [2, ['trainStudent']],
  'transfer.dpoLearningRate': [1e-4, ['trainStudent']],
  'transfer.seed': [7, ['initStudent', 'trainStudent', 'qat']],
  // kd is refused beside a base: the kd teacher's shape is read by nothing.
  ...KD_TEACHER_UNREAD,
};

// A baseModelPath folder brings its shape and tokenizer: init reads the folder and the seed, no tokenizer is trained.
const { 'transfer.student.base': _registryBase, ...DECODER_PRETRAINED } = DECODER_BASE;
const DECODER_FOLDER: Spec = {
  ...DECODER_PRETRAINED,
  'compress.steps': [[], ['quantize']],
  'compress.qatEpochs': [2, []], // the family's default steps have no int4-qat
  'transfer.seed': [7, ['initStudent', 'trainStudent']],
  'compress.pruneVocabMinCount': [3, []], // the family's default steps have no vocabulary step
  'compress.pruneVocabKeepFirst': [1000, []],
  'transfer.student.baseModelPath': ['/models/other', ['initStudent']],
  'transfer.student.hiddenSize': [96, []],
  'transfer.student.layers': [3, []],
  'transfer.student.heads': [4, []],
  'transfer.student.kvHeads': [1, []],
  'transfer.student.intermediateSize': [256, []],
  'transfer.student.vocabSize': [1000, []],
};

const ENCODER: Spec = {
  ...COMMON,
  'transfer.steps': [['sft', 'sft'], []], // a second sft is another call with another input model
  'compress.steps': [['int8'], ['pruneVocab', 'pruneLayers', 'quantize']],
  'compress.pruneVocabMinCount': [3, ['pruneVocab']],
  'compress.pruneVocabKeepFirst': [undefined, []], // refused for the encoder
  'compress.pruneLayersKeep': [3, ['pruneLayers']],
  'compress.pruneLayersEpochs': [1, ['pruneLayers']],
  'compress.qatEpochs': [2, []],
  'transfer.student.family': [undefined, []],
  'transfer.student.baseModelPath': ['/models/bert', ['encoderBase']],
  'transfer.student.base': ['bge-small', ['encoderBase']],
  'transfer.student.maxLength': [32, ['trainStudent']],
  'transfer.student.headLearningRateScale': [5, ['trainStudent']],
  'transfer.dropout': [undefined, []], // refused for the encoder
  'transfer.dpoEpochs': [2, []],
  'transfer.dpoLearningRate': [1e-4, []],
  'transfer.grpoEpochs': [2, []],
  'transfer.grpoLearningRate': [1e-4, []],
  'transfer.grpoGenerations': [4, []],
  'transfer.grpoBeta': [0.1, []],
  'transfer.grpoTemperature': [0.7, []],
  'transfer.grpoMaxSteps': [9, []],
  'transfer.seed': [7, ['trainStudent', 'pruneLayers']],
  ...KD_TEACHER_UNREAD,
};

function leaves(value: unknown, prefix = ''): string[] {
  if (value && typeof value === 'object' && !Array.isArray(value) && !(prefix === 'transfer.trainer')) {
    return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
  }
  return [prefix];
}

function withField(config: PipelineConfig, field: string, value: unknown): PipelineConfig {
  const copy = structuredClone(config) as Record<string, any>;
  const keys = field.split('.');
  let cur = copy;
  for (const k of keys.slice(0, -1)) cur = cur[k];
  cur[keys[keys.length - 1]] = value;
  return copy as PipelineConfig;
}

/** Per activity, the distinct parts it is given (a part given twice keys its calls alike). */
const keysOf = (config: PipelineConfig) => {
  const plan = pipelinePlan(config);
  return Object.fromEntries(ACTIVITIES.map((a) => [a, [...new Set(GIVEN[a](plan).map((part) => canonicalJson(part ?? null)))].sort().join('\n')]));
};

describe.each([
  ['decoder', parsePipelineConfig({ transfer: { student: { family: 'decoder' }, steps: ['sft', 'dpo', 'kd', 'grpo'] }, teacher: { judge: { enabled: true } } }), DECODER],
  [
    'decoder with a registry base',
    parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' }, steps: ['sft', 'dpo', 'grpo'] }, teacher: { judge: { enabled: true } }, compress: { steps: ['prune-vocab', 'int8', 'int4', 'int4-qat'] } }),
    DECODER_BASE,
  ],
  [
    'decoder from a baseModelPath folder',
    parsePipelineConfig({ transfer: { student: { family: 'decoder', baseModelPath: '/models/qwen' }, steps: ['sft', 'dpo', 'grpo'] }, teacher: { judge: { enabled: true } } }),
    DECODER_FOLDER,
  ],
  [
    'encoder',
    parsePipelineConfig({ transfer: { student: { family: 'encoder' } }, teacher: { judge: { enabled: true } }, compress: { steps: ['prune-vocab', 'prune-layers', 'int8', 'int4'] } }),
    ENCODER,
  ],
])('output keys of a %s pipeline', (_family, base, spec) => {
  test('every config field is in the table (a new field must say which outputs depend on it)', () => {
    const missing = leaves(base).filter((field) => !(field in spec));
    expect(missing).toEqual([]);
  });

  test.each(Object.entries(spec).filter(([, [value]]) => value !== undefined))('changing %s changes exactly the keys that depend on it', (field, [value, expected]) => {
    const before = keysOf(base);
    const after = keysOf(withField(base, field, value));
    const changed = ACTIVITIES.filter((a) => before[a] !== after[a]);
    expect(changed.sort()).toEqual([...expected, 'writeReport'].sort());
  });
});
