// One runtime interface for both student families, so that evaluate, the gate and the server do not care
// which family a folder holds (load.ts picks the family's class). Types only: both families import it.
import type { Call } from '../../tasks/call-format';
import type { TaskSpec } from '../../tasks/define';
import type { StudentRequestError } from './errors';
import type { StudentFamily } from './model-folder';

/** What the runtime needs of a task: its output functions and their validation. */
export type StudentTask = Pick<TaskSpec, 'functions' | 'validateCall'>;

export interface StudentLoadOptions {
  /** The task whose calls the student emits; needed for constrained decoding and to validate answers. */
  task?: StudentTask;
  /** The ONNX file inside the folder (e.g. the int8 variant). Default "model.onnx". */
  modelFile?: string;
  /** onnxruntime intra-op threads. Default min(4, available cores): the model is small, more threads only contend. */
  threads?: number;
  /**
   * Decoder only: let drafts guess values from this student's earlier answers (ValueMemory, in memory only).
   * Default true. The answers do not depend on it, but a request's latency then does on what earlier requests
   * were answered: turn it off where that must not be observable (`supertiny serve --no-value-memory`).
   */
  rememberValues?: boolean;
}

/** One input's outcome: the student's prediction, or why it refuses this input (never quoting it). */
export type RuntimeAnswer<P extends RuntimePrediction = RuntimePrediction> = { ok: true; prediction: P } | { ok: false; error: StudentRequestError };

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
