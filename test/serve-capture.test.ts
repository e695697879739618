// `supertiny serve --capture DIR`: a real student server (the tiny ONNX encoder fixture) called through the real
// `openai` client writes one line per answered request; files rotate by size and by UTC day, retention deletes
// old ones, and a capture folder that stops being writable never fails a request.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { TeacherClient } from '../runtime/teacher/teacher-client';
import { startServe } from '../cli/serve';
import { readEnv } from '../config/env';
import { type CaptureLine, CaptureLineSchema, CaptureWriter, captureFileName, type RunningStudentServer, startStudentServer, TeacherCascade } from '../runtime/serve';
import { loadStudent, type StudentRuntime } from '../runtime/student';
import { callArgumentsObject } from '../tasks/call-format';
import { startFakeTeacher } from './support/fake-teacher';
import { ask, client, loadServeBed, metricsOf, MODEL, sample, type ServeBed } from './support/serve-bed';

const env = readEnv();
const TOKEN = 'capture-test-token-0123456789abcdef';

let bed: ServeBed;
let dirs = 0;

beforeAll(async () => {
  bed = await loadServeBed('serve-capture-');
}, 120_000);

afterAll(async () => bed?.remove());

const captureDir = () => path.join(bed.root, `capture-${++dirs}`);

async function serveWithCapture(
  capture: CaptureWriter,
  options: Partial<Parameters<typeof startStudentServer>[0]> = {},
): Promise<{ server: RunningStudentServer; student: StudentRuntime; stop(): Promise<void> }> {
  const student = await loadStudent(bed.folder, { task: bed.studentTask, threads: 1 });
  const server = await startStudentServer({ student, functionNames: bed.massive.task.functionNames, modelName: MODEL, apiToken: TOKEN, capture, ...options });
  return { server, student, stop: async () => (await server.close(), await capture.close(), await student.release()) };
}

async function captureFiles(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((name) => name.startsWith('capture-')).sort();
}

/** Every line of every capture file in `dir`, checked against the line schema. */
async function capturedLines(dir: string): Promise<CaptureLine[]> {
  const lines: CaptureLine[] = [];
  for (const name of await captureFiles(dir)) {
    const text = await fs.readFile(path.join(dir, name), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    for (const line of text.trimEnd().split('\n')) lines.push(CaptureLineSchema.parse(JSON.parse(line)));
  }
  return lines;
}

const today = () => new Date().toISOString().slice(0, 10).replace(/-/g, '');

describe('serve --capture', () => {
  test("records one line per answered request: input, the student's call and confidence, model and version; never the token", async () => {
    const dir = captureDir();
    const capture = await CaptureWriter.open({ dir });
    const s = await serveWithCapture(capture, { modelVersion: 'v-20260101-abc' });
    const openai = client(s.server, TOKEN);
    const [first, second] = bed.answerable;
    const answers = [await ask(openai, first), await ask(openai, second)];
    // A request the student has no valid call for is answered too (422), and recorded as answered by none.
    await expect(ask(openai, bed.unanswerable[0])).rejects.toMatchObject({ status: 422 });
    await s.stop();

    const lines = await capturedLines(dir);
    expect(lines.map((l) => l.input)).toEqual([first, second, bed.unanswerable[0]]);
    for (const [i, input] of [first, second].entries()) {
      const want = bed.expected.get(input)!;
      const line = lines[i];
      expect(line).toMatchObject({ model: MODEL, model_version: 'v-20260101-abc', cascaded: false, answered_by: 'student' });
      expect(line.student_call).toEqual({ name: want.call!.name, arguments: callArgumentsObject(want.call!) });
      expect(line.student_confidence).toBeCloseTo(want.confidence, 6);
      expect(line.id).toMatch(/^req_[0-9a-f]{32}$/);
      expect(Date.parse(line.time)).toBeGreaterThan(Date.now() - 60_000);
      expect(line.teacher_call).toBeUndefined();
      expect(answers[i].supertiny.answered_by).toBe('student');
    }
    expect(lines[2]).toMatchObject({ student_call: null, answered_by: 'none', cascaded: false });
    expect(new Set(lines.map((l) => l.id)).size).toBe(3);
    const text = (await Promise.all((await captureFiles(dir)).map((n) => fs.readFile(path.join(dir, n), 'utf8')))).join('');
    expect(text).not.toContain(TOKEN);
    expect(text.toLowerCase()).not.toContain('authorization');
    expect(text.toLowerCase()).not.toContain('bearer');
    expect(await captureFiles(dir)).toEqual([captureFileName(today(), 0)]);
  });

  test("with the cascade (the CLI and the real teacher simulator): the teacher's call is recorded beside the student's", async () => {
    const dir = captureDir();
    const serving = await startServe(
      ['--model', bed.folder, '--model-name', MODEL, '--port', '0', '--cascade-threshold', '1', '--teacher-endpoint', 'simulator', '--capture', dir],
      { ...env, simulatorUrl: undefined, serveToken: TOKEN },
    );
    const example = bed.massive.examples.find((e) => e.split === 'dev' && e.intent === 'alarm_set')!;
    let answer;
    try {
      answer = await ask(client(serving, TOKEN), example.utterance);
    } finally {
      // Closing serve flushes the capture.
      await serving.close();
    }
    expect(answer.supertiny.answered_by).toBe('teacher');
    const [line] = await capturedLines(dir);
    const call = answer.choices[0].message.tool_calls![0];
    if (call.type !== 'function') throw new Error('not a function call');
    expect(line).toMatchObject({
      input: example.utterance,
      cascaded: true,
      answered_by: 'teacher',
      teacher_model: 'teacher-simulator',
      teacher_call: { name: call.function.name, arguments: JSON.parse(call.function.arguments) },
      // The CLI's version is the student folder's name (a deployment names its version folders by id).
      model_version: path.basename(bed.folder),
    });
    expect(line.student_confidence).toBeCloseTo(answer.supertiny.confidence, 6);
    expect(line.teacher_error).toBeUndefined();
    expect(JSON.stringify(line)).not.toContain(TOKEN);
  });

  test('a teacher that fails is recorded as teacher_error, with no teacher call', async () => {
    const teacher = await startFakeTeacher();
    teacher.failWith = 500;
    const dir = captureDir();
    const cascade = new TeacherCascade({
      threshold: 1,
      teacherModel: teacher.model,
      teacher: new TeacherClient(bed.massive.task, { baseURL: teacher.url, apiKey: 'sk-teacher-secret', model: teacher.model, maxRetries: 0, temperature: 0, useN: false }),
    });
    const s = await serveWithCapture(await CaptureWriter.open({ dir }), { cascade });
    try {
      await ask(client(s.server, TOKEN), bed.answerable[0]);
    } finally {
      await s.stop();
      await teacher.close();
    }
    const [line] = await capturedLines(dir);
    expect(line).toMatchObject({ cascaded: true, answered_by: 'student', teacher_error: 'http_error:500', teacher_model: teacher.model });
    expect(line.teacher_call).toBeUndefined();
    expect(JSON.stringify(line)).not.toContain('sk-teacher-secret');
  });

  test('files rotate before a line would pass the size limit, and at each UTC day', async () => {
    const dir = captureDir();
    let clock = new Date('2026-03-01T23:59:00Z');
    const capture = await CaptureWriter.open({ dir, maxFileBytes: 1024, now: () => clock });
    const s = await serveWithCapture(capture);
    const openai = client(s.server, TOKEN);
    try {
      for (const input of bed.answerable) await ask(openai, input);
      await capture.flush();
      const day1 = await captureFiles(dir);
      expect(day1.length).toBeGreaterThan(1);
      expect(day1).toEqual(day1.map((_, i) => captureFileName('20260301', i)));
      for (const name of day1) expect((await fs.stat(path.join(dir, name))).size).toBeLessThanOrEqual(1024);

      clock = new Date('2026-03-02T00:00:01Z');
      await ask(openai, bed.answerable[0]);
      await capture.flush();
      expect(await captureFiles(dir)).toEqual([...day1, captureFileName('20260302', 0)]);
    } finally {
      await s.stop();
    }
    const lines = await capturedLines(dir);
    expect(lines.map((l) => l.input)).toEqual([...bed.answerable, bed.answerable[0]]);
    expect(lines.at(-1)!.time).toBe('2026-03-02T00:00:01.000Z');
  });

  test('retention deletes capture files older than the setting, and nothing else in the folder', async () => {
    const dir = captureDir();
    await fs.mkdir(dir);
    const keep = [captureFileName('20260220', 0), 'notes.txt', 'capture-20200101-000.jsonl.bak'];
    const expired = [captureFileName('20260101', 0), captureFileName('20260101', 1), captureFileName('20260129', 0)];
    for (const name of [...keep, ...expired]) await fs.writeFile(path.join(dir, name), '{}\n');
    let clock = new Date('2026-03-01T12:00:00Z');
    const capture = await CaptureWriter.open({ dir, retentionDays: 30, now: () => clock });
    // 2026-01-30 is the oldest day kept.
    expect((await fs.readdir(dir)).sort()).toEqual([...keep].sort());
    // A day later, the first line of the new day applies retention again.
    await fs.writeFile(path.join(dir, captureFileName('20260130', 0)), '{}\n');
    clock = new Date('2026-03-02T00:00:10Z');
    expect(await capture.deleteExpired()).toEqual([captureFileName('20260130', 0)]);
    await capture.close();
    expect((await fs.readdir(dir)).sort()).toEqual([...keep].sort());
  });

  test('a capture folder that becomes unwritable fails no request: the failures are counted, and capture resumes when it is back', async () => {
    const dir = captureDir();
    const capture = await CaptureWriter.open({ dir });
    const s = await serveWithCapture(capture);
    const openai = client(s.server, TOKEN);
    try {
      await ask(openai, bed.answerable[0]);
      await capture.flush();
      // The folder is replaced by a file: every append and every look into the folder fails (root ignores chmod).
      await fs.rm(dir, { recursive: true });
      await fs.writeFile(dir, 'not a folder');
      for (const input of bed.answerable.slice(0, 3)) expect((await ask(openai, input)).supertiny.answered_by).toBe('student');
      await capture.flush();
      let metrics = await metricsOf(s.server);
      expect(sample(metrics, 'supertiny_capture_errors_total{operation="write"}')).toBeGreaterThanOrEqual(1);
      expect(sample(metrics, 'supertiny_capture_dropped_total{reason="write_error"}')).toBe(3);
      expect(sample(metrics, 'supertiny_capture_lines_total')).toBe(1);

      await fs.rm(dir);
      await fs.mkdir(dir);
      await ask(openai, bed.answerable[1]);
      await capture.flush();
      metrics = await metricsOf(s.server);
      expect(sample(metrics, 'supertiny_capture_lines_total')).toBe(2);
      expect((await capturedLines(dir)).map((l) => l.input)).toEqual([bed.answerable[1]]);
    } finally {
      await s.stop();
    }
  });

  test('the capture flags need --capture, and an unwritable capture folder fails the start', async () => {
    await expect(startServe(['--model', bed.folder, '--capture-max-bytes', '4096'], env)).rejects.toThrow(/--capture-max-bytes needs --capture DIR/);
    await expect(startServe(['--model', bed.folder, '--capture', captureDir(), '--capture-retention-days', '0'], env)).rejects.toThrow(/--capture-retention-days must be/);
    const file = path.join(bed.root, 'a-file');
    await fs.writeFile(file, '');
    await expect(CaptureWriter.open({ dir: file })).rejects.toThrow(/cannot write there/);
  });
});
