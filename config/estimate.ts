// What a pipeline run will cost before it starts: teacher requests, tokens and dollars at the endpoint's prices,
// time on this machine, the trainer's peak memory and the data folder's growth. Pure: the caller brings the
// resolved config, the task's split sizes and the endpoint's prices (`supertiny plan` and the report do), so
// the same figures come out wherever it runs. Every rate below was measured on this 2-core machine, shared
// with other sessions' runs; the comment on each names the run it came from.
import type { Prices } from './endpoints';
import { DECODER_BASE_DEFAULTS, isQuantization, type DecoderShape, type PipelineConfig, type TransferStep } from './pipeline';
import { DEFAULT_ENCODER_BASE, registryBaseOf, type EncoderBaseName } from './encoder-bases';
import { DECODER_BASES, type DecoderBaseName } from './decoder-bases';

export interface SplitSizes {
  train: number;
  dev: number;
  test: number;
}

export interface EstimateInput {
  config: PipelineConfig;
  /** After task.trainLimit, devLimit and testLimit. */
  splits: SplitSizes;
  prices: Prices;
  /** The built-in teacher simulator: its requests take the measured time on this machine, not an LLM's. */
  simulated: boolean;
  /** Cores the run gets on this machine (default FREE_CORES); every CPU time is divided by it. */
  freeCores?: number;
}

export type EstimateStage = 'prototype' | 'transfer' | 'compress' | 'evaluate';

export interface StepEstimate {
  stage: EstimateStage;
  /** label, judge, base, sft, dpo, kd, grpo, export, int8, int4, prune-vocab, prune-layers, calibrate, test. */
  step: string;
  teacherRequests: number;
  promptTokens: number;
  completionTokens: number;
  usd: number;
  /** Work in CPU-seconds (independent of the machine's load, unlike wall time). */
  cpuSeconds: number;
  wallSeconds: number;
  /** The trainer process's peak RSS during the step; 0 for steps that run no trainer. */
  peakMemoryBytes: number;
  /** What the step adds to the data folder. */
  diskBytes: number;
  /** false: no run of this step was measured here; the figure is extrapolated (see `basis`). */
  measured: boolean;
  basis: string;
}

export interface RunEstimate {
  steps: StepEstimate[];
  total: Omit<StepEstimate, 'stage' | 'step' | 'measured' | 'basis'>;
  /** Accepted inputs the transfer steps train on (train x the task's measured acceptance rate). */
  acceptedInputs: number;
  freeCores: number;
  /** The teacher traffic profile used (a measured task's, or the default for others). */
  teacherProfile: string;
  notes: string[];
}

/**
 * Cores a run gets on this machine with nothing else running: the trainer measures CPU and wall seconds
 * (compute_cpu_s, compute_wall_s); their ratio was 1.40 in the demo's run on an idle machine (/work/runs/demo10,
 * whose whole run took 1.26 cores' worth of the rates below) and 1.46 in the small pipeline's (/work/runs/small1
 * and small2). Beside other sessions' work it was 0.74 (/work/runs/demo9) and 0.57 (/work/runs/router-g):
 * `--free-cores 0.65` for a shared machine.
 */
export const FREE_CORES = 1.3;

/**
 * Teacher traffic per input, by task: the first request asks for all samples at once (`n`), then each sample
 * may continue through the task's tool loop (route, then the final call) with requests of its own.
 */
interface TeacherTraffic {
  firstPromptTokens: number;
  /** Requests after the first, per sample (0 for a task whose first answer is the call). */
  continuationsPerSample: number;
  continuationPromptTokens: number;
  completionTokensPerSample: number;
  /** Share of the inputs whose samples agree (teacher.voteThreshold 0.8, n = 5). */
  acceptanceRate: number;
  measuredOn: string;
}

const TEACHER_TRAFFIC: Record<string, TeacherTraffic> = {
  // demo9: labelling 11,514 inputs at n = 5 took 68,040 requests, 5,957.4 prompt and 138.1 completion tokens per
  // input (usage in its teacher-samples artifacts); the test split at n = 1, 1,397.3 prompt and 27.5 completion
  // tokens per input (report cost.teacher). Solved for the two kinds of request; 10,012 inputs accepted.
  massive: {
    firstPromptTokens: 257.3,
    continuationsPerSample: 0.9818,
    continuationPromptTokens: 1161.2,
    completionTokensPerSample: 27.6,
    acceptanceRate: 0.8696,
    measuredOn: 'MASSIVE (the demo, /work/runs/demo9)',
  },
  // router-g (from files, one function, no tool loop): 3,000 inputs, one request each, 252.9 prompt and
  // 115.1 completion tokens per input at n = 5; 2,747 accepted.
  'from-files': {
    firstPromptTokens: 252.9,
    continuationsPerSample: 0,
    continuationPromptTokens: 0,
    completionTokensPerSample: 23.0,
    acceptanceRate: 0.9157,
    measuredOn: 'the request router from files (/work/runs/router-g)',
  },
};

/**
 * Labelling on this machine with the simulator, in CPU-seconds (wall x the cores the runs got): per label batch
 * (an activity, its artifacts, the workflow's turn) and per request. Fitted to demo9 (58 batches, 68,040
 * requests, 476 s) and router-g (15 batches, 3,000 requests, 48 s).
 */
const LABEL_CPU_SECONDS = { perBatch: 0.955, perRequest: 0.00436 };
/** A real endpoint's request latency is not measured here: an LLM call of a few hundred tokens, stated. */
const ENDPOINT_SECONDS_PER_REQUEST = 1.5;

/** The student's fp32 parameters, trainer CPU-seconds per accepted example per epoch, and peak RSS. */
interface StudentThroughput {
  parameters: number;
  sftCpuSecondsPerExampleEpoch: number;
  peakMemoryBytes: number;
  /** Growth of the peak with the accepted examples (the dataset and its tokenization in memory). */
  peakMemoryBytesPerExample: number;
  measured: boolean;
  measuredOn: string;
}

const ENCODER_THROUGHPUT: Record<EncoderBaseName, StudentThroughput> = {
  // compute_cpu_s / (accepted x epochs): demo9 737.5 / (10,012 x 7) = 0.01052, router-g 0.01027, small1 0.01050,
  // small2 0.01054. Peak RSS (peak_memory_bytes): 1.25 GB at 875 examples to 1.55 GB at 10,012.
  'minilm-l6': {
    parameters: 22_631_211,
    sftCpuSecondsPerExampleEpoch: 0.0105,
    peakMemoryBytes: 1.22e9,
    peakMemoryBytesPerExample: 32_800,
    measured: true,
    measuredOn: 'demo9, router-g, small1, small2',
  },
  // /work/runs/bge: 1,406.4 CPU-s for 10,012 x 7; peak 2.00 GB.
  'bge-small': {
    parameters: 33_400_000,
    sftCpuSecondsPerExampleEpoch: 0.0201,
    peakMemoryBytes: 1.67e9,
    peakMemoryBytesPerExample: 32_800,
    measured: true,
    measuredOn: '/work/runs/bge',
  },
  // Not run here: bge-small's architecture (12 layers, 384 wide), so its figures.
  'e5-small': {
    parameters: 33_400_000,
    sftCpuSecondsPerExampleEpoch: 0.0201,
    peakMemoryBytes: 1.67e9,
    peakMemoryBytesPerExample: 32_800,
    measured: false,
    measuredOn: "bge-small's (same shape)",
  },
};

/** The registry decoder bases (config/decoder-bases.json): a new base needs its entry here. */
const DECODER_BASE_THROUGHPUT: Record<DecoderBaseName, StudentThroughput> = {
  // The request router pipeline on this machine (BENCHMARKS.md, "The request router pipeline end to end", session
  // 17: nothing else running): sft of 2,737 accepted inputs x 3 epochs, batch 32, 2 threads, 2,589 CPU-s (1,562 s
  // wall), peak RSS 8.0 GB (weights, gradients and two Adam moments of 134.5 M float32 parameters, and activations).
  // Issue 21's first figure, about 150 tokens/s at batch 16 x 48 tokens, was twice as slow per input.
  'smollm2-135m': {
    parameters: 134_515_008,
    sftCpuSecondsPerExampleEpoch: 2_589.3 / (2_737 * 3),
    peakMemoryBytes: 8.01e9,
    peakMemoryBytesPerExample: 0,
    measured: true,
    measuredOn: 'the request router pipeline: 2,589 CPU-s for 2,737 inputs x 3 epochs, batch 32, 2 threads',
  },
};
/**
 * A decoder base answers with a forward pass per few tokens, not one per input: wall seconds per answer of any of
 * its models (PyTorch or ONNX fp32, int8, int4), the same run: the export and three gates took 190, 181 (prune-vocab
 * with its export), 73 and 85 s for 500 dev inputs each (the export's and quantizers' own work about 75 s of them),
 * and the evaluation 1,343 s for five models on 1,000 test inputs and 200 latency samples of three (5,600 answers).
 */
const DECODER_BASE_SECONDS_PER_ANSWER = 0.24;
/**
 * Converting a decoder base (decoderBase: decoder-convert and its check), per parameter: SmolLM2-135M here, its
 * GGUF already fetched, compute_cpu_s 28.3 (convert 14.7 s, check 21.4 s wall at 1 thread, max_abs_diff 0) and
 * the trainer's start (8). The first use's download (a 98 MB wheel) is not counted.
 */
const DECODER_BASE_CPU_SECONDS_PER_PARAMETER = (28.3 + 8) / 134.5e6;

// The default decoder (1.97 M parameters) trained 12 epochs over 10,012 accepted inputs in about 8 minutes on a
// mostly free machine (BENCHMARKS.md, "The demo", session 5): 0.004 wall-s per example-epoch, at about 1.5 cores.
const DECODER_CPU_SECONDS_PER_PARAMETER_EXAMPLE_EPOCH = 0.006 / 1.97e6;
// The default decoder's sft peaked at 1.62 GB RSS on 11,514 inputs (BENCHMARKS.md, "Stage 2"); other shapes add
// their weights, gradients and two Adam moments (16 bytes a parameter).
const DECODER_PEAK_MEMORY = { baseBytes: 1.59e9, bytesPerParameter: 16 };

/**
 * Fixed costs of one trainer command (Python, torch import, loading the model), in CPU-seconds: outside the
 * trainer's compute_cpu_s, whose fit over the four runs has no fixed part (0.07 s at 0 examples).
 */
const TRAINER_START_CPU_SECONDS = 8;
/** Fetching and converting the encoder base (encoderBase): compute_cpu_s 5.3-6.4 in the four runs. */
const ENCODER_BASE_CPU_SECONDS = 6;
/** Scoring on dev with the trainer (scoreModel with the trainer runtime; scoreStudentOnDev when measured): about 10 s wall for 2,033 dev inputs (demo9). */
const DEV_SCORE_CPU_SECONDS = { fixed: 5, perExample: 0.001 };

/**
 * Compression and its gates, CPU-seconds for a model of the demo's size (90.5 MB fp32), scaled with the model's
 * bytes; each gate scores the new graph on dev with onnxruntime (ONNX_DEV_SCORE_CPU_SECONDS). Wall seconds in
 * demo9: export 12, its dev score 6, int8 4 + 2.5, int4 4.8 + 3.5, calibration 3.4 (33 s in all); in router-g
 * 22.5 + 7.8, 3.1 + 1.6, 4.7 + 2, 2.1 (43 s): taken between the two, times FREE_CORES.
 */
const COMPRESS_CPU_SECONDS: Record<'export' | 'int8' | 'int4' | 'prune-vocab' | 'calibrate', number> = {
  export: 10,
  int8: 2.5,
  int4: 3,
  // Not measured alone: rewriting the vocabulary and exporting again (the bge run: 26 s wall with its export).
  // decoder-prune-vocab on SmolLM2 (538 MB) took 6.6 CPU-s (25 s wall on a busy machine) before its export.
  'prune-vocab': 12,
  calibrate: 2,
};
const ONNX_DEV_SCORE_CPU_SECONDS = { fixed: 1.5, perExample: 0.0007 };
const DEMO_MODEL_BYTES = 90.5e6;

/**
 * Evaluation (every model on the report split, latency, cost), CPU-seconds: a fixed part (the PyTorch
 * student's trainer process, the ONNX sessions, the latency samples), the simulator's work per teacher request
 * and each model's predictions per example. Fitted to demo9 (2,974 test inputs, 5,928 requests, 96 s) and
 * router-g (1,000 and 1,000, 30 s) with the fixed part set at 8 CPU-seconds.
 */
const EVALUATE_CPU_SECONDS = { fixed: 8, perTeacherRequest: 0.00692, perExample: 0.00458 };

/**
 * The data folder's growth, fitted to four runs in fresh folders (du -sb): a fixed part in units of the fp32
 * model's bytes (the base, the trained, ONNX and quantized folders in the store, their work folders and
 * materialized copies: 1,238 MB for the 90.5 MB student), each training checkpoint kept (model and optimizer
 * state, 177 MB; the trainer keeps the last two), and each train input (teacher samples, request cache, spend
 * ledger, datasets: 23.7 KB, MASSIVE). demo9 1,864 MB, small1 1,639, small2 1,439, router-g 1,641 (fit: +1.3%).
 */
const DISK = { fixedModelMultiples: 13.68, checkpointModelMultiples: 1.96, checkpointsKept: 2, bytesPerTrainInput: 23_700 };

const usdOf = (prices: Prices, promptTokens: number, completionTokens: number) => (promptTokens * prices.inputPerMTok + completionTokens * prices.outputPerMTok) / 1e6;

/** The traffic profile of a task: its own measurement, or the one-function from-files task's. */
function trafficOf(taskName: string): { name: string; traffic: TeacherTraffic } {
  const name = taskName in TEACHER_TRAFFIC ? taskName : 'from-files';
  return { name, traffic: TEACHER_TRAFFIC[name] };
}

/** Approximate parameters of a decoder shape: embeddings (tied) and each layer's attention and feed-forward. */
export function decoderParameters(shape: DecoderShape): number {
  const headDim = shape.hiddenSize / shape.heads;
  const attention = shape.hiddenSize * shape.hiddenSize * 2 + shape.hiddenSize * headDim * shape.kvHeads * 2;
  const feedForward = 3 * shape.hiddenSize * shape.intermediateSize;
  return shape.vocabSize * shape.hiddenSize + shape.layers * (attention + feedForward + 2 * shape.hiddenSize);
}

function studentThroughput(config: PipelineConfig): StudentThroughput & { name: string } {
  const student = config.transfer.student;
  if (student.family === 'encoder') {
    const name = registryBaseOf(student) ?? DEFAULT_ENCODER_BASE;
    const base = ENCODER_THROUGHPUT[name];
    // A folder base is not in the table: the default base's figures, marked unmeasured.
    return student.baseModelPath !== undefined
      ? { ...base, name: 'folder', measured: false, measuredOn: `${name}'s (a folder base is not measured)` }
      : { ...base, name };
  }
  if (student.base !== undefined) return { ...DECODER_BASE_THROUGHPUT[student.base], name: student.base };
  const parameters = decoderParameters(student);
  return {
    name: 'decoder',
    parameters,
    sftCpuSecondsPerExampleEpoch: DECODER_CPU_SECONDS_PER_PARAMETER_EXAMPLE_EPOCH * parameters,
    peakMemoryBytes: DECODER_PEAK_MEMORY.baseBytes + DECODER_PEAK_MEMORY.bytesPerParameter * parameters,
    peakMemoryBytesPerExample: 0,
    measured: false,
    measuredOn: 'the default decoder (BENCHMARKS "The demo", session 5), scaled by parameters',
  };
}

/**
 * Per example-epoch work of a transfer step relative to sft, where no run measured it: dpo scores a chosen and
 * a rejected call under the model and a frozen reference (about 2x); kd trains the larger kdTeacher first, then
 * the student against it; grpo samples grpoGenerations calls per input and scores each.
 */
function stepWorkFactor(step: TransferStep, config: PipelineConfig, studentParameters: number): { factor: number; epochs: number } {
  const t = config.transfer;
  if (step === 'sft') return { factor: 1, epochs: t.epochs };
  if (step === 'dpo') return { factor: 2, epochs: t.dpoEpochs };
  if (step === 'kd') return { factor: 1.5 + decoderParameters(t.kdTeacher) / studentParameters, epochs: t.epochs };
  return { factor: t.grpoGenerations * 1.5, epochs: t.grpoEpochs };
}

export function estimateRun(input: EstimateInput): RunEstimate {
  const { config, splits, prices, simulated } = input;
  const freeCores = input.freeCores ?? FREE_CORES;
  const wall = (cpuSeconds: number) => cpuSeconds / freeCores;
  // Compression and evaluation score models one request at a time: they get no more than one core's worth of
  // speed from an idle machine (demo10: 34 s and 71 s idle against 33 s and 96 s at 0.74 cores in demo9).
  const oneCoreWall = (cpuSeconds: number) => cpuSeconds / Math.min(freeCores, 1);
  const { name: profile, traffic } = trafficOf(config.task.name);
  const t = config.teacher;
  const steps: StepEstimate[] = [];
  const none = { teacherRequests: 0, promptTokens: 0, completionTokens: 0, usd: 0, peakMemoryBytes: 0, diskBytes: 0 };

  // Prototype: each train input once (a cold request cache), with the tool loop's requests per sample.
  const labelRequests = splits.train * (1 + t.samples * traffic.continuationsPerSample);
  const labelPrompt = splits.train * (traffic.firstPromptTokens + t.samples * traffic.continuationsPerSample * traffic.continuationPromptTokens);
  const labelCompletion = splits.train * t.samples * traffic.completionTokensPerSample;
  const batches = Math.ceil(splits.train / t.batchSize);
  const labelCpu = LABEL_CPU_SECONDS.perBatch * batches + (simulated ? LABEL_CPU_SECONDS.perRequest * labelRequests : 0);
  const endpointWall = (requests: number) => (simulated ? 0 : (requests * ENDPOINT_SECONDS_PER_REQUEST) / t.concurrency);
  steps.push({
    ...none,
    stage: 'prototype',
    step: 'label',
    teacherRequests: labelRequests,
    promptTokens: labelPrompt,
    completionTokens: labelCompletion,
    usd: usdOf(prices, labelPrompt, labelCompletion),
    cpuSeconds: labelCpu,
    wallSeconds: wall(labelCpu) + endpointWall(labelRequests),
    measured: profile === config.task.name,
    basis: `teacher traffic of ${traffic.measuredOn}; ${batches} batches of ${t.batchSize}`,
  });
  const accepted = Math.round(splits.train * traffic.acceptanceRate);
  if (t.judge.enabled) {
    // One review per accepted input and per calibration item: the input and its call, a short verdict.
    const requests = accepted + t.judge.devSample;
    const prompt = requests * (traffic.firstPromptTokens + 100);
    const completion = requests * 20;
    const cpu = simulated ? LABEL_CPU_SECONDS.perRequest * requests : 0;
    steps.push({
      ...none,
      stage: 'prototype',
      step: 'judge',
      teacherRequests: requests,
      promptTokens: prompt,
      completionTokens: completion,
      usd: usdOf(prices, prompt, completion),
      cpuSeconds: cpu,
      wallSeconds: wall(cpu) + endpointWall(requests),
      measured: false,
      basis: 'not measured: one request per accepted input and calibration item, the first prompt plus 100 tokens',
    });
  }

  // Transfer: the trainer's work grows with accepted examples x epochs.
  const student = studentThroughput(config);
  const modelBytes = student.parameters * 4;
  const peakMemory = student.peakMemoryBytes + student.peakMemoryBytesPerExample * accepted;
  const devScore = DEV_SCORE_CPU_SECONDS.fixed + DEV_SCORE_CPU_SECONDS.perExample * splits.dev;
  const studentConfig = config.transfer.student;
  if (studentConfig.family === 'encoder') {
    steps.push({ ...none, stage: 'transfer', step: 'base', cpuSeconds: ENCODER_BASE_CPU_SECONDS, wallSeconds: wall(ENCODER_BASE_CPU_SECONDS), measured: true, basis: 'encoderBase in four runs' });
  } else if (studentConfig.base !== undefined) {
    const cpu = DECODER_BASE_CPU_SECONDS_PER_PARAMETER * DECODER_BASES[studentConfig.base].parametersM * 1e6;
    steps.push({
      ...none,
      stage: 'transfer',
      step: 'base',
      cpuSeconds: cpu,
      wallSeconds: wall(cpu),
      diskBytes: student.parameters * 4,
      measured: true,
      basis: `decoderBase: decoder-convert of ${studentConfig.base} to float32 and its check (SmolLM2-135M here, fetched already; the first download is not counted)`,
    });
  }
  config.transfer.steps.forEach((step, i) => {
    const { factor, epochs } = stepWorkFactor(step, config, student.parameters);
    const examples = step === 'dpo' ? accepted * traffic.acceptanceRate : accepted;
    const optimizerSteps = Math.ceil((examples * epochs) / config.transfer.batchSize);
    const capped = config.transfer.maxSteps !== undefined ? Math.min(1, config.transfer.maxSteps / optimizerSteps) : 1;
    const cpu = student.sftCpuSecondsPerExampleEpoch * factor * examples * epochs * capped;
    const checkpoints = Math.min(DISK.checkpointsKept, Math.ceil((optimizerSteps * capped) / config.transfer.checkpointEvery));
    steps.push({
      ...none,
      stage: 'transfer',
      step,
      cpuSeconds: cpu,
      wallSeconds: wall(cpu),
      peakMemoryBytes: peakMemory,
      // The first step's folder holds the fixed part of the run's model bytes.
      diskBytes: modelBytes * (checkpoints * DISK.checkpointModelMultiples + (i === 0 ? DISK.fixedModelMultiples : 2)),
      measured: student.measured && step === 'sft',
      basis: `${student.name}: ${student.sftCpuSecondsPerExampleEpoch.toPrecision(3)} CPU-s per example-epoch (${student.measuredOn})${step === 'sft' ? '' : `, x${factor.toFixed(1)} for ${step} (not measured)`}; ${Math.round(examples)} examples x ${epochs} epochs`,
    });
  });
  const scoreCpu = TRAINER_START_CPU_SECONDS * config.transfer.steps.length + devScore;
  steps.push({ ...none, stage: 'transfer', step: 'score', cpuSeconds: scoreCpu, wallSeconds: wall(scoreCpu), measured: true, basis: "the trainer commands' start and the dev score (scoreStudentOnDev in demo9, now scoreModel)" });

  // Compression: each step's work scales with the model's bytes; each gate scores on dev. Measured with the
  // encoder student and the SmolLM2 decoder base.
  const encoder = config.transfer.student.family === 'encoder';
  const sizeScale = modelBytes / DEMO_MODEL_BYTES;
  // `trainingCpu`: the part of the step that trains, which uses every free core as sft does.
  const compressStep = (step: string, cpuSeconds: number, measured: boolean, basis: string, trainingCpu = 0) =>
    steps.push({
      ...none,
      stage: 'compress',
      step,
      cpuSeconds,
      wallSeconds: wall(trainingCpu) + oneCoreWall(cpuSeconds - trainingCpu),
      measured: measured && (encoder || decoderBase),
      basis: decoderBase ? `${basis}; the gate's dev answers at ${DECODER_BASE_SECONDS_PER_ANSWER} s each (the request router pipeline)` : basis,
    });
  const decoderBase = studentConfig.family === 'decoder' && studentConfig.base !== undefined;
  const perAnswer = decoderBase ? DECODER_BASE_SECONDS_PER_ANSWER : ONNX_DEV_SCORE_CPU_SECONDS.perExample;
  const gate = ONNX_DEV_SCORE_CPU_SECONDS.fixed + perAnswer * splits.dev;
  compressStep('export', COMPRESS_CPU_SECONDS.export * sizeScale + gate, true, 'exportOnnx and its dev score (demo9, router-g)');
  for (const step of config.compress.steps) {
    if (step === 'prune-layers') {
      const cpu = TRAINER_START_CPU_SECONDS + student.sftCpuSecondsPerExampleEpoch * accepted * config.compress.pruneLayersEpochs + COMPRESS_CPU_SECONDS.export * sizeScale + gate;
      compressStep(step, cpu, false, `distillation: ${config.compress.pruneLayersEpochs} epochs at the sft rate, then export and gate`);
    } else if (step === 'int4-qat') {
      // Training into the 4-bit grid runs the model and its unrounded copy: about 1.5x the sft rate (SmolLM2 on the
      // router, session 20: 960 CPU-s for 2,000 example-epochs, 0.48 each, against sft's 0.315).
      const training = 1.5 * student.sftCpuSecondsPerExampleEpoch * accepted * config.compress.qatEpochs;
      const cpu = TRAINER_START_CPU_SECONDS + training + COMPRESS_CPU_SECONDS.export * sizeScale + COMPRESS_CPU_SECONDS.int4 * sizeScale + gate;
      compressStep(step, cpu, false, `training into the 4-bit grid: ${config.compress.qatEpochs} epochs at 1.5x the sft rate (measured on the request router), then export, int4 and gate`, training);
    } else {
      compressStep(step, COMPRESS_CPU_SECONDS[step] * sizeScale + gate, step !== 'prune-vocab', step === 'prune-vocab' ? 'not measured alone' : `${step} and its gate (demo9, router-g)`);
    }
  }
  compressStep('calibrate', COMPRESS_CPU_SECONDS.calibrate, true, 'calibrateConfidence (demo9, router-g)');

  // Evaluation: the teacher on the report split at n = 1, and every model's predictions.
  const reportSplit = splits[config.evaluate.split];
  const testRequests = reportSplit * (1 + traffic.continuationsPerSample);
  const testPrompt = reportSplit * (traffic.firstPromptTokens + traffic.continuationsPerSample * traffic.continuationPromptTokens);
  const testCompletion = reportSplit * traffic.completionTokensPerSample;
  // A decoder base's models answer one at a time: the PyTorch student, the ONNX graph, each quantization and the
  // served folder on the report split, and the latency samples (the split's first inputs) of the ONNX ones.
  const quantized = config.compress.steps.filter((q) => isQuantization(q)).length;
  const answers = reportSplit * (3 + quantized) + Math.min(config.evaluate.latencySamples, reportSplit) * (1 + quantized);
  const evaluateCpu =
    EVALUATE_CPU_SECONDS.fixed + (simulated ? EVALUATE_CPU_SECONDS.perTeacherRequest * testRequests : 0) + (decoderBase ? DECODER_BASE_SECONDS_PER_ANSWER * answers : EVALUATE_CPU_SECONDS.perExample * reportSplit);
  steps.push({
    ...none,
    stage: 'evaluate',
    step: config.evaluate.split,
    teacherRequests: testRequests,
    promptTokens: testPrompt,
    completionTokens: testCompletion,
    usd: usdOf(prices, testPrompt, testCompletion),
    cpuSeconds: evaluateCpu,
    wallSeconds: oneCoreWall(evaluateCpu) + endpointWall(testRequests),
    diskBytes: 0,
    measured: encoder || decoderBase,
    basis: decoderBase
      ? `${Math.round(answers)} answers of the decoder base's models at ${DECODER_BASE_SECONDS_PER_ANSWER} s each (the request router pipeline); teacher traffic of ${traffic.measuredOn}`
      : `the evaluation with the encoder student (evaluateModels in demo9 and router-g, now scoreModel per row and writeReport); teacher traffic of ${traffic.measuredOn}`,
  });
  // Each train input's share of the data folder (samples, cache, ledger, datasets) is counted with the labels.
  steps[0].diskBytes = DISK.bytesPerTrainInput * splits.train;

  const sum = (field: 'teacherRequests' | 'promptTokens' | 'completionTokens' | 'usd' | 'cpuSeconds' | 'wallSeconds' | 'diskBytes') => steps.reduce((s, x) => s + x[field], 0);
  const notes = [
    `times are for this machine (2 cores) at ${freeCores} free cores (${FREE_CORES}: nothing else running; --free-cores 0.65 beside other work); CPU-seconds do not depend on the load`,
    'teacher requests and dollars assume a cold request cache (answers already cached are free)',
  ];
  if (!simulated) {
    notes.push(`a real endpoint's latency is not measured here: ${ENDPOINT_SECONDS_PER_REQUEST} s per request at teacher.concurrency ${t.concurrency}`);
    notes.push("tokens per request are the teacher simulator's counts for the task's prompts: a real endpoint's tokenizer counts its own");
  }
  if (studentConfig.family === 'decoder' && studentConfig.base !== undefined) {
    notes.push(
      `transfer.student.base "${studentConfig.base}": a decoder base's defaults (${DECODER_BASE_DEFAULTS.training.epochs} epochs at learning rate ${DECODER_BASE_DEFAULTS.training.learningRate}; compress ${DECODER_BASE_DEFAULTS.compress.join(', ')}) were measured on the request router only (BENCHMARKS.md, "A trained SmolLM2 student"): this run trains ${config.transfer.epochs} epoch(s) at ${config.transfer.learningRate}`,
    );
    if (config.transfer.steps.includes('grpo')) {
      notes.push(
        `grpo after sft on a decoder base: on the request router, 100 steps at learning rate 5e-5 on the sft student's own training inputs lost 4.2 points of test exact match (BENCHMARKS.md, "grpo after sft on the SmolLM2 student"): this run does ${config.transfer.grpoMaxSteps ?? config.transfer.maxSteps ?? `${config.transfer.grpoEpochs} epoch(s) of`} grpo step(s) at ${config.transfer.grpoLearningRate}`,
      );
    }
  }
  if (profile !== config.task.name) notes.push(`task "${config.task.name}" has no teacher traffic of its own measured: the ${profile} profile's tokens per input`);
  return {
    steps,
    total: {
      teacherRequests: sum('teacherRequests'),
      promptTokens: sum('promptTokens'),
      completionTokens: sum('completionTokens'),
      usd: sum('usd'),
      cpuSeconds: sum('cpuSeconds'),
      wallSeconds: sum('wallSeconds'),
      peakMemoryBytes: Math.max(...steps.map((s) => s.peakMemoryBytes)),
      diskBytes: sum('diskBytes'),
    },
    acceptedInputs: accepted,
    freeCores,
    teacherProfile: profile,
    notes,
  };
}
