// `supertiny serve` end to end: real HTTP, real onnxruntime on a tiny random-weight encoder student
// (test/fixtures/make-encoder-fixture.py --massive-names), called through the real `openai` client.
// Random weights give meaningless calls, but the server's answers must be exactly the runtime's.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import OpenAI from 'openai';
import { TeacherClient } from '../runtime/teacher/teacher-client';
import { readEnv } from '../config/env';
import { startServe } from '../cli/serve';
import { type RunningStudentServer, startStudentServer, type StudentChatCompletion, TeacherCascade, ThreadedStudent } from '../runtime/serve';
import { loadStudent, type RuntimePrediction, type StudentRuntime } from '../runtime/student';
import { callArgumentsObject } from '../tasks/call-format';
import type { MassiveTask } from '../tasks/massive';
import { type FakeTeacher, startFakeTeacher } from './support/fake-teacher';
import { ask, client, errorBody, loadServeBed, MODEL, postRaw, rootOf, sample, type ServeBed, UTTERANCES } from './support/serve-bed';

const env = readEnv();

let bed: ServeBed;
let root: string;
let folder: string;
let massive: MassiveTask;
let expected: Map<string, RuntimePrediction>;
let answerable: string[];
let unanswerable: string[];

beforeAll(async () => {
  bed = await loadServeBed();
  ({ root, folder, massive, expected, answerable, unanswerable } = bed);
}, 120_000);

afterAll(async () => bed?.remove());

async function serve(options: Partial<Parameters<typeof startStudentServer>[0]> = {}): Promise<{ server: RunningStudentServer; student: StudentRuntime; stop(): Promise<void> }> {
  const student = await loadStudent(folder, { task: bed.studentTask, threads: 1 });
  const server = await startStudentServer({ student, functionNames: massive.task.functionNames, modelName: MODEL, ...options });
  return { server, student, stop: async () => (await server.close(), await student.release()) };
}

/** Two utterances whose student confidences differ, and a threshold between them. */
function thresholdBetween(): { low: string; high: string; threshold: number } {
  const sorted = answerable.map((u) => expected.get(u)!).sort((a, b) => a.confidence - b.confidence);
  const low = sorted[0];
  const high = sorted[sorted.length - 1];
  expect(high.confidence).toBeGreaterThan(low.confidence);
  return { low: low.input, high: high.input, threshold: (low.confidence + high.confidence) / 2 };
}

describe('the student server through the openai client', () => {
  let s: Awaited<ReturnType<typeof serve>>;
  let openai: OpenAI;
  beforeAll(async () => {
    s = await serve({ batchWaitMs: 5 });
    openai = client(s.server);
  });
  afterAll(async () => s?.stop());

  test("answers with the student's call as a tool_calls message, with its confidence", async () => {
    const tools = massive.task.toolDefinitions(massive.task.functionNames);
    expect(answerable.length).toBeGreaterThanOrEqual(5);
    for (const input of answerable) {
      const completion = await ask(openai, input, { tools, tool_choice: 'required' });
      const want = expected.get(input)!;
      const choice = completion.choices[0];
      expect(completion.object).toBe('chat.completion');
      expect(completion.model).toBe(MODEL);
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.content).toBeNull();
      const call = choice.message.tool_calls![0];
      expect(call.type).toBe('function');
      if (call.type !== 'function') continue;
      expect({ name: call.function.name, args: JSON.parse(call.function.arguments) }).toEqual({ name: want.call!.name, args: callArgumentsObject(want.call!) });
      expect(completion.supertiny.answered_by).toBe('student');
      expect(completion.supertiny.family).toBe('encoder');
      expect(completion.supertiny.confidence).toBeCloseTo(want.confidence, 6);
      expect(completion.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    }
    // Not vacuous: the fixture calls several functions, some with arguments.
    const calls = answerable.map((u) => expected.get(u)!.call!);
    expect(new Set(calls.map((c) => c.name)).size).toBeGreaterThan(1);
    expect(calls.some((c) => c.args.length > 0)).toBe(true);
  });

  test('an input the student has no valid call for is a 422 no_call naming why', async () => {
    // studentTask refuses the seeded fixture's argument-less calls.
    expect(unanswerable.length).toBeGreaterThan(0);
    const err = await ask(openai, unanswerable[0]).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.UnprocessableEntityError);
    expect(err).toMatchObject({ status: 422, type: 'model_error', code: 'no_call' });
    expect(err.message).toContain(expected.get(unanswerable[0])!.errors![0]);
  });

  test('the last user message is the input, whatever comes before it', async () => {
    const [first, second] = answerable;
    const completion = (await openai.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You route requests.' },
        { role: 'user', content: second },
        { role: 'assistant', content: 'ok' },
        { role: 'user', content: [{ type: 'text', text: first }] },
      ],
    })) as StudentChatCompletion;
    const call = completion.choices[0].message.tool_calls![0];
    expect(call.type === 'function' && call.function.name).toBe(expected.get(first)!.call!.name);
  });

  test('a forced function is answered when it is the student\'s call, and refused with 422 call_not_offered when it is not', async () => {
    const input = answerable[0];
    const name = expected.get(input)!.call!.name;
    const forced = await ask(openai, input, { tool_choice: { type: 'function', function: { name } } });
    const call = forced.choices[0].message.tool_calls![0];
    expect(call.type === 'function' && call.function.name).toBe(name);

    const other = massive.task.functionNames.find((f) => f !== name)!;
    const refused = await ask(openai, input, { tool_choice: { type: 'function', function: { name: other } } }).catch((err) => err);
    expect(refused).toBeInstanceOf(OpenAI.UnprocessableEntityError);
    expect(refused).toMatchObject({ status: 422, code: 'call_not_offered', param: 'tool_choice' });
    expect(refused.message).toContain(name);
  });

  test('tools the student cannot call, tool_choice "none", streaming and n > 1 are 400s naming the parameter', async () => {
    const route = [{ type: 'function' as const, function: { name: 'route_scenario', parameters: { type: 'object', properties: {} } } }];
    const cases: [Partial<OpenAI.ChatCompletionCreateParamsNonStreaming>, string][] = [
      [{ tools: route }, 'tools'],
      [{ tool_choice: 'none' }, 'tool_choice'],
      [{ tool_choice: { type: 'function', function: { name: 'no_such_function' } } }, 'tool_choice'],
      [{ n: 2 }, 'n'],
    ];
    for (const [extra, param] of cases) {
      const err = await ask(openai, 'hello', extra).catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect({ param: err.param, type: err.type }).toEqual({ param, type: 'invalid_request_error' });
    }
    const streamed = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true }).catch((e) => e);
    expect(streamed).toBeInstanceOf(OpenAI.BadRequestError);
    expect(streamed.param).toBe('stream');
  });

  test('bad input gets an OpenAI error body with a 4xx status', async () => {
    const badJson = await postRaw(s.server, '{"model": "tiny-student", "messages": [');
    expect(badJson.status).toBe(400);
    expect({ error: await errorBody(badJson) }).toEqual({ error: { message: expect.stringContaining('JSON'), type: 'invalid_request_error', param: null, code: 'invalid_json' } });

    const noUser = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'system', content: 'hi' }] }).catch((e) => e);
    expect(noUser).toBeInstanceOf(OpenAI.BadRequestError);
    expect(noUser).toMatchObject({ param: 'messages', code: 'missing_user_message' });

    const noMessages = await postRaw(s.server, JSON.stringify({ model: MODEL, messages: [] }));
    expect(noMessages.status).toBe(400);
    expect((await errorBody(noMessages)).param).toBe('messages');

    const wrongRole = await postRaw(s.server, JSON.stringify({ model: MODEL, messages: [{ role: 'robot', content: 'hi' }] }));
    expect(wrongRole.status).toBe(400);
    expect((await errorBody(wrongRole))).toMatchObject({ param: 'messages[0].role', type: 'invalid_request_error' });

    const unknownModel = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
    expect(unknownModel).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknownModel).toMatchObject({ code: 'model_not_found', param: 'model' });

    const huge = await postRaw(s.server, JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(70 * 1024) }] }));
    expect(huge.status).toBe(413);
    expect((await errorBody(huge))).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });

    const wrongMethod = await fetch(`${s.server.url}/chat/completions`);
    expect(wrongMethod.status).toBe(405);
    const unknownPath = await fetch(`${s.server.url}/completions`, { method: 'POST', body: '{}' });
    expect(unknownPath.status).toBe(404);
    expect((await errorBody(unknownPath)).code).toBe('unknown_url');
  });

  test('/healthz, /v1/models and models.retrieve describe the served student', async () => {
    const health = await fetch(`${rootOf(s.server)}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', model: MODEL, family: 'encoder', cascade: false });
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    expect((await openai.models.retrieve(MODEL)).id).toBe(MODEL);
    await expect(openai.models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  test('the alias "student" names the served model, as the README\'s client asks; the answer carries the served name', async () => {
    const input = answerable[0];
    const answer = (await openai.chat.completions.create({ model: 'student', messages: [{ role: 'user', content: input }] })) as StudentChatCompletion;
    expect(answer.model).toBe(MODEL);
    const call = answer.choices[0].message.tool_calls![0];
    expect(call.type === 'function' && call.function.name).toBe(expected.get(input)!.call!.name);
    expect((await openai.models.retrieve('student')).id).toBe(MODEL);
    expect((await openai.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
  });

  test('a model id with malformed percent-encoding is a 404 model_not_found, not a 500', async () => {
    const response = await fetch(`${s.server.url}/models/%E0%A4%A`);
    expect(response.status).toBe(404);
    expect(await errorBody(response)).toMatchObject({ code: 'model_not_found', param: 'model' });
  });

  test('concurrent requests are micro-batched, and a batched answer is the single request\'s', async () => {
    const inputs = Array.from({ length: 24 }, (_, i) => answerable[i % answerable.length]);
    // A first wave opens the client's 24 keep-alive connections (one by one, a few ms each); the second
    // arrives at once, as steady traffic from a connection pool does.
    await Promise.all(inputs.map((input) => ask(openai, input)));
    const before = await (await fetch(`${rootOf(s.server)}/metrics`)).text();
    const answers = await Promise.all(inputs.map((input) => ask(openai, input)));
    answers.forEach((completion, i) => {
      const call = completion.choices[0].message.tool_calls![0];
      expect(call.type === 'function' && call.function.name).toBe(expected.get(inputs[i])!.call!.name);
    });
    const after = await (await fetch(`${rootOf(s.server)}/metrics`)).text();
    const batches = sample(after, 'supertiny_batch_size_count') - sample(before, 'supertiny_batch_size_count');
    const singles = sample(after, 'supertiny_batch_size_bucket{le="1"}') - sample(before, 'supertiny_batch_size_bucket{le="1"}');
    expect(sample(after, 'supertiny_batch_size_sum') - sample(before, 'supertiny_batch_size_sum')).toBe(24);
    expect(batches).toBeLessThan(24);
    expect(batches - singles).toBeGreaterThan(0); // at least one batch of more than one request
  });

  test('/metrics counts requests by status, latency and batch sizes in the Prometheus text format', async () => {
    await ask(openai, 'hello');
    await postRaw(s.server, 'not json');
    const response = await fetch(`${rootOf(s.server)}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('# TYPE supertiny_http_requests_total counter');
    expect(sample(text, 'supertiny_http_requests_total{route="/v1/chat/completions",status="200"}')).toBeGreaterThan(0);
    expect(sample(text, 'supertiny_http_requests_total{route="/v1/chat/completions",status="400"}')).toBeGreaterThan(0);
    expect(sample(text, 'supertiny_http_requests_total{route="/v1/chat/completions",status="413"}')).toBe(1);
    expect(text).toContain('# TYPE supertiny_chat_completion_duration_seconds histogram');
    const count = sample(text, 'supertiny_chat_completion_duration_seconds_count{answered_by="student"}');
    expect(count).toBeGreaterThan(0);
    expect(sample(text, 'supertiny_chat_completion_duration_seconds_bucket{answered_by="student",le="+Inf"}')).toBe(count);
    expect(sample(text, 'supertiny_chat_completion_duration_seconds_bucket{answered_by="student",le="10"}')).toBeLessThanOrEqual(count);
    expect(text).toContain('# TYPE supertiny_batch_size histogram');
    expect(text).toMatch(/^supertiny_requests_in_flight \d+$/m);
    // Every sample line is `name{labels} number`.
    for (const line of text.trim().split('\n').filter((l) => !l.startsWith('#'))) expect(line).toMatch(/^[a-z_]+(\{[^}]*\})? -?[\d.e+-]+$/);
  });
});

describe('a student in a worker thread', () => {
  test('answers as the student on the server thread does, behind the server too', async () => {
    const student = await ThreadedStudent.load({ folder, task: { name: 'massive', files: { data: env.massivePath } }, threads: 1 });
    // The thread loads MASSIVE itself (not this file's studentTask): compare with the same task in-process.
    const plain = await loadStudent(folder, { task: massive.task, threads: 1 });
    const wanted = await plain.predictBatch(UTTERANCES, { batchSize: 1 });
    await plain.release();
    try {
      expect(student.family).toBe('encoder');
      const predictions = await student.predictBatch(UTTERANCES);
      predictions.forEach((p, i) => {
        const want = wanted[i];
        expect({ call: p.call, errors: p.errors }).toEqual({ call: want.call, errors: want.errors });
        expect(p.confidence).toBeCloseTo(want.confidence, 6);
      });
      const server = await startStudentServer({ student, functionNames: massive.task.functionNames, modelName: MODEL });
      try {
        const answers = await Promise.all(answerable.map((input) => ask(client(server), input)));
        answers.forEach((a, i) => expect(a.supertiny.confidence).toBeCloseTo(wanted[UTTERANCES.indexOf(answerable[i])].confidence, 6));
      } finally {
        await server.close();
      }
    } finally {
      await student.release();
    }
    await expect(student.predictBatch(['hi'])).rejects.toThrow(/released/);
  });

  test('when the thread dies, waiting and later requests fail instead of hanging', async () => {
    const student = await ThreadedStudent.load({ folder, task: { name: 'massive', files: { data: env.massivePath } }, threads: 1 });
    const waiting = student.predictBatch(UTTERANCES);
    // As if the thread crashed (the worker is private: reached here only to kill it).
    await (student as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await expect(waiting).rejects.toThrow(/the student thread exited/);
    await expect(student.predictBatch(['hi'])).rejects.toThrow(/the student thread exited/);
    const server = await startStudentServer({ student, functionNames: massive.task.functionNames, modelName: MODEL });
    try {
      const health = await fetch(`${rootOf(server)}/healthz`);
      expect(health.status).toBe(503);
      // Why it died is in the server's log, not in an open endpoint's answer.
      expect(await health.json()).toEqual({ status: 'student_failed', model: MODEL, family: 'encoder', cascade: false });
    } finally {
      await server.close();
    }
    await student.release();
  });

  test('a folder that does not load fails the load with the runtime\'s message', async () => {
    await expect(ThreadedStudent.load({ folder: path.join(root, 'missing'), task: { name: 'massive', files: { data: env.massivePath } } })).rejects.toThrow(/student model folder not found/);
  });
});

describe('the bearer token', () => {
  test('a wrong or missing token is a 401 with an OpenAI error body; /healthz and /metrics need none', async () => {
    const s = await serve({ apiToken: 'sekrit-token' });
    try {
      const ok = await ask(client(s.server, 'sekrit-token'), 'hello');
      expect(ok.supertiny.answered_by).toBe('student');
      const wrong = await ask(client(s.server, 'wrong-token'), 'hello').catch((e) => e);
      expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
      expect(wrong).toMatchObject({ status: 401, code: 'invalid_api_key' });
      const missing = await postRaw(s.server, JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }));
      expect(missing.status).toBe(401);
      expect((await errorBody(missing)).code).toBe('invalid_api_key');
      expect((await fetch(`${rootOf(s.server)}/healthz`)).status).toBe(200);
      expect((await fetch(`${rootOf(s.server)}/metrics`)).status).toBe(200);
    } finally {
      await s.stop();
    }
  });
});

describe('the cascade to the teacher', () => {
  let teacher: FakeTeacher;
  beforeEach(async () => {
    teacher = await startFakeTeacher();
  });
  afterEach(async () => teacher.close());

  const cascadeTo = (threshold: number, limits: Pick<ConstructorParameters<typeof TeacherCascade>[0], 'maxRequestsPerSecond' | 'maxSpendUsd' | 'now'> = {}) =>
    new TeacherCascade({
      threshold,
      ...limits,
      teacherModel: teacher.model,
      teacher: new TeacherClient(massive.task, {
        baseURL: teacher.url,
        apiKey: 'sk-teacher',
        model: teacher.model,
        maxRetries: 0,
        temperature: 0,
        useN: false,
        prices: { inputPerMillionTokens: 1, outputPerMillionTokens: 2 },
      }),
    });

  test('sends requests below the threshold to the teacher and answers the others itself', async () => {
    const { low, high, threshold } = thresholdBetween();
    const s = await serve({ cascade: cascadeTo(threshold) });
    try {
      const openai = client(s.server);
      const unsure = await ask(openai, low);
      expect(unsure.supertiny).toMatchObject({ answered_by: 'teacher', cascade_threshold: threshold });
      expect(unsure.supertiny.confidence).toBeLessThan(threshold);
      expect(unsure.model).toBe(teacher.model);
      const call = unsure.choices[0].message.tool_calls![0];
      expect(call.type === 'function' && call.function.name).toBe(teacher.answered[0]);
      // The teacher ran the task's tool loop: route, then the final call; its tokens are the answer's usage.
      expect(teacher.requests.map((r) => r.input)).toEqual([low, low]);
      expect(teacher.requests[0].tools).toEqual(['route_scenario']);
      expect(unsure.usage).toMatchObject({ prompt_tokens: 200, completion_tokens: 20 });

      const sure = await ask(openai, high);
      expect(sure.supertiny).toMatchObject({ answered_by: 'student', cascade_threshold: threshold });
      expect(sure.model).toBe(MODEL);
      expect(teacher.requests).toHaveLength(2);

      const metrics = await (await fetch(`${rootOf(s.server)}/metrics`)).text();
      expect(sample(metrics, 'supertiny_teacher_requests_total')).toBe(1);
      expect(sample(metrics, 'supertiny_teacher_tokens_total{kind="prompt"}')).toBe(200);
      expect(sample(metrics, 'supertiny_teacher_tokens_total{kind="completion"}')).toBe(20);
      expect(sample(metrics, 'supertiny_teacher_cost_usd_total')).toBeCloseTo((200 * 1 + 20 * 2) / 1e6, 12);
      expect(sample(metrics, 'supertiny_chat_completion_duration_seconds_count{answered_by="teacher"}')).toBe(1);
    } finally {
      await s.stop();
    }
  });

  test('sends an input without a valid student call to the teacher whatever the threshold', async () => {
    const s = await serve({ cascade: cascadeTo(0) });
    try {
      const openai = client(s.server);
      const answer = await ask(openai, unanswerable[0]);
      expect(answer.supertiny).toMatchObject({ answered_by: 'teacher', confidence: 0, cascade_threshold: 0 });
      expect((await ask(openai, answerable[0])).supertiny.answered_by).toBe('student');
      expect(teacher.requests.map((r) => r.input)).toEqual([unanswerable[0], unanswerable[0]]);
    } finally {
      await s.stop();
    }
  });

  test("a failing teacher falls back to the student's call, flagged and counted", async () => {
    teacher.failWith = 500;
    const { low, threshold } = thresholdBetween();
    const s = await serve({ cascade: cascadeTo(threshold) });
    try {
      const answer = await ask(client(s.server), low);
      expect(answer.supertiny.answered_by).toBe('student');
      // The outcome kind only: the teacher's error text ("the fake teacher fails on purpose") stays in the log.
      expect(answer.supertiny.teacher_error).toBe('http_error:500');
      expect(JSON.stringify(answer)).not.toContain('on purpose');
      const call = answer.choices[0].message.tool_calls![0];
      expect(call.type === 'function' && call.function.name).toBe(expected.get(low)!.call!.name);
      expect(teacher.requests).toHaveLength(1);
      const metrics = await (await fetch(`${rootOf(s.server)}/metrics`)).text();
      expect(sample(metrics, 'supertiny_teacher_fallbacks_total{reason="http_error"}')).toBe(1);
    } finally {
      await s.stop();
    }
  });

  test('past the rate limit the student answers, with teacher_error "rate", counted; the bucket refills with time', async () => {
    let now = 0;
    const s = await serve({ cascade: cascadeTo(1, { maxRequestsPerSecond: 2, now: () => now }) });
    try {
      const openai = client(s.server);
      const input = answerable[0];
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push((await ask(openai, input)).supertiny);
      expect(answers.map((a) => a.answered_by)).toEqual(['teacher', 'teacher', 'student']);
      expect(answers[2].teacher_error).toBe('rate');
      now += 500; // half a second: one more request's worth
      expect((await ask(openai, input)).supertiny.answered_by).toBe('teacher');
      expect((await ask(openai, input)).supertiny).toMatchObject({ answered_by: 'student', teacher_error: 'rate' });
      const metrics = await (await fetch(`${rootOf(s.server)}/metrics`)).text();
      expect(sample(metrics, 'supertiny_teacher_limited_total{limit="rate"}')).toBe(2);
      expect(sample(metrics, 'supertiny_teacher_requests_total')).toBe(3);
      expect(teacher.requests).toHaveLength(6); // routing + final call per teacher answer
    } finally {
      await s.stop();
    }
  });

  test('once the spend cap is reached the teacher is not asked again: teacher_error "budget", counted', async () => {
    // One teacher answer (route + final call: 200 prompt and 20 completion tokens) costs 0.00024 USD here.
    const s = await serve({ cascade: cascadeTo(1, { maxSpendUsd: 0.0004 }) });
    try {
      const openai = client(s.server);
      const input = answerable[0];
      const seen = [];
      for (let i = 0; i < 4; i++) seen.push((await ask(openai, input)).supertiny);
      expect(seen.map((a) => a.answered_by)).toEqual(['teacher', 'teacher', 'student', 'student']);
      expect(seen.slice(2).map((a) => a.teacher_error)).toEqual(['budget', 'budget']);
      const metrics = await (await fetch(`${rootOf(s.server)}/metrics`)).text();
      expect(sample(metrics, 'supertiny_teacher_limited_total{limit="budget"}')).toBe(2);
      expect(sample(metrics, 'supertiny_teacher_cost_usd_total')).toBeCloseTo(0.00048, 10);
      expect(teacher.requests).toHaveLength(4);
    } finally {
      await s.stop();
    }
  });
});

describe('supertiny serve (the CLI)', () => {
  test('refuses a half-configured cascade and an unknown teacher endpoint before serving', async () => {
    await expect(startServe(['--model', folder, '--teacher-endpoint', 'simulator'], env)).rejects.toThrow(/needs both --cascade-threshold and --teacher-endpoint/);
    await expect(startServe(['--model', folder, '--cascade-threshold', '1.5', '--teacher-endpoint', 'simulator'], env)).rejects.toThrow(/--cascade-threshold must be/);
    await expect(startServe(['--model', folder, '--bogus'], env)).rejects.toThrow(/Unknown option '--bogus'/);
    await expect(startServe(['--model', folder, '--cascade-threshold', '0.5', '--teacher-endpoint', 'nope'], env)).rejects.toThrow(
      /no endpoint "nope" here; there are "simulator"/,
    );
  });

  test('the built-in "simulator" endpoint starts the teacher simulator and answers as teacher-simulator', async () => {
    const serving = await startServe(['--model', folder, '--model-name', MODEL, '--port', '0', '--cascade-threshold', '1', '--teacher-endpoint', 'simulator'], {
      ...env,
      simulatorUrl: undefined,
    });
    try {
      const openai = new OpenAI({ baseURL: serving.url, apiKey: 'unused', maxRetries: 0 });
      // A MASSIVE utterance, so that the simulator answers from its gold call rather than refusing.
      const example = massive.examples.find((e) => e.split === 'dev' && e.intent === 'alarm_set')!;
      const answer = await ask(openai, example.utterance);
      expect(answer.supertiny).toMatchObject({ answered_by: 'teacher', cascade_threshold: 1 });
      expect(answer.model).toBe('teacher-simulator');
      expect(answer.usage!.prompt_tokens).toBeGreaterThan(0);
    } finally {
      await serving.close();
    }
  });

  test('serves a folder with a named teacher endpoint and its key, and finishes in-flight requests on SIGTERM', async () => {
    const teacher = await startFakeTeacher('big-model');
    teacher.delayMs = 300;
    const endpointsFile = path.join(root, 'endpoints.yaml');
    await fs.writeFile(endpointsFile, `endpoints:\n  - name: fake\n    baseURL: ${teacher.url}\n    apiKeyEnv: FAKE_TEACHER_KEY\n    models: [big-model]\n`);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(env.projectRoot, 'cli', 'main.ts'), 'serve', '--model', folder, '--model-name', MODEL, '--port', '0', '--cascade-threshold', '1', '--teacher-endpoint', 'fake', '--teacher-retries', '0'],
      {
        cwd: env.projectRoot,
        env: { ...process.env, SUPERTINY_TEACHER_ENDPOINTS: endpointsFile, FAKE_TEACHER_KEY: 'sk-fake-key', SUPERTINY_SERVE_TOKEN: 'serve-token' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          const match = /serving at (http:\S+)/.exec(output);
          if (match) resolve(match[1]);
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        void exited.then((code) => reject(new Error(`serve exited (${code}) before serving:\n${output}`)));
      });
      const openai = new OpenAI({ baseURL: url, apiKey: 'serve-token', maxRetries: 0 });
      // Every fixture confidence is below 1, so this request goes to the (slow) teacher.
      const input = answerable[0];
      expect(expected.get(input)!.confidence).toBeLessThan(1);
      const pending = ask(openai, input);
      const seen = await teacher.nextRequest();
      expect(seen.authorization).toBe('Bearer sk-fake-key');
      child.kill('SIGTERM');
      const answer = await pending;
      expect(answer.supertiny.answered_by).toBe('teacher');
      // The student (in the CLI's worker thread) ran first: its confidence is the in-process one.
      expect(answer.supertiny.confidence).toBeCloseTo(expected.get(input)!.confidence, 6);
      expect(answer.model).toBe('big-model');
      expect(await exited).toBe(0);
      await expect(fetch(`${url.replace(/\/v1$/, '')}/healthz`)).rejects.toThrow();
      expect(output).toMatch(/SIGTERM: finishing in-flight requests/);
      expect(output).not.toContain('sk-fake-key');
    } finally {
      child.kill('SIGKILL');
      await teacher.close();
    }
  }, 60_000);
});
