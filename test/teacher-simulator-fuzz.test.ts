// The teacher simulator runs inside the worker: no bytes a local client sends may take it down. A bounded
// fuzz over raw TCP (loopback), then a real request must still get the simulator's answer.
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import type { ChatRequest } from '../runtime/teacher-simulator/simulator';
import { loadMassiveTask, type MassiveTask } from '../tasks/massive';
import { FUZZ_KINDS, fuzzCorpus, fuzzServer, sendCase } from './support/http-fuzz';

const MAX_BODY_BYTES = 64 * 1024;
let massive: MassiveTask;
let sim: RunningTeacherSimulator;

beforeAll(async () => {
  massive = await loadMassiveTask();
  // Short header and request deadlines, so that the stalled clients are cut within the test.
  sim = await startTeacherSimulator({ seed: 5, task: massive.task, maxBodyBytes: MAX_BODY_BYTES, limits: { headersTimeoutMs: 500, requestTimeoutMs: 1000 } });
});
afterAll(async () => sim?.close());

const routeRequest = (text: string): ChatRequest => ({
  model: 'teacher-simulator',
  messages: [
    { role: 'system', content: massive.task.systemPrompt },
    { role: 'user', content: text },
  ],
  tools: massive.task.toolDefinitions(['route_scenario']) as ChatRequest['tools'],
  temperature: 0,
});

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${sim.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

/** /healthz answers 200 and a real request over HTTP gets exactly the in-process simulator's answer. */
async function expectServing(server: RunningTeacherSimulator) {
  expect((await fetch(`${server.url.replace(/\/v1$/, '')}/healthz`)).status).toBe(200);
  const request = routeRequest(massive.examples.find((e) => e.split === 'dev')!.utterance);
  const response = await fetch(`${server.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { choices: unknown[] };
  expect(body.choices).toEqual(server.simulator.complete(request).body.choices);
  expect((await fetch(`${server.url}/models`)).status).toBe(200);
}

describe('the teacher simulator survives any bytes', () => {
  test('the request lines that crashed it (http://%zz/, http://[/) are 400s, and it goes on serving', async () => {
    for (const line of ['GET http://%zz/ HTTP/1.1', 'GET http://[/ HTTP/1.1']) {
      const outcome = await sendCase(sim.port, { kind: 'request_line', name: line, pieces: [`${line}\r\nhost: localhost\r\n\r\n`] }, 5000);
      expect(outcome.answer).toBe(400);
    }
    await expectServing(sim);
  });

  test('a bounded fuzz (malformed lines, bad headers, bad JSON, bodies over the limit, odd unicode, slow clients) gets 4xx or closed connections, never a 5xx or a hang', async () => {
    const cases = fuzzCorpus({ chatPath: '/v1/chat/completions', chatBody: routeRequest, maxBodyBytes: MAX_BODY_BYTES }, { seed: 7, mutations: 40 });
    const report = await fuzzServer(sim.port, cases, { concurrency: 8, timeoutMs: 5000 });
    console.log(`teacher simulator fuzz: ${JSON.stringify({ sent: report.sent, answers: report.answers, ms: report.ms })}`);
    expect(report.failures).toEqual([]);
    for (const kind of FUZZ_KINDS) expect(report.sent[kind]).toBeGreaterThan(0);
    expect(report.answers['400']).toBeGreaterThan(10);
    expect(report.answers['413']).toBeGreaterThan(0);
    expect((report.answers['408'] ?? 0) + (report.answers.closed ?? 0)).toBeGreaterThan(0);
    await expectServing(sim);
  }, 60_000);

  test('a body over the limit is a 413, a malformed %-path a 404, and the bearer scheme is matched case-insensitively', async () => {
    expect((await post({ ...routeRequest('x'.repeat(MAX_BODY_BYTES)) })).status).toBe(413);
    expect((await fetch(`${sim.url}/models/%E0%A4%A`)).status).toBe(404);
    const keyed = await startTeacherSimulator({ seed: 5, task: massive.task, apiKey: 'sk-simulator-key-0123456789' });
    try {
      const models = (authorization?: string) => fetch(`${keyed.url}/models`, { headers: authorization ? { authorization } : {} }).then((r) => r.status);
      expect(await models('Bearer sk-simulator-key-0123456789')).toBe(200);
      expect(await models('bearer sk-simulator-key-0123456789')).toBe(200);
      expect(await models('BEARER  sk-simulator-key-0123456789')).toBe(200);
      expect(await models('Bearer sk-wrong')).toBe(401);
      expect(await models('Basic sk-simulator-key-0123456789')).toBe(401);
      expect(await models()).toBe(401);
    } finally {
      await keyed.close();
    }
  });
});

describe("the simulator's idempotency keys are bounded", () => {
  test('past idempotencyMaxKeys the least recently used key is forgotten (answered and billed again); the others still replay', async () => {
    const small = await startTeacherSimulator({ seed: 5, task: massive.task, idempotencyMaxKeys: 2 });
    try {
      const send = (key: string, text: string) =>
        fetch(`${small.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(routeRequest(text)) });
      const replayed = async (key: string, text: string) => {
        const response = await send(key, text);
        expect(response.status).toBe(200);
        await response.arrayBuffer();
        return response.headers.get('idempotent-replayed') === 'true';
      };
      expect(await replayed('k-1', 'wake me up at five')).toBe(false);
      expect(await replayed('k-2', 'play some jazz')).toBe(false);
      expect(await replayed('k-1', 'wake me up at five')).toBe(true); // k-1 is now the most recently used
      expect(await replayed('k-3', 'what is the weather')).toBe(false); // evicts k-2
      expect(await replayed('k-1', 'wake me up at five')).toBe(true);
      expect(await replayed('k-3', 'what is the weather')).toBe(true);
      expect(await replayed('k-2', 'play some jazz')).toBe(false);
      expect(small.stats()).toMatchObject({ completions: 4, replayed: 3 });
    } finally {
      await small.close();
    }
  });
});
