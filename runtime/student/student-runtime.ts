// One runtime interface for both student families, so that evaluate, the gate and the server do not care
// which family a folder holds: loadStudent reads the folder's supertiny.json and loads the right one.
import type { Call } from '../../tasks/call-format';
import type { TaskSpec } from '../../tasks/define';
import type { RuntimeAnswer } from './answers';
import { EncoderStudent } from './encoder-model';
import { readStudentFamily, requireFolder, type StudentFamily } from './model-folder';
import { DecoderStudent } from './decoder-model';

/** What the runtime needs of a task: its output functions and their validation. */
export type StudentTask = Pick<TaskSpec, 'functions' | 'validateCall'>;

export interface StudentLoadOptions {
  /** The task whose calls the student emits; needed for constrained decoding and to validate answers. */
  task?: StudentTask;
  /** The ONNX file inside the folder (e.g. the int8 variant). Default "model.onnx". */
  modelFile?: string;
  /** onnxruntime intra-op threads. Default min(4, available cores): the model is small, more threads only contend. */
  threads?: number;
}

/** One answer of a student, whichever the family. */
export interface RuntimePrediction {
  input: string;
  /** The call, when the student produced one and (with a task) the task's schema accepts it. */
  call?: Call;
  /** Why there is no call. */
  errors?: string[];
  /** How sure the student is of `call`, in [0, 1] (each family documents its measure); 0 when there is no call. */
  confidence: number;
}

export interface TimedRuntimePrediction extends RuntimePrediction {
  /** Wall time of the whole request, tokenization and decoding included. */
  latencyMs: number;
}

export interface RuntimeBatchOptions {
  /** Requests run together. Default 16. */
  batchSize?: number;
}

export interface StudentRuntime {
  readonly family: StudentFamily;
  /** The ONNX file the session runs. */
  readonly modelFile: string;
  /** One request, timed (the single-request latency of a served student). */
  predict(input: string): Promise<TimedRuntimePrediction>;
  /** Many requests in batches; answers come back in input order. An input the student cannot take fails the call. */
  predictBatch(inputs: readonly string[], options?: RuntimeBatchOptions): Promise<RuntimePrediction[]>;
  /**
   * Many requests, each checked alone first: an input the student cannot take (a prompt longer than the
   * decoder's context) gets its own refusal, and the others are answered together as by predictBatch.
   */
  predictEach(inputs: readonly string[], options?: RuntimeBatchOptions): Promise<RuntimeAnswer[]>;
  release(): Promise<void>;
}

/** Loads an exported student folder of either family; errors name the missing file or the wrong field. */
export async function loadStudent(folder: string, options: StudentLoadOptions = {}): Promise<StudentRuntime> {
  await requireFolder(folder);
  const family = await readStudentFamily(folder);
  return family === 'encoder' ? EncoderStudent.load(folder, options) : DecoderStudent.load(folder, options);
}
