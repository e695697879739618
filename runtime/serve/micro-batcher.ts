// Micro-batching of concurrent requests into one predictBatch call. One batch runs at a time
// (onnxruntime-node runs a session synchronously on the event loop's thread, so two could not overlap);
// requests that arrive while it runs wait for the next one, so batches grow with the load and an idle
// server adds no delay unless maxWaitMs asks it to wait for company.

export interface MicroBatcherOptions {
  /** Most requests in one batch. */
  maxBatch: number;
  /** How long the first request of a batch may wait for more when the model is idle, ms (0: run at once). */
  maxWaitMs: number;
  /** Called with each batch's size before it runs (for metrics). */
  onBatch?: (size: number) => void;
}

interface Pending<I, O> {
  input: I;
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
  }

  /** Requests waiting for a batch (not counting the running one). */
  get waiting(): number {
    return this.queue.length;
  }

  submit(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
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
    this.options.onBatch?.(batch.length);
    this.runBatch(batch.map((p) => p.input))
      .then(
        (outputs) => {
          if (outputs.length !== batch.length) throw new Error(`a batch of ${batch.length} returned ${outputs.length} answers`);
          batch.forEach((p, i) => p.resolve(outputs[i]));
        },
        (err) => batch.forEach((p) => p.reject(err)),
      )
      .catch((err) => batch.forEach((p) => p.reject(err)))
      .finally(() => {
        this.running = false;
        // Whatever queued meanwhile has waited a whole batch already: run it now.
        if (this.queue.length) this.flush();
      });
  }
}
