import { promises as fs } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConcurrencyLimit, createTeacherClient, TeacherInput } from '../runtime/teacher/teacher-client';
import { loadMassiveTask, MassiveTask } from '../tasks/massive';
import { RunningTeacherSimulator, startTeacherSimulator } from '../runtime/teacher-simulator';

let massive: MassiveTask;
let tmp: string;
beforeAll(async () => {
  massive = await loadMassiveTask();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'teacher-client-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const devInputs = (count: number, offset = 0): TeacherInput[] =>
  massive.examples
    .filter((e) => e.split === 'dev')
    .slice(offset, offset + count)
    .map((e) => ({ id: e.id, text: e.utterance }));

async function withSimulator<T>(options: Parameters<typeof startTeacherSimulator>[0], body: (sim: RunningTeacherSimulator) => Promise<T>): Promise<T> {
  const sim = await startTeacherSimulator(options);
  try {
    return await body(sim);
  } finally {
    await sim.close();
  }
}

/** A one-route fake endpoint for answers the simulator never gives. */
async function withFakeEndpoint(completion: unknown, body: (url: string) => Promise<void>): Promise<void> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(completion));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

const fast = { backoff: { initialMs: 2, maxMs: 20, maxRetryAfterMs: 50 } };

describe('teacher client against the teacher simulator over HTTP', () => {
  test('retries injected 429 and 500 responses until every sample is answered, and counts them', async () => {
    await withSimulator({ seed: 11, faults: { rate429: 0.25, rate500: 0.15, retryAfterMs: 5 } }, async (sim) => {
      const client = createTeacherClient(massive.task, { baseURL: sim.url, model: sim.model, maxRetries: 10, ...fast });
      const results = await client.labelAll(devInputs(15), 3);
      const outcomes = results.flatMap((r) => r.samples.map((s) => s.outcome));
      expect(outcomes).toHaveLength(45);
      expect(outcomes.filter((o) => o === 'http_error')).toHaveLength(0);
      const stats = client.stats();
      const server = sim.stats();
      expect(server.injected429).toBeGreaterThan(0);
      expect(server.injected500).toBeGreaterThan(0);
      expect(stats.rateLimited).toBe(server.injected429);
      expect(stats.serverErrors).toBe(server.injected500);
      expect(stats.retries).toBe(server.injected429 + server.injected500);
      expect(stats.httpRequests).toBe(server.chatRequests);
    });
  });

  test('the request cache means a re-run (a fresh client on the same folder) sends nothing and pays nothing', async () => {
    const cacheDir = path.join(tmp, 'cache-rerun');
    await withSimulator({ seed: 12 }, async (sim) => {
      const config = { baseURL: sim.url, model: sim.model, cacheDir, prices: { inputPerMillionTokens: 2.5, outputPerMillionTokens: 10 } };
      const first = await createTeacherClient(massive.task, config).labelAll(devInputs(12), 5);
      const afterFirst = sim.stats();
      expect(afterFirst.repeatedAnswers).toBe(0);
      const paid = first.reduce((sum, r) => sum + r.usage.costUsd, 0);
      const tokens = first.reduce((sum, r) => sum + r.usage.promptTokens * 2.5 + r.usage.completionTokens * 10, 0) / 1e6;
      expect(paid).toBeGreaterThan(0);
      expect(paid).toBeCloseTo(tokens, 10);
      expect(afterFirst.promptTokens).toBe(first.reduce((sum, r) => sum + r.usage.promptTokens, 0));

      const rerunClient = createTeacherClient(massive.task, config);
      const second = await rerunClient.labelAll(devInputs(12), 5);
      expect(sim.stats().chatRequests).toBe(afterFirst.chatRequests);
      expect(rerunClient.stats().cacheHits).toBe(afterFirst.completions);
      expect(rerunClient.stats().httpRequests).toBe(0);
      // Nothing paid now; the results still carry what the labels cost (so re-runs give identical artifacts).
      expect(rerunClient.stats().costUsd).toBe(0);
      expect(second).toEqual(first);
    });
  });

  test('recorded latency is that of the paid requests, and a re-run reads the same figure from the cache without paying', async () => {
    const cacheDir = path.join(tmp, 'cache-latency');
    await withSimulator({ seed: 14, faults: { latencyMs: 60 } }, async (sim) => {
      const config = { baseURL: sim.url, model: sim.model, cacheDir, temperature: 0, recordLatency: true };
      const first = await createTeacherClient(massive.task, config).labelAll(devInputs(3), 1);
      const paid = sim.stats().chatRequests;
      // Routing then the final call: two requests of at least 60 ms each, end to end.
      for (const r of first) expect(r.latencyMs).toBeGreaterThanOrEqual(120);
      const again = await createTeacherClient(massive.task, config).labelAll(devInputs(3), 1);
      expect(sim.stats().chatRequests).toBe(paid);
      expect(again.map((r) => r.latencyMs)).toEqual(first.map((r) => r.latencyMs));
      // Labelling (no recordLatency) keeps latency out of its artifacts.
      const labels = await createTeacherClient(massive.task, { ...config, recordLatency: false }).labelAll(devInputs(3), 1);
      expect(labels[0]).not.toHaveProperty('latencyMs');
    });
  });

  test('sample i of an input is cached apart from sample j: more samples later pay only for the new ones', async () => {
    const cacheDir = path.join(tmp, 'cache-samples');
    await withSimulator({ seed: 13 }, async (sim) => {
      const config = { baseURL: sim.url, model: sim.model, cacheDir, useN: false };
      await createTeacherClient(massive.task, config).labelAll(devInputs(6), 2);
      const before = sim.stats().completions;
      await createTeacherClient(massive.task, config).labelAll(devInputs(6), 4);
      // two new samples per input, each a route request and (usually) a final request
      const added = sim.stats().completions - before;
      expect(added).toBeGreaterThanOrEqual(6 * 2);
      expect(added).toBeLessThanOrEqual(6 * 2 * 2);
      expect(sim.stats().repeatedAnswers).toBe(0);
    });
  });

  test('malformed arguments and unknown functions are counted as classified outcomes, never thrown', async () => {
    await withSimulator({ seed: 14, errorModel: { malformedArgumentsRate: 0.25, unknownFunctionRate: 0.15 } }, async (sim) => {
      const client = createTeacherClient(massive.task, { baseURL: sim.url, model: sim.model });
      const results = await client.labelAll(devInputs(20), 3);
      const { outcomes, samples } = client.stats();
      expect(samples).toBe(60);
      expect(Object.values(outcomes).reduce((a, b) => a + b, 0)).toBe(60);
      expect(outcomes.malformed_arguments).toBeGreaterThan(0);
      expect(outcomes.unknown_function).toBeGreaterThan(0);
      expect(outcomes.ok).toBeGreaterThan(0);
      const malformed = results.flatMap((r) => r.samples).find((s) => s.outcome === 'malformed_arguments')!;
      expect(malformed.error).toMatch(/not valid JSON/);
      expect(malformed.lastToolCall).toBeDefined();
      expect(malformed.call).toBeUndefined();
      // the server's own count of the errors it injected matches what the client classified
      const kinds = sim.stats().byChoiceKind;
      expect(outcomes.malformed_arguments).toBe(kinds.malformed_arguments ?? 0);
      expect(outcomes.unknown_function).toBe(kinds.unknown_function ?? 0);
    });
  });

  test('a non-retryable HTTP error (unknown model) is an http_error outcome after one attempt', async () => {
    await withSimulator({ seed: 15 }, async (sim) => {
      const client = createTeacherClient(massive.task, { baseURL: sim.url, model: 'no-such-model', ...fast });
      const [result] = await client.labelAll(devInputs(1), 2);
      expect(result.samples.map((s) => s.outcome)).toEqual(['http_error', 'http_error']);
      expect(result.samples[0].error).toMatch(/HTTP 404/);
      expect(client.stats().httpRequests).toBe(1);
      expect(client.stats().failures.http_error).toBe(1);
    });
  });

  test('a slow endpoint times out per request, is retried, and ends as a timeout outcome', async () => {
    await withSimulator({ seed: 16, faults: { latencyMs: 400 } }, async (sim) => {
      const client = createTeacherClient(massive.task, { baseURL: sim.url, model: sim.model, timeoutMs: 80, maxRetries: 1, ...fast });
      const [result] = await client.labelAll(devInputs(1), 1);
      expect(result.samples[0].outcome).toBe('timeout');
      expect(client.stats().timeouts).toBe(2);
      expect(client.stats().failures.timeout).toBe(1);
    });
  });

  test('Retry-After of a 429 sets the wait before the retry', async () => {
    await withSimulator({ seed: 17, faults: { rate429: 1, retryAfterMs: 1234 } }, async (sim) => {
      const waits: number[] = [];
      const client = createTeacherClient(
        massive.task,
        { baseURL: sim.url, model: sim.model, maxRetries: 2, backoff: { initialMs: 1, maxRetryAfterMs: 60_000 } },
        { sleep: async (ms) => void waits.push(ms) },
      );
      const [result] = await client.labelAll(devInputs(1), 1);
      expect(waits).toEqual([1234, 1234]);
      expect(result.samples[0]).toMatchObject({ outcome: 'http_error', error: expect.stringMatching(/HTTP 429/) });
      expect(sim.stats().injected429).toBe(3);
    });
  });

  test('an empty choices list and a reply without a tool call are classified', async () => {
    const base = { id: 'x', object: 'chat.completion', created: 0, model: 'm', usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
    await withFakeEndpoint({ ...base, choices: [] }, async (url) => {
      const [result] = await createTeacherClient(massive.task, { baseURL: url, model: 'm' }).labelAll(devInputs(1), 2);
      expect(result.samples.map((s) => s.outcome)).toEqual(['empty_choices', 'empty_choices']);
    });
    const text = { index: 0, finish_reason: 'stop', logprobs: null, message: { role: 'assistant', content: 'I think it is alarm_set()', refusal: null } };
    await withFakeEndpoint({ ...base, choices: [text] }, async (url) => {
      const [result] = await createTeacherClient(massive.task, { baseURL: url, model: 'm' }).labelAll(devInputs(1), 1);
      expect(result.samples[0]).toMatchObject({ outcome: 'no_tool_call', error: expect.stringMatching(/without a tool call/) });
    });
  });

  test('the routing step runs the tool code and offers only the routed scenario\'s functions', async () => {
    await withSimulator({ seed: 18 }, async (sim) => {
      const client = createTeacherClient(massive.task, { baseURL: sim.url, model: sim.model, topLogprobs: 2 });
      const results = await client.labelAll(devInputs(10), 2);
      for (const sample of results.flatMap((r) => r.samples).filter((s) => s.outcome === 'ok')) {
        expect(sample.toolSteps).toHaveLength(1);
        const scenario = JSON.parse(sample.toolSteps[0].call.arguments).scenario;
        expect(sample.offered).toEqual(massive.schema.intentsByScenario[scenario]);
        expect(sample.offered).toContain(sample.call!.name);
        expect(sample.logprob).toBeLessThanOrEqual(0);
      }
      expect(sim.stats().byRole).toMatchObject({ route: 10 });
    });
  });
});

test('the concurrency limit never lets more than `limit` tasks run at once', async () => {
  const limit = new ConcurrencyLimit(3);
  let active = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      limit.run(async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((resolve) => setTimeout(resolve, 5));
        active--;
      }),
    ),
  );
  expect(peak).toBe(3);
});
