// The student server's test bed: a tiny random-weight encoder student (test/fixtures/make-encoder-fixture.py
// --massive-names) in a temp folder, the reference answers of the runtime for a few utterances, and helpers
// to call a running server through the real `openai` client or raw fetch.
import type { StudentTask } from '../../runtime/student';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { readEnv } from '../../config/env';
import type { RunningStudentServer, StudentChatCompletion } from '../../runtime/serve';
import { loadStudent, type RuntimePrediction } from '../../runtime/student';
import { loadMassiveTask, type MassiveTask } from '../../tasks/massive';

const run = promisify(execFile);
const env = readEnv();

export const MODEL = 'tiny-student';
export const UTTERANCES = [
  'wake me up at five am tomorrow',
  'play some music by the beatles',
  "what's the weather in london today",
  'hello',
  'set an alarm for seven thirty pm on monday',
  'please play yesterday',
  'weather in paris',
  'hi',
];

export interface ServeBed {
  root: string;
  /** The student folder, named MODEL. */
  folder: string;
  massive: MassiveTask;
  /**
   * MASSIVE, refusing calls without arguments: the encoder's answers are schema-valid by construction, so this
   * stands in for a student that has no valid call for some inputs (the 422 and the cascade's fallback).
   */
  studentTask: StudentTask;
  /** The runtime's own answer (loaded with studentTask) per utterance. */
  expected: Map<string, RuntimePrediction>;
  /** The utterances the student answers with a valid call, and those it has none for. */
  answerable: string[];
  unanswerable: string[];
  remove(): Promise<void>;
}

export async function loadServeBed(prefix = 'serve-test-'): Promise<ServeBed> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  const folder = path.join(root, MODEL);
  const fixture = path.join(env.projectRoot, 'test', 'fixtures', 'make-encoder-fixture.py');
  const [massive] = await Promise.all([loadMassiveTask({ massivePath: env.massivePath }), run(env.python, [fixture, folder, '--massive-names'], { cwd: env.projectRoot })]);
  const studentTask: StudentTask = {
    functions: massive.task.functions,
    validateCall: (call: Parameters<MassiveTask['task']['validateCall']>[0]) =>
      call.args.length > 0 ? massive.task.validateCall(call) : { ok: false as const, kind: 'invalid_arguments' as const, errors: [`"${call.name}" was called without arguments (refused by this test's task)`] },
  };
  const reference = await loadStudent(folder, { task: studentTask, threads: 1 });
  const expected = new Map<string, RuntimePrediction>();
  try {
    for (const input of UTTERANCES) expected.set(input, await reference.predict(input));
  } finally {
    await reference.release();
  }
  return {
    root,
    folder,
    massive,
    studentTask,
    expected,
    answerable: UTTERANCES.filter((u) => expected.get(u)!.call),
    unanswerable: UTTERANCES.filter((u) => !expected.get(u)!.call),
    remove: () => fs.rm(root, { recursive: true, force: true }),
  };
}

export const client = (server: RunningStudentServer | { url: string }, apiKey = 'sk-unused') => new OpenAI({ baseURL: server.url, apiKey, maxRetries: 0 });
export const ask = async (openai: OpenAI, content: string, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
  (await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }], ...extra })) as StudentChatCompletion;
export const errorBody = async (response: Response) => ((await response.json()) as { error: Record<string, unknown> }).error;
export const rootOf = (server: RunningStudentServer | { url: string }) => server.url.replace(/\/v1$/, '');
export const postRaw = (server: RunningStudentServer | { url: string }, body: string, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
export const chatBody = (content: string, model = MODEL) => JSON.stringify({ model, messages: [{ role: 'user', content }] });

/** The value of one sample line of a Prometheus text body (0 when absent). */
export function sample(metrics: string, line: string): number {
  const found = metrics.split('\n').find((l) => l.startsWith(line + ' '));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

/** The server's /metrics text. */
export const metricsOf = async (server: RunningStudentServer | { url: string }) => (await fetch(`${rootOf(server)}/metrics`)).text();
