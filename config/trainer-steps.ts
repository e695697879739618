// Every trainer step of a run as data: the command, its config less the input paths, the input artifacts by
// role, the output stored, and the preparations a worker makes first. The one trainerStep activity runs any of
// them, so a new quantization scheme or student base is a new plan here, not a new activity. Workflow-safe:
// no I/O here.
import { QUANTIZATIONS, type DecoderShape, type TransferStep } from './pipeline';
import type { CompressStepPlan, InitPlan, QuantizePlan, ShapeInitPlan, TaskRef, TrainPlan, TransferPlan } from './plan';
import { DECODER_COMMANDS, ENCODER_COMMANDS, trainingCommand, type TrainerCommand } from './trainer-contract';

/** An input artifact, copied to inputs/<file> in the step's run folder; its path is the config's `field`. */
export interface TrainerStepInput {
  field: string;
  file: string;
  kind: 'folder' | 'file';
}

export interface TrainerStepPlan {
  /** What the step makes (e.g. "trainStudent-sft", "quantize-int8"), kept readable in its output key. */
  name: string;
  command: TrainerCommand;
  /** The trainer config, less the paths of its inputs. */
  config: Record<string, unknown>;
  /** The input artifacts by role: trainerStep is given one artifact for each. */
  inputs: Record<string, TrainerStepInput>;
  /** The trainer output stored (done.outputs[name]) and the artifact kind it is stored as. */
  output: { name: 'model' | 'tokenizer'; kind: string };
  /** Set when config.base_model is a folder the config names: the worker checks it against its model roots first. */
  baseModelField?: ShapeInitPlan['field'];
  /** Set when the trainer reads the task's description (config.task), which the worker writes beside the inputs. */
  taskFile?: TaskRef;
}

const folder = (field: string): TrainerStepInput => ({ field, file: field, kind: 'folder' });
const jsonl = (field: string, name: string): TrainerStepInput => ({ field, file: `${name}.jsonl`, kind: 'file' });
const MODEL = { name: 'model', kind: 'model/dir' } as const;

/** The trainer's config for the student shape (init); a base model folder replaces the shape. */
export function studentInitConfig(student: DecoderShape, seed: number) {
  return student.baseModelPath
    ? { base_model: student.baseModelPath, seed }
    : {
        hidden_size: student.hiddenSize,
        num_layers: student.layers,
        num_heads: student.heads,
        num_kv_heads: student.kvHeads,
        intermediate_size: student.intermediateSize,
        seed,
      };
}

/** The accepted samples a training step reads: dpo the preference pairs, every other step the sft samples. */
export function trainingData(step: TransferStep): 'sft' | 'preferences' {
  return step === 'dpo' ? 'preferences' : 'sft';
}

/** trainTokenizer: a tokenizer from the sft samples (role data). */
export function tokenizerStep(plan: NonNullable<Extract<TransferPlan, { family: 'decoder' }>['tokenizer']>): TrainerStepPlan {
  return { name: 'trainTokenizer', command: 'tokenizer', config: { vocab_size: plan.vocabSize }, inputs: { data: jsonl('data', 'sft') }, output: { name: 'tokenizer', kind: 'tokenizer/dir' } };
}

/**
 * initStudent: the decoder from its shape and the tokenizer (role tokenizer), from a base model folder the config
 * names, or from a registry base's converted folder (role base, decoderBase's artifact).
 */
export function initStep(plan: InitPlan): TrainerStepPlan {
  if ('base' in plan) return { name: 'initStudent', command: 'init', config: { seed: plan.seed }, inputs: { base: folder('base_model') }, output: MODEL };
  const base = plan.shape.baseModelPath !== undefined;
  return {
    name: 'initStudent',
    command: 'init',
    config: studentInitConfig(plan.shape, plan.seed),
    inputs: base ? {} : { tokenizer: folder('tokenizer') },
    output: MODEL,
    ...(base ? { baseModelField: plan.field } : {}),
  };
}

/** trainStudent: one training step of the model (roles model, data, and teacher for kd). */
export function trainStep(plan: TrainPlan): TrainerStepPlan {
  const { family, step } = plan;
  return {
    name: `trainStudent-${family === 'encoder' ? `encoder-${step}` : step}`,
    command: trainingCommand(family, step),
    config: plan.trainer,
    inputs: { model: folder('model'), data: jsonl('data', trainingData(step)), ...(step === 'kd' ? { teacher: folder('teacher') } : {}) },
    output: MODEL,
    ...(plan.task ? { taskFile: plan.task } : {}),
  };
}

/** exportOnnx: the PyTorch folder (role model) as an ONNX graph, checked against its logits by the trainer. */
export const EXPORT_STEP: TrainerStepPlan = { name: 'exportOnnx', command: 'export', config: {}, inputs: { model: folder('model') }, output: { name: 'model', kind: 'onnx/dir' } };

/**
 * A compression step: a prune step rewrites the student's PyTorch folder (role model) from the sft samples
 * (role data); a quantization rewrites the float graph's weights (role model).
 */
export function compressStep(plan: CompressStepPlan): TrainerStepPlan {
  const pruned = { inputs: { model: folder('model'), data: jsonl('data', 'sft') }, output: MODEL };
  if (plan.step === 'prune-vocab') {
    // A plan recorded before the decoder had this step names no family: it was the encoder's.
    const command = plan.family === 'decoder' ? DECODER_COMMANDS.pruneVocab : ENCODER_COMMANDS.pruneVocab;
    const keepFirst = plan.keepFirst ? { keep_first: plan.keepFirst } : {};
    return { name: 'pruneVocab', command, config: { min_count: plan.minCount, ...keepFirst }, ...pruned };
  }
  if (plan.step === 'prune-layers') {
    const command = plan.family === 'decoder' ? DECODER_COMMANDS.pruneLayers : ENCODER_COMMANDS.pruneLayers;
    return { name: 'pruneLayers', command, config: { layers: plan.layers, epochs: plan.epochs, seed: plan.seed }, ...pruned };
  }
  return { name: `quantize-${plan.step}`, command: 'quantize', config: QUANTIZATIONS[plan.step].options, inputs: { model: folder('model') }, output: { name: 'model', kind: `onnx-${plan.step}/dir` } };
}

/** The training of a trained quantization (int4-qat): the PyTorch folder (role model) into the 4-bit grid from the sft samples (role data). */
export function qatStep(plan: QuantizePlan & { qat: NonNullable<QuantizePlan['qat']> }): TrainerStepPlan {
  return {
    name: `qat-${plan.step}`,
    command: DECODER_COMMANDS.qat,
    config: { epochs: plan.qat.epochs, seed: plan.qat.seed },
    inputs: { model: folder('model'), data: jsonl('data', 'sft') },
    output: MODEL,
  };
}
