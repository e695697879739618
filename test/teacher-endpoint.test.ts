// The teacher client against endpoints that misbehave like real ones (over real HTTP through the openai
// client): cancellation, Retry-After, outages, and overlapping attempts that share one request cache.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChatClient, EndpointUnavailableError, type ChatRequest } from '../runtime/teacher/chat-client';
import { createTeacherClient, type TeacherInput } from '../runtime/teacher/teacher-client';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import { loadMassiveTask, type MassiveTask } from '../tasks/massive';
import { startFakeEndpoint, type FakeEndpoint } from './support/fake-endpoint';
import { waitFor } from '../runtime/wait-for';

let massive: MassiveTask;
let tmp: string;
let sim: RunningTeacherSimulator;
let fake: FakeEndpoint;
beforeAll(async () => {
  massive = await loadMassiveTask();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'teacher-endpoint-'));
  sim = await startTeacherSimulator({ seed: 21 });
});
afterAll(async () => {
  await sim.close();
  await fs.rm(tmp, { recursive: true, force: true });
});
beforeEach(async () => {
  fake = await startFakeEndpoint();
  sim.resetStats();
});
afterEach(async () => {
  await fake.close();
});

const devInputs = (count: number, offset = 0): TeacherInput[] =>
  massive.examples
    .filter((e) => e.split === 'dev')
    .slice(offset, offset + count)
    .map((e) => ({ id: e.id, text: e.utterance }));

const question = (i: number): ChatRequest => ({ messages: [{ role: 'user', content: `question ${i}` }], n: 1 });

describe('cancellation', () => {
  test('aborting the signal aborts the requests in flight and sends none of those still queued', async () => {
    const stop = new AbortController();
    const client = new ChatClient({ baseURL: fake.url, model: 'm', concurrency: 2, timeoutMs: 60_000 }, { signal: stop.signal });
    const outcomes = Array.from({ length: 6 }, (_, i) => client.complete(question(i), 0));
    await waitFor('two requests in flight at the hanging endpoint', () => fake.open() === 2);
    stop.abort(new Error('cancelled by the test'));
    const settled = await Promise.allSettled(outcomes);
    expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : 'resolved'))).toEqual(Array(6).fill('cancelled by the test'));
    await waitFor('the endpoint to see both connections closed', () => fake.open() === 0);
    // Every complete() has settled, so nothing is left that could still send.
    expect({ received: fake.requests.length, aborted: fake.aborted() }).toEqual({ received: 2, aborted: 2 });
    await expect(client.complete(question(7), 0)).rejects.toThrow('cancelled by the test');
    expect(fake.requests).toHaveLength(2);
  });

  test('a cancellation during a Retry-After wait ends the wait at once', async () => {
    fake.behave({ kind: 'status', status: 429, message: 'slow down', headers: { 'retry-after-ms': '30000' } });
    const stop = new AbortController();
    const client = new ChatClient({ baseURL: fake.url, model: 'm' }, { signal: stop.signal });
    const outcome = client.complete(question(0), 0);
    await waitFor('the first request', () => fake.requests.length === 1);
    const cancelledAt = Date.now();
    stop.abort(new Error('cancelled'));
    await expect(outcome).rejects.toThrow('cancelled');
    expect(Date.now() - cancelledAt).toBeLessThan(1000);
    expect(fake.requests).toHaveLength(1);
  });
});

describe('Retry-After', () => {
  test('the retry waits at least as long as Retry-After asks', async () => {
    fake.behave((n) => (n <= 2 ? { kind: 'status', status: 429, message: 'rate limited', headers: { 'retry-after-ms': '300' } } : { kind: 'forward', baseURL: sim.url }));
    const client = createTeacherClient(massive.task, { baseURL: fake.url, model: sim.model });
    const [result] = await client.labelAll(devInputs(1), 1);
    expect(result.samples[0].outcome).toBe('ok');
    const gaps = fake.requests.slice(1, 3).map((r, i) => r.at - fake.requests[i].at);
    expect(gaps).toHaveLength(2);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(295);
    expect(client.stats().statusCounts).toMatchObject({ '429': 2, '200': 2 });
  });

  test('the total wait of one request is bounded: it fails instead of waiting longer', async () => {
    fake.behave({ kind: 'status', status: 429, message: 'rate limited', headers: { 'retry-after-ms': '400' } });
    const client = new ChatClient({ baseURL: fake.url, model: 'm', maxRetries: 10, backoff: { maxTotalWaitMs: 1000 } });
    const started = Date.now();
    const outcome = await client.complete(question(0), 0);
    // 400 + 400 ms fit in 1000 ms; a third wait would not.
    expect(outcome).toMatchObject({ ok: false, status: 429, endpointFault: true, message: expect.stringMatching(/gave up: retrying would wait over 1000 ms/) });
    expect(fake.requests).toHaveLength(3);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('a Retry-After longer than the most we wait fails the request without retrying early', async () => {
    fake.behave({ kind: 'status', status: 429, message: 'come back in an hour', headers: { 'retry-after': '3600' } });
    const client = new ChatClient({ baseURL: fake.url, model: 'm', backoff: { maxRetryAfterMs: 60_000 } });
    const outcome = await client.complete(question(0), 0);
    expect(outcome).toMatchObject({ ok: false, status: 429, message: expect.stringMatching(/Retry-After 3600000 ms is over the 60000 ms we wait/) });
    expect(fake.requests).toHaveLength(1);
  });
});

describe('outages', () => {
  test('an endpoint that is down stops the client with an error naming the status counts and the last error, not the key', async () => {
    const apiKey = 'sk-secret-0123456789';
    // A hostile or careless endpoint echoes the Authorization header into its error.
    fake.behave({ kind: 'status', status: 503, message: `upstream overloaded (you sent Bearer ${apiKey})` });
    const client = createTeacherClient(
      massive.task,
      { baseURL: fake.url, apiKey, model: 'm', maxRetries: 2, concurrency: 4, backoff: { initialMs: 10 } },
      { stopOnEndpointFault: true },
    );
    const error = await client.labelAll(devInputs(8), 2).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(EndpointUnavailableError);
    const message = (error as Error).message;
    expect(message).toMatch(/503 x\d+/);
    expect(message).toMatch(/last error: HTTP 503: .*upstream overloaded/);
    expect(message).not.toContain(apiKey);
    expect(fake.requests.every((r) => r.authorization === `Bearer ${apiKey}`)).toBe(true);
    // Stopped at the first request that failed for good: 8 inputs could have cost 8 x 3 tries, far fewer were sent.
    const sent = fake.requests.length;
    expect(sent).toBeLessThanOrEqual(4 * 3);
    await waitFor('no request left open', () => fake.open() === 0);
    expect(fake.requests.length).toBe(sent);
  });

  test("an endpoint's error text is passed on as one bounded line without the key, even where the cut would split it", async () => {
    const apiKey = 'sk-secret-0123456789abcdef';
    // 290 characters, then the key across the 300-character cut, a bearer token, newlines and megabytes more.
    fake.behave({ kind: 'status', status: 422, message: `${'x'.repeat(290)}${apiKey}\nAuthorization: Bearer tok_live_987654321\n${'y'.repeat(100_000)}` });
    const client = new ChatClient({ baseURL: fake.url, apiKey, model: 'm' });
    const outcome = await client.complete(question(0), 0);
    expect(outcome.ok).toBe(false);
    const message = (outcome as { message: string }).message;
    expect(message.length).toBeLessThanOrEqual(303);
    expect(message).not.toMatch(/[\n\r]/);
    for (const part of [apiKey.slice(0, 8), apiKey.slice(-8), 'tok_live']) expect(message).not.toContain(part);
    expect(message).toContain('[redac');
    expect(client.describeEndpoint()).not.toContain(apiKey.slice(-8));
  });

  test("an endpoint's URL is described without its query string (an Azure-style ?api-key=) or credentials", async () => {
    fake.behave({ kind: 'status', status: 503, message: 'down' });
    const client = new ChatClient({ baseURL: fake.url, endpoint: 'azure@https://user:pw-secret@res.example.com/openai/v1?api-key=qs-secret-123', model: 'm', maxRetries: 0 });
    await client.complete(question(0), 0);
    const described = client.describeEndpoint();
    expect(described).toMatch(/^endpoint azure@https:\/\/res\.example\.com\/openai\/v1 \(model m\): 1 HTTP attempts \(503 x1\)/);
    expect(described).not.toMatch(/qs-secret|pw-secret/);
  });

  test('a 400 about one request is an answer about that request, not an outage', async () => {
    fake.behave({ kind: 'status', status: 400, message: 'context length exceeded' });
    const client = new ChatClient({ baseURL: fake.url, model: 'm' }, { stopOnEndpointFault: true });
    await expect(client.complete(question(0), 0)).resolves.toMatchObject({ ok: false, status: 400, endpointFault: false });
    expect(client.stats().endpointFaults).toBe(0);
  });
});

describe('one request cache shared by overlapping attempts', () => {
  test('two clients on one cache folder (two attempts of an activity) pay for each request once', async () => {
    const slow = await startTeacherSimulator({ seed: 22, faults: { latencyMs: 300 } });
    try {
      const cacheDir = path.join(tmp, 'overlap');
      const config = { baseURL: slow.url, model: slow.model, cacheDir, concurrency: 4 };
      const first = createTeacherClient(massive.task, config);
      const second = createTeacherClient(massive.task, config);
      const inputs = devInputs(6);
      const [a, b] = await Promise.all([first.labelAll(inputs, 2), second.labelAll(inputs, 2)]);
      expect(b).toEqual(a);
      const stats = slow.stats();
      expect(Object.values(stats.receivedByContentHash).filter((n) => n > 1)).toEqual([]);
      expect(stats.repeatedAnswers).toBe(0);
      // The second attempt waited for the first one's answers (or the other way round), it did not re-send them.
      expect(first.stats().answeredByOtherHolder + second.stats().answeredByOtherHolder).toBeGreaterThan(0);
      expect(first.stats().httpRequests + second.stats().httpRequests).toBe(stats.chatRequests);
    } finally {
      await slow.close();
    }
  });

  test('a lock left by a process that is gone is taken over at once', async () => {
    const cacheDir = path.join(tmp, 'stale-lock');
    fake.behave({ kind: 'forward', baseURL: sim.url });
    const client = createTeacherClient(massive.task, { baseURL: fake.url, model: sim.model, cacheDir });
    // Find the first request's key by asking once into another folder, then plant a dead holder's lock.
    const probe = createTeacherClient(massive.task, { baseURL: fake.url, model: sim.model, cacheDir: path.join(tmp, 'probe') });
    await probe.labelAll(devInputs(1), 1);
    const [entry] = await findCacheFiles(path.join(tmp, 'probe'));
    const lock = path.join(cacheDir, path.relative(path.join(tmp, 'probe'), entry) + '.lock');
    await fs.mkdir(path.dirname(lock), { recursive: true });
    await fs.writeFile(lock, JSON.stringify({ host: os.hostname(), pid: 2 ** 22 + 17, token: 'dead' }));
    const started = Date.now();
    const [result] = await client.labelAll(devInputs(1), 1);
    expect(result.samples[0].outcome).toBe('ok');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await fs.stat(lock).then(() => 'present', () => 'gone')).toBe('gone');
  });

  test('the cache key includes the endpoint: another endpoint never answers from this one\'s cache', async () => {
    const cacheDir = path.join(tmp, 'by-endpoint');
    fake.behave({ kind: 'forward', baseURL: sim.url });
    await createTeacherClient(massive.task, { baseURL: sim.url, model: sim.model, cacheDir }).labelAll(devInputs(2), 1);
    const other = createTeacherClient(massive.task, { baseURL: fake.url, model: sim.model, cacheDir });
    await other.labelAll(devInputs(2), 1);
    expect(other.stats().cacheHits).toBe(0);
    expect(fake.requests.length).toBeGreaterThan(0);
    const named = createTeacherClient(massive.task, { baseURL: fake.url, endpoint: 'named-endpoint', model: sim.model, cacheDir });
    await named.labelAll(devInputs(2), 1);
    expect(named.stats().cacheHits).toBe(0);
  });
});

describe('idempotency keys', () => {
  test('a resend of a cached request (the cache lost with a crash) carries the same key and the simulator replays it unbilled', async () => {
    const inputs = devInputs(2);
    const config = { baseURL: sim.url, endpoint: 'simulator', model: sim.model, concurrency: 2 };
    await createTeacherClient(massive.task, { ...config, cacheDir: path.join(tmp, 'idem-a') }).labelAll(inputs, 2);
    const first = sim.stats();
    // A fresh cache folder stands in for the answers a SIGKILL lost: every request is sent again.
    await createTeacherClient(massive.task, { ...config, cacheDir: path.join(tmp, 'idem-b') }).labelAll(inputs, 2);
    const second = sim.stats();
    expect(second.chatRequests).toBe(2 * first.chatRequests);
    expect(second.completions).toBe(first.completions);
    expect(second.replayed).toBe(first.completions);
    expect(second.repeatedAnswers).toBe(0);
  });

  test('without a request cache (live traffic) no key is sent: each request is answered and billed', async () => {
    const client = new ChatClient({ baseURL: sim.url, model: sim.model });
    await client.complete(question(1), 0);
    await client.complete(question(1), 0);
    expect(sim.stats()).toMatchObject({ completions: 2, replayed: 0 });
  });

  test('the simulator refuses a key reused with another body (422) and one still in progress (409)', async () => {
    const post = (body: unknown, key: string) =>
      fetch(`${sim.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
    const body = (text: string) => ({ model: sim.model, messages: [{ role: 'user', content: text }] });
    expect((await post(body('hello'), 'k-1')).status).toBe(200);
    const reused = await post(body('something else'), 'k-1');
    expect(reused.status).toBe(422);
    expect(((await reused.json()) as { error: { code: string } }).error.code).toBe('idempotency_key_reused');
    const replay = await post(body('hello'), 'k-1');
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    const slow = await startTeacherSimulator({ seed: 23, faults: { latencyMs: 400 } });
    try {
      const send = (key: string) =>
        fetch(`${slow.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body('hi')) });
      const first = send('k-2');
      await waitFor('the first request at the simulator', () => slow.stats().chatRequests >= 1);
      // The first request is answered only after its latency (200-600 ms); the second arrives while it runs.
      const [a, b] = await Promise.all([first, send('k-2')]);
      expect([a.status, b.status].sort()).toEqual([200, 409]);
    } finally {
      await slow.close();
    }
  });
});

async function findCacheFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await fs.readdir(dir)) {
    for (const f of await fs.readdir(path.join(dir, sub))) if (f.endsWith('.json')) out.push(path.join(dir, sub, f));
  }
  return out;
}
