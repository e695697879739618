// The student server's micro-batcher: bounded batches, a bounded wait, one batch at a time.
import { setTimeout as sleep } from 'node:timers/promises';
import { MicroBatcher, QueueFullError } from '../runtime/serve';

function recorder(delayMs = 0) {
  const batches: number[][] = [];
  let running = 0;
  let overlapped = false;
  const run = async (inputs: number[]) => {
    batches.push(inputs);
    if (++running > 1) overlapped = true;
    await sleep(delayMs);
    running--;
    return inputs.map((x) => x * 10);
  };
  return { batches, run, overlapped: () => overlapped };
}

describe('MicroBatcher', () => {
  test('an idle batcher without a wait runs the first request at once, then batches what queued meanwhile', async () => {
    const r = recorder(20);
    const batcher = new MicroBatcher(r.run, { maxBatch: 32, maxWaitMs: 0 });
    const answers = await Promise.all([1, 2, 3, 4].map((x) => batcher.submit(x)));
    expect(answers).toEqual([10, 20, 30, 40]);
    expect(r.batches).toEqual([[1], [2, 3, 4]]);
    expect(r.overlapped()).toBe(false);
  });

  test('with a wait, requests within it share one batch, never more than maxBatch', async () => {
    const r = recorder(5);
    const sizes: number[] = [];
    const batcher = new MicroBatcher(r.run, { maxBatch: 4, maxWaitMs: 20, onBatch: (n) => sizes.push(n) });
    const inputs = Array.from({ length: 10 }, (_, i) => i);
    const answers = await Promise.all(inputs.map((x) => batcher.submit(x)));
    expect(answers).toEqual(inputs.map((x) => x * 10));
    expect(r.batches).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(sizes).toEqual([4, 4, 2]);
    expect(r.overlapped()).toBe(false);
  });

  test('the wait is bounded: a lone request runs after maxWaitMs', async () => {
    const r = recorder();
    const batcher = new MicroBatcher(r.run, { maxBatch: 32, maxWaitMs: 30 });
    const started = Date.now();
    await batcher.submit(7);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(25);
    expect(waited).toBeLessThan(1000);
  });

  test('a failing batch rejects its own requests only; the next batch runs', async () => {
    let calls = 0;
    const batcher = new MicroBatcher<number, number>(
      async (inputs) => {
        if (calls++ === 0) {
          await sleep(10);
          throw new Error('onnx failed');
        }
        return inputs;
      },
      { maxBatch: 8, maxWaitMs: 0 },
    );
    const first = batcher.submit(1);
    const second = batcher.submit(2);
    await expect(first).rejects.toThrow('onnx failed');
    await expect(second).resolves.toBe(2);
  });

  test('a batch that returns the wrong number of answers rejects its requests', async () => {
    const batcher = new MicroBatcher<number, number>(async () => [], { maxBatch: 8, maxWaitMs: 0 });
    await expect(batcher.submit(1)).rejects.toThrow('a batch of 1 returned 0 answers');
  });

  test('a batch that fails as a whole is retried one request at a time, so only the failing request fails', async () => {
    const r = recorder(5);
    const runs: number[][] = [];
    const batcher = new MicroBatcher<number, number>(
      async (inputs) => {
        runs.push(inputs);
        if (inputs.includes(13)) throw new Error('13 cannot be answered');
        return r.run(inputs);
      },
      { maxBatch: 8, maxWaitMs: 10 },
    );
    const results = await Promise.allSettled([1, 13, 2].map((x) => batcher.submit(x)));
    expect(results).toEqual([
      { status: 'fulfilled', value: 10 },
      { status: 'rejected', reason: new Error('13 cannot be answered') },
      { status: 'fulfilled', value: 20 },
    ]);
    expect(runs).toEqual([[1, 13, 2], [1], [13], [2]]);
  });

  test('a request over maxQueue waiting ones is refused with QueueFullError; the running batch does not count', async () => {
    const r = recorder(30);
    const batcher = new MicroBatcher(r.run, { maxBatch: 1, maxWaitMs: 0, maxQueue: 2 });
    const accepted = [1, 2, 3].map((x) => batcher.submit(x)); // 1 runs, 2 and 3 wait
    await expect(batcher.submit(4)).rejects.toBeInstanceOf(QueueFullError);
    expect(await Promise.all(accepted)).toEqual([10, 20, 30]);
    await expect(batcher.submit(5)).resolves.toBe(50);
  });

  test('an aborted request leaves the queue before it runs; an aborted running one is rejected at once', async () => {
    const r = recorder(40);
    const batcher = new MicroBatcher(r.run, { maxBatch: 1, maxWaitMs: 0 });
    const running = new AbortController();
    const waiting = new AbortController();
    const first = batcher.submit(1, running.signal);
    const second = batcher.submit(2, waiting.signal);
    const third = batcher.submit(3);
    waiting.abort(new Error('client gone'));
    running.abort(new Error('deadline'));
    await expect(second).rejects.toThrow('client gone');
    await expect(first).rejects.toThrow('deadline');
    expect(batcher.waiting).toBe(1);
    await expect(third).resolves.toBe(30);
    expect(r.batches).toEqual([[1], [3]]);
    await expect(batcher.submit(4, AbortSignal.abort(new Error('already gone')))).rejects.toThrow('already gone');
  });

  test('refuses a batch bound that is not a positive integer', () => {
    expect(() => new MicroBatcher(async (x: number[]) => x, { maxBatch: 0, maxWaitMs: 0 })).toThrow(/maxBatch must be a positive integer/);
  });
});
