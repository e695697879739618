// A student loaded in a worker thread. onnxruntime-node runs session.run synchronously on the calling
// thread, so a student on the server's own thread stops HTTP, JSON and tokenization while it computes;
// in a worker they overlap with inference on a second core.
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { createLogger } from '../../config/logger';
import {
  predictionsOf,
  type RuntimeAnswer,
  type RuntimeBatchOptions,
  type RuntimePrediction,
  type StudentFamily,
  StudentRequestError,
  type StudentRequestErrorCode,
  type StudentRuntime,
  type TimedRuntimePrediction,
} from '../student';
import type { TaskFiles } from '../../tasks/registry';

const log = createLogger('serve');

export interface ThreadStudentOptions {
  folder: string;
  modelFile?: string;
  threads?: number;
  rememberValues?: boolean;
  /** The built-in task the worker thread loads (a spec holds functions, which cannot cross threads). */
  task: { name: string; files: TaskFiles };
}

/** A RuntimeAnswer as it crosses the thread boundary (an Error's class and fields do not survive the copy). */
export type ThreadAnswer = { ok: true; prediction: RuntimePrediction } | { ok: false; error: { code: StudentRequestErrorCode; message: string } };

export type ThreadRequest = { type: 'predict'; id: number; inputs: string[] } | { type: 'release' };
export type ThreadResponse =
  | { type: 'ready'; family: StudentFamily; modelFile: string }
  | { type: 'failed'; name: string; message: string }
  | { type: 'answers'; id: number; answers?: ThreadAnswer[]; error?: string }
  | { type: 'released' };

export class ThreadedStudent implements StudentRuntime {
  private readonly pending = new Map<number, { resolve: (answers: ThreadAnswer[]) => void; reject: (err: Error) => void }>();
  private nextId = 0;
  private released: Promise<void> | undefined;
  /** Why the worker is gone, once it is: later requests fail at once instead of waiting forever. */
  private gone: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly family: StudentFamily,
    readonly modelFile: string,
  ) {
    worker.on('message', (message: ThreadResponse) => {
      if (message.type !== 'answers') return;
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.answers) waiting?.resolve(message.answers);
      else waiting?.reject(new Error(`the student thread failed: ${message.error}`));
    });
    const failAll = (err: Error) => {
      if (!this.gone && !this.released) log.error('the student thread is gone; the server is unhealthy', { error: err.message });
      this.gone ??= err;
      for (const waiting of this.pending.values()) waiting.reject(err);
      this.pending.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`the student thread exited (${code})`)));
  }

  /** Why the worker thread is gone (undefined while it runs). */
  get failure(): Error | undefined {
    return this.gone;
  }

  /** Starts the worker and waits until its student is loaded; load errors keep their message. */
  static async load(options: ThreadStudentOptions): Promise<ThreadedStudent> {
    // The worker's entry is TypeScript: register tsx's CommonJS hooks in the worker first (a worker does
    // not inherit the loader hooks the main thread runs under).
    const entry = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(path.join(__dirname, 'student-thread-worker.ts'))});`;
    const worker = new Worker(entry, { eval: true, workerData: options });
    let onError: (err: Error) => void = () => undefined;
    let onExit: (code: number) => void = () => undefined;
    let onMessage: (message: ThreadResponse) => void = () => undefined;
    const ready = await new Promise<Extract<ThreadResponse, { type: 'ready' }>>((resolve, reject) => {
      onError = reject;
      onExit = (code) => reject(new Error(`the student thread exited (${code}) while loading ${options.folder}`));
      onMessage = (message) => {
        if (message.type === 'ready') resolve(message);
        if (message.type === 'failed') reject(Object.assign(new Error(message.message), { name: message.name }));
      };
      worker.on('error', onError).on('exit', onExit).on('message', onMessage);
    }).catch(async (err) => {
      await worker.terminate();
      throw err;
    });
    // Only our own listeners: the Worker keeps internal ones that start and stop its message port.
    worker.off('error', onError).off('exit', onExit).off('message', onMessage);
    return new ThreadedStudent(worker, ready.family, ready.modelFile);
  }

  async predictBatch(inputs: readonly string[], options?: RuntimeBatchOptions): Promise<RuntimePrediction[]> {
    return predictionsOf(await this.predictEach(inputs, options));
  }

  /** The thread's student checks each input alone and answers the rest in one batch. */
  async predictEach(inputs: readonly string[], _options?: RuntimeBatchOptions): Promise<RuntimeAnswer[]> {
    if (this.released) throw new Error('the student thread is released');
    if (this.gone) throw this.gone;
    const id = this.nextId++;
    const answers = await new Promise<ThreadAnswer[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'predict', id, inputs: [...inputs] } satisfies ThreadRequest);
    });
    return answers.map((a) => (a.ok ? a : { ok: false, error: new StudentRequestError(a.error.message, a.error.code) }));
  }

  async predict(input: string): Promise<TimedRuntimePrediction> {
    const started = performance.now();
    const [prediction] = await this.predictBatch([input]);
    return { ...prediction, latencyMs: performance.now() - started };
  }

  release(): Promise<void> {
    this.released ??= (async () => {
      if (this.gone) return; // nothing left to release
      await new Promise<void>((resolve) => {
        this.worker.on('message', (message: ThreadResponse) => message.type === 'released' && resolve());
        this.worker.once('exit', () => resolve());
        this.worker.postMessage({ type: 'release' } satisfies ThreadRequest);
      });
      await this.worker.terminate();
    })();
    return this.released;
  }
}
