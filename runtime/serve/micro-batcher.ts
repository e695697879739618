// Micro-batching of concurrent requests into one predictBatch call. One batch runs at a time
// (onnxruntime-node runs a session synchronously on the event loop's thread, so two could not overlap);
// requests that arrive while it runs wait for the next one, so batches grow with the load and an idle
// server adds no delay unless maxWaitMs asks it to wait for company. The queue is bounded, a request can
// leave it (its deadline passed, its client left), and a failed batch is retried one request at a time,
// so that one request's failure is that request's alone.

export interface MicroBatcherOptions {
  /** Most requests in one batch. */
  maxBatch: number;
  /** How long the first request of a batch may wait for more when the model is idle, ms (0: run at once). */
  maxWaitMs: number;
  /** Most requests waiting for a batch (the running one not counted); one more is refused with QueueFullError. Default: no bound. */
  maxQueue?: number;
  /** Called with each batch's size before it runs (for metrics); a retried member counts as a batch of 1. */
  onBatch?: (size: number) => void;
}

/** The queue is full: the caller should answer "overloaded, retry later". */
export class QueueFullError extends Error {
  constructor(readonly maxQueue: number) {
    super(`the batch queue is full (${maxQueue} requests waiting)`);
    this.name = 'QueueFullError';
  }
}

interface Pending<I, O> {
  input: I;
  settled: boolean;
  resolve: (output: O) => void;
  reject: (err: unknown) => void;
}

export class MicroBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly runBatch: (inputs: I[]) => Promise<O[]>,
    private readonly options: MicroBatcherOptions,
  ) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) throw new Error(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    if (!(options.maxWaitMs >= 0)) throw new Error(`maxWaitMs must be >= 0, got ${options.maxWaitMs}`);
    if (options.maxQueue !== undefined && !(Number.isInteger(options.maxQueue) && options.maxQueue >= 1)) {
      throw new Error(`maxQueue must be a positive integer, got ${options.maxQueue}`);
    }
  }

  /** Requests waiting for a batch (not counting the running one). */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * The output for `input`. Rejects with QueueFullError when the queue is full, and with the signal's reason
   * when `signal` aborts first: a waiting request then leaves the queue; a running one's answer is dropped.
   */
  submit(input: I, signal?: AbortSignal): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const { maxQueue } = this.options;
      if (maxQueue !== undefined && this.queue.length >= maxQueue) return reject(new QueueFullError(maxQueue));
      const onAbort = () => {
        const at = this.queue.indexOf(pending);
        if (at >= 0) this.queue.splice(at, 1);
        settle(() => reject(signal!.reason));
      };
      const settle = (finish: () => void) => {
        if (pending.settled) return;
        pending.settled = true;
        signal?.removeEventListener('abort', onAbort);
        finish();
      };
      const pending: Pending<I, O> = {
        input,
        settled: false,
        resolve: (output) => settle(() => resolve(output)),
        reject: (err) => settle(() => reject(err)),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(pending);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running) return; // the running batch picks the queue up when it ends
    if (this.queue.length >= this.options.maxBatch || this.options.maxWaitMs === 0) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
    }
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.running = true;
    // run() never rejects (a failing batch rejects its members), so nothing is lost by not awaiting it here.
    void this.run(batch).finally(() => {
      this.running = false;
      // Whatever queued meanwhile has waited a whole batch already: run it now.
      if (this.queue.length) this.flush();
    });
  }

  /** Runs a batch; when it fails as a whole, each member that still waits runs alone. Never rejects. */
  private async run(batch: Pending<I, O>[]): Promise<void> {
    const outcome = await this.attempt(batch);
    if (outcome.ok) return batch.forEach((p, i) => p.resolve(outcome.outputs[i]));
    if (batch.length === 1) return batch[0].reject(outcome.error);
    for (const member of batch) {
      if (member.settled) continue;
      const alone = await this.attempt([member]);
      if (alone.ok) member.resolve(alone.outputs[0]);
      else member.reject(alone.error);
    }
  }

  private async attempt(batch: Pending<I, O>[]): Promise<{ ok: true; outputs: O[] } | { ok: false; error: unknown }> {
    this.options.onBatch?.(batch.length);
    try {
      const outputs = await this.runBatch(batch.map((p) => p.input));
      if (outputs.length !== batch.length) throw new Error(`a batch of ${batch.length} returned ${outputs.length} answers`);
      return { ok: true, outputs };
    } catch (error) {
      return { ok: false, error };
    }
  }
}
