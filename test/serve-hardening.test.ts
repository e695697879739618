// `supertiny serve` facing hostile or unlucky clients: any bytes over raw TCP (loopback), a full queue, a
// passed deadline, a client that leaves, one over-long decoder prompt in a batch, an internal failure, and
// the checks of the CLI (--help, no token on a non-loopback host, the bearer scheme). Real servers, real
// onnxruntime: the tiny encoder of the serve bed, and a random-init decoder built by the trainer.
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { readEnv } from '../config/env';
import { startServe, wantsServeHelp } from '../cli/serve';
import { exposureCheck, ExposureError, type RunningStudentServer, startStudentServer, type StudentServerOptions, ThreadedStudent } from '../runtime/serve';
import { loadStudent, type StudentRuntime } from '../runtime/student';
import { callArgumentsObject } from '../tasks/call-format';
import { FUZZ_KINDS, fuzzCorpus, fuzzServer, sendCase } from './support/http-fuzz';
import { chatBody, loadServeBed, metricsOf, MODEL, postRaw, rootOf, sample, type ServeBed } from './support/serve-bed';
import { tinyDecoder } from './support/trainer-run';
import { waitFor } from '../runtime/wait-for';

const env = readEnv();
const TOKEN = 'serve-token-0123456789abcdef';
const MAX_BODY_BYTES = 64 * 1024;

let bed: ServeBed;
beforeAll(async () => {
  bed = await loadServeBed('serve-hardening-');
}, 120_000);
afterAll(async () => bed?.remove());

async function serve(options: Partial<StudentServerOptions> = {}, student?: StudentRuntime): Promise<{ server: RunningStudentServer; stop(): Promise<void> }> {
  const loaded = student ?? (await loadStudent(bed.folder, { task: bed.studentTask, threads: 1 }));
  const server = await startStudentServer({ student: loaded, functionNames: bed.massive.task.functionNames, modelName: MODEL, ...options });
  return { server, stop: async () => (await server.close(), await loaded.release()) };
}

/** The status and the answer (its call, or its error code) of a chat request, as comparable values. */
async function outcome(response: Response): Promise<{ status: number; call?: unknown; code?: unknown; message?: unknown }> {
  const body = (await response.json()) as { choices?: { message: { tool_calls: { function: unknown }[] } }[]; error?: { code: unknown; message: unknown } };
  return body.choices ? { status: response.status, call: body.choices[0].message.tool_calls[0].function } : { status: response.status, code: body.error?.code, message: body.error?.message };
}

/** /healthz answers 200 and a real request gets the runtime's own answer. */
async function expectServing(server: RunningStudentServer, headers: Record<string, string> = {}) {
  expect((await fetch(`${rootOf(server)}/healthz`)).status).toBe(200);
  const input = bed.answerable[0];
  const answer = await outcome(await postRaw(server, chatBody(input), headers));
  const want = bed.expected.get(input)!.call!;
  expect(answer).toEqual({ status: 200, call: { name: want.name, arguments: JSON.stringify(callArgumentsObject(want)) } });
}

/** A real student whose batches wait at a gate until the test opens it: a model kept busy on purpose. */
function gated(student: StudentRuntime) {
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  const computed: string[] = [];
  let waiting = 0;
  const runtime: StudentRuntime = {
    family: student.family,
    modelFile: student.modelFile,
    predict: (input) => student.predict(input),
    predictBatch: (inputs, options) => student.predictBatch(inputs, options),
    predictEach: async (inputs, options) => {
      waiting++;
      await gate;
      computed.push(...inputs);
      return student.predictEach(inputs, options);
    },
    release: () => student.release(),
  };
  return { runtime, computed, open: () => openGate(), atGate: () => waiting };
}

describe('the student server survives any bytes', () => {
  let s: Awaited<ReturnType<typeof serve>>;
  const auth = { authorization: `Bearer ${TOKEN}` };
  beforeAll(async () => {
    // As the CLI serves (the student in a worker thread), with short header and request deadlines, so that
    // the stalled clients are cut within the test.
    const student = await ThreadedStudent.load({ folder: bed.folder, task: { name: 'massive', files: { data: env.massivePath } }, threads: 1 });
    s = await serve({ apiToken: TOKEN, maxBodyBytes: MAX_BODY_BYTES, limits: { headersTimeoutMs: 500, requestTimeoutMs: 1000 } }, student);
  });
  afterAll(async () => s?.stop());

  test('the request lines that crashed it (http://%zz/, http://[/), sent before any token, are 400s, and it goes on serving', async () => {
    for (const line of ['GET http://%zz/ HTTP/1.1', 'GET http://[/ HTTP/1.1']) {
      const got = await sendCase(s.server.port, { kind: 'request_line', name: line, pieces: [`${line}\r\nhost: localhost\r\n\r\n`] }, 5000);
      expect(got.answer).toBe(400);
    }
    await expectServing(s.server, auth);
  });

  test('a bounded fuzz (malformed lines, bad headers, bad JSON, bodies over the limit, odd unicode, slow clients) gets 4xx or closed connections, never a 5xx or a hang', async () => {
    const cases = fuzzCorpus(
      { chatPath: '/v1/chat/completions', chatBody: (text) => ({ model: MODEL, messages: [{ role: 'user', content: text }] }), headers: auth, maxBodyBytes: MAX_BODY_BYTES },
      { seed: 11, mutations: 40 },
    );
    const report = await fuzzServer(s.server.port, cases, { concurrency: 8, timeoutMs: 5000 });
    console.log(`student server fuzz: ${JSON.stringify({ sent: report.sent, answers: report.answers, ms: report.ms })}`);
    expect(report.failures).toEqual([]);
    for (const kind of FUZZ_KINDS) expect(report.sent[kind]).toBeGreaterThan(0);
    expect(report.answers['400']).toBeGreaterThan(10);
    expect(report.answers['413']).toBeGreaterThan(0);
    expect((report.answers['408'] ?? 0) + (report.answers.closed ?? 0)).toBeGreaterThan(0);
    // The odd-unicode requests reached the student and were answered.
    expect((report.answers['200'] ?? 0) + (report.answers['422'] ?? 0)).toBeGreaterThan(5);
    const metrics = await metricsOf(s.server);
    expect(metrics.split('\n').filter((l) => /^supertiny_http_requests_total\{.*status="5\d\d"/.test(l))).toEqual([]);
    await expectServing(s.server, auth);
  }, 60_000);
});

describe('backpressure: a bounded queue, a deadline, and dropped work of clients that left', () => {
  test('a request over the queue bound is a 503 queue_full with Retry-After; the queued ones are answered once the model is free', async () => {
    const busy = gated(await loadStudent(bed.folder, { task: bed.studentTask, threads: 1 }));
    const s = await serve({ maxBatch: 1, maxQueue: 2 }, busy.runtime);
    try {
      const [a, b, c] = bed.answerable;
      const running = postRaw(s.server, chatBody(a));
      await waitFor('the first request at the model', () => busy.atGate() === 1);
      const queued = [postRaw(s.server, chatBody(b)), postRaw(s.server, chatBody(c))];
      await waitFor('two requests in the queue', async () => (await metricsOf(s.server)).includes('supertiny_batch_queue_length 2'));
      const refused = await postRaw(s.server, chatBody(a));
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(await outcome(refused)).toMatchObject({ status: 503, code: 'queue_full' });
      busy.open();
      const answers = await Promise.all([running, ...queued].map(async (r) => outcome(await r)));
      expect(answers.map((x) => (x.call as { name: string }).name)).toEqual([a, b, c].map((u) => bed.expected.get(u)!.call!.name));
      expect(sample(await metricsOf(s.server), 'supertiny_requests_shed_total{reason="queue_full"}')).toBe(1);
    } finally {
      busy.open();
      await s.stop();
    }
  });

  test('a request past its deadline is a 503 deadline_exceeded with Retry-After, and its queued work is dropped', async () => {
    const busy = gated(await loadStudent(bed.folder, { task: bed.studentTask, threads: 1 }));
    const s = await serve({ maxBatch: 1, deadlineMs: 400 }, busy.runtime);
    try {
      const [a, b] = bed.answerable;
      const first = postRaw(s.server, chatBody(a));
      await waitFor('the first request at the model', () => busy.atGate() === 1);
      const late = await postRaw(s.server, chatBody(b)); // queued behind the busy model until its deadline
      expect(late.status).toBe(503);
      expect(late.headers.get('retry-after')).toBe('1');
      expect(await outcome(late)).toMatchObject({ code: 'deadline_exceeded' });
      expect((await outcome(await first)).code).toBe('deadline_exceeded'); // its answer was not ready either
      busy.open();
      await expectServing(s.server);
      // The model computed the first request (it was running) and the check's, never the dropped one.
      expect(busy.computed).toEqual([a, bed.answerable[0]]);
      expect(sample(await metricsOf(s.server), 'supertiny_requests_shed_total{reason="deadline"}')).toBe(2);
    } finally {
      busy.open();
      await s.stop();
    }
  });

  test('a queued request whose client disconnects is dropped before it reaches the model', async () => {
    const busy = gated(await loadStudent(bed.folder, { task: bed.studentTask, threads: 1 }));
    const s = await serve({ maxBatch: 1 }, busy.runtime);
    try {
      const [a, b] = bed.answerable;
      const first = postRaw(s.server, chatBody(a));
      await waitFor('the first request at the model', () => busy.atGate() === 1);
      const body = chatBody(b);
      const socket = net.connect(s.server.port, '127.0.0.1');
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await waitFor('the second request in the queue', async () => (await metricsOf(s.server)).includes('supertiny_batch_queue_length 1'));
      socket.destroy();
      await waitFor('the queue to drop it', async () => sample(await metricsOf(s.server), 'supertiny_requests_shed_total{reason="client_gone"}') === 1);
      expect(await metricsOf(s.server)).toContain('supertiny_batch_queue_length 0');
      busy.open();
      expect((await first).status).toBe(200);
      expect(busy.computed).toEqual([a]);
    } finally {
      busy.open();
      await s.stop();
    }
  });
});

describe('connection limits', () => {
  test('past maxConnections a new connection is closed at once; once one closes, requests are served again', async () => {
    const s = await serve({ limits: { maxConnections: 2 } });
    const healthz = { kind: 'request_line' as const, name: 'GET /healthz', pieces: ['GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n'] };
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        held.push(
          await new Promise<net.Socket>((resolve, reject) => {
            const socket = net.connect(s.server.port, '127.0.0.1', () => resolve(socket));
            socket.once('error', reject);
          }),
        );
      }
      expect((await sendCase(s.server.port, healthz, 5000)).answer).toBe('closed');
      held[0].destroy();
      await waitFor('a request to be served again', async () => (await sendCase(s.server.port, healthz, 5000)).answer === 200, { timeoutMs: 10_000 });
    } finally {
      held.forEach((socket) => socket.destroy());
      await s.stop();
    }
  });
});

describe('one request\'s failure is its own', () => {
  test('an over-long decoder prompt is a 400 context_length_exceeded alone; the requests batched with it get their single answers, and no error quotes it', async () => {
    const decoder = await tinyDecoder(await bed.massive.task.dataset.load('train'));
    const student = await ThreadedStudent.load({ folder: decoder.folder, task: { name: 'massive', files: { data: env.massivePath } }, threads: 1 });
    const s = await serve({ maxBatch: 8, batchWaitMs: 200 }, student);
    try {
      const normal = bed.answerable.slice(0, 3);
      const secret = 'my-secret-utterance ';
      const long = secret.repeat(Math.ceil((decoder.maxPositionEmbeddings * 4) / secret.length));
      const alone: Awaited<ReturnType<typeof outcome>>[] = [];
      for (const input of normal) alone.push(await outcome(await postRaw(s.server, chatBody(input))));
      const before = await metricsOf(s.server);
      const together = await Promise.all([...normal, long].map(async (input) => postRaw(s.server, chatBody(input)).then((r) => r.text().then((text) => ({ status: r.status, text })))));
      const after = await metricsOf(s.server);
      // The four shared one batch.
      expect(sample(after, 'supertiny_batch_size_count') - sample(before, 'supertiny_batch_size_count')).toBe(1);
      expect(sample(after, 'supertiny_batch_size_sum') - sample(before, 'supertiny_batch_size_sum')).toBe(4);
      const refused = together[3];
      expect(refused.status).toBe(400);
      expect(JSON.parse(refused.text).error).toMatchObject({ code: 'context_length_exceeded', param: 'messages', type: 'invalid_request_error' });
      expect(JSON.parse(refused.text).error.message).toMatch(/the prompt has \d+ tokens; this student takes at most 63/);
      together.slice(0, 3).forEach((answer, i) => {
        const parsed = JSON.parse(answer.text);
        expect(parsed.choices ? { status: answer.status, call: parsed.choices[0].message.tool_calls[0].function } : { status: answer.status, code: parsed.error.code, message: parsed.error.message }).toEqual(alone[i]);
      });
      for (const answer of together) expect(answer.text).not.toContain('my-secret-utterance');
    } finally {
      await s.stop();
    }
  }, 120_000);

  test('an internal failure is a generic 500 carrying the request id; the detail stays in the log', async () => {
    // A student thread that died: every request fails inside the server.
    const student = await ThreadedStudent.load({ folder: bed.folder, task: { name: 'massive', files: { data: env.massivePath } }, threads: 1 });
    await (student as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const s = await serve({}, student);
    try {
      const response = await postRaw(s.server, chatBody('hello'));
      expect(response.status).toBe(500);
      const requestId = response.headers.get('x-request-id');
      expect(requestId).toMatch(/^req_[0-9a-f]{32}$/);
      const error = (await response.json() as { error: { message: string; code: string; type: string } }).error;
      expect(error).toMatchObject({ type: 'server_error', code: 'internal_error' });
      expect(error.message).toContain(requestId);
      expect(error.message).not.toMatch(/thread|exited/);
      // The health check says the student failed, not how.
      expect(await (await fetch(`${rootOf(s.server)}/healthz`)).json()).toEqual({ status: 'student_failed', model: MODEL, family: 'encoder', cascade: false });
    } finally {
      await s.stop();
    }
  });
});

describe('the bearer token', () => {
  test('the Bearer scheme is matched case-insensitively; other schemes and a wrong token are 401s', async () => {
    const s = await serve({ apiToken: TOKEN });
    try {
      const models = (authorization: string) => fetch(`${s.server.url}/models`, { headers: { authorization } }).then((r) => r.status);
      for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) expect(await models(`${scheme} ${TOKEN}`)).toBe(200);
      expect(await models(`Bearer   ${TOKEN}`)).toBe(200);
      for (const wrong of [`Basic ${TOKEN}`, `Bearer${TOKEN}`, 'Bearer wrong-token', `Bearer ${TOKEN}x`, `Token ${TOKEN}`]) expect(await models(wrong)).toBe(401);
    } finally {
      await s.stop();
    }
  });

  test('a token under 16 characters starts the server with a warning; a long one without', async () => {
    const written: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array) => (written.push(String(chunk)), true)) as typeof process.stderr.write);
    try {
      const weak = await serve({ apiToken: 'short-token' });
      await weak.stop();
      expect(written.join('')).toMatch(/shorter than 16 characters/);
      written.length = 0;
      const strong = await serve({ apiToken: TOKEN });
      await strong.stop();
      expect(written.join('')).not.toMatch(/shorter than 16 characters/);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('supertiny serve checks before serving', () => {
  test('--help (or -h) prints the usage and exits 0', async () => {
    expect(wantsServeHelp(['--model', 'x', '-h'])).toBe(true);
    expect(wantsServeHelp(['--model', 'x'])).toBe(false);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(env.projectRoot, 'cli', 'main.ts'), 'serve', '--help'], { cwd: env.projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(stdout).toMatch(/^usage: supertiny serve --model FOLDER/);
    expect(stdout).toContain('--allow-no-auth');
  }, 60_000);

  test('a non-loopback host without SUPERTINY_SERVE_TOKEN is refused before anything loads, unless --allow-no-auth', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
      await expect(startServe(['--model', bed.folder, '--host', host, '--port', '0'], { ...env, serveToken: undefined })).rejects.toThrow(ExposureError);
    }
    await expect(startServe(['--model', bed.folder, '--host', '0.0.0.0'], { ...env, serveToken: undefined })).rejects.toThrow(/without a bearer token.*--allow-no-auth/);
    await expect(startStudentServer({ student: {} as StudentRuntime, functionNames: [], modelName: MODEL, host: '0.0.0.0' })).rejects.toThrow(ExposureError);
    // The decision, for the hosts that are not bound here.
    expect(exposureCheck('0.0.0.0', false, true)).toBe('warn');
    expect(exposureCheck('0.0.0.0', true, false)).toBe('ok');
    for (const loopback of ['127.0.0.1', '127.3.4.5', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) expect(exposureCheck(loopback, false, false)).toBe('ok');
    for (const exposed of ['10.0.0.1', '::ffff:10.0.0.1', 'example.com', '']) expect(() => exposureCheck(exposed, false, false)).toThrow(ExposureError);
    // A loopback address other than 127.0.0.1 serves without a token.
    const serving = await startServe(['--model', bed.folder, '--model-name', MODEL, '--host', '127.0.0.2', '--port', '0'], { ...env, serveToken: undefined });
    try {
      expect(serving.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+\/v1$/);
      expect((await fetch(`${rootOf(serving)}/healthz`)).status).toBe(200);
    } finally {
      await serving.close();
    }
  }, 60_000);
});
