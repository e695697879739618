// `supertiny import-openai`: OpenAI chat-format JSONL (written here from the `openai` package's own types) and
// capture files become a task from files that the from-files loader reads: functions, inputs, gold and a
// split that a re-import keeps. Bad lines are refused with the file, the line and the field.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ChatCompletionMessageFunctionToolCall, ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { readEnv } from '../config/env';
import { CaptureWriter, type CaptureRecord } from '../runtime/serve';
import { callArgumentsObject } from '../tasks/call-format';
import { loadTaskFromFiles, type FileExample } from '../tasks/from-files';
import { DATA_FILE, FUNCTIONS_FILE, importOpenAI, splitOf, type ImportOptions } from '../tasks/from-files/import-openai';

const run = promisify(execFile);
const env = readEnv();

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'import-openai-'));
});
afterAll(async () => fs.rm(root, { recursive: true, force: true }));

let folders = 0;
const folder = () => path.join(root, `case-${++folders}`);

const SET_ALARM: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'set_alarm',
    description: 'Sets an alarm.',
    parameters: { type: 'object', properties: { time: { type: 'string' }, repeat: { type: 'boolean' } }, required: ['time'], additionalProperties: false },
    strict: true,
  },
};
const PLAY_MUSIC: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'play_music',
    description: 'Plays music.',
    parameters: { type: 'object', properties: { artist: { type: 'string' }, volume: { type: 'integer', minimum: 0, maximum: 10 } }, required: ['artist'] },
  },
};
const TOOLS: ChatCompletionTool[] = [SET_ALARM, PLAY_MUSIC];
const SYSTEM = 'You are a smart speaker. Answer with one function call.';

let calls = 0;
const toolCall = (name: string, args: Record<string, unknown>): ChatCompletionMessageFunctionToolCall => ({
  id: `call_${++calls}`,
  type: 'function',
  function: { name, arguments: JSON.stringify(args) },
});

interface ChatLine {
  messages: ChatCompletionMessageParam[];
  tools?: ChatCompletionTool[];
}

/** A fine-tuning line: system, user, and (when labelled) the assistant's tool call. */
function chatLine(input: string, gold?: { name: string; args: Record<string, unknown> }, tools: ChatCompletionTool[] = TOOLS): ChatLine {
  const messages: ChatCompletionMessageParam[] = [
    { role: 'system', content: SYSTEM },
    { role: 'user', content: input },
  ];
  if (gold) messages.push({ role: 'assistant', content: null, tool_calls: [toolCall(gold.name, gold.args)] });
  return { messages, tools };
}

/** 60 labelled inputs over both functions, typed arguments included. */
const LABELLED = Array.from({ length: 60 }, (_, i) =>
  i % 2 === 0
    ? { input: `wake me up at ${i} past seven`, gold: { name: 'set_alarm', args: i % 4 === 0 ? { time: `${i} past seven`, repeat: true } : { time: `${i} past seven` } } }
    : { input: `play song number ${i} by the beatles`, gold: { name: 'play_music', args: { artist: 'the beatles', volume: i % 11 } } },
);
const UNLABELLED = ['what is the weather like', 'tell me a joke', 'how tall is the eiffel tower'];

async function writeJsonl(file: string, lines: unknown[]): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

async function importInto(lines: unknown[], options: Partial<ImportOptions> = {}, name = 'calls.jsonl') {
  const dir = folder();
  const file = await writeJsonl(path.join(dir, name), lines);
  const out = path.join(dir, 'task');
  const summary = await importOpenAI({ inputs: [file], out, ...options });
  return { dir, out, summary };
}

async function loadImported(out: string) {
  const task = await loadTaskFromFiles({ functions: path.join(out, FUNCTIONS_FILE), data: path.join(out, DATA_FILE) });
  const examples = (await task.dataset.loadAll!()) as FileExample[];
  return { task, examples, byInput: new Map(examples.map((e) => [e.input, e])) };
}

const stringForm = (args: Record<string, unknown>) => Object.fromEntries(Object.entries(args).map(([k, v]) => [k, String(v)]));

describe('import-openai', () => {
  test("round-trips a file written from the openai package's types into a task the from-files loader reads", async () => {
    const multiTurn: ChatLine = {
      messages: [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: 'play something' },
        { role: 'assistant', content: 'Which artist?' },
        { role: 'user', content: [{ type: 'text', text: 'play anything by queen' }] },
        { role: 'assistant', content: null, tool_calls: [toolCall('play_music', { artist: 'queen' }), toolCall('set_alarm', { time: 'noon' })] },
      ],
      tools: TOOLS,
    };
    const lines = [
      ...LABELLED.map((l) => chatLine(l.input, l.gold)),
      ...UNLABELLED.map((input) => chatLine(input)),
      multiTurn,
      chatLine(LABELLED[0].input, LABELLED[0].gold), // a duplicate input, kept once
    ];
    const { out, summary } = await importInto(lines);
    expect(summary).toMatchObject({ linesRead: 65, chatLines: 65, captureLines: 0, labelled: 61, unlabelled: 3, duplicates: 1, conflictingDuplicates: 0, systemPromptFrom: 'calls.jsonl:1' });
    expect(summary.functions).toEqual(['set_alarm', 'play_music']);
    expect(summary.examples.train + summary.examples.dev + summary.examples.test).toBe(64);
    for (const split of ['dev', 'test'] as const) expect(summary.examples[split]).toBeGreaterThan(0);

    const { task, examples, byInput } = await loadImported(out);
    expect(task.functionNames).toEqual(['set_alarm', 'play_music']);
    expect(task.systemPrompt).toBe(SYSTEM);
    const functions = JSON.parse(await fs.readFile(path.join(out, FUNCTIONS_FILE), 'utf8'));
    expect(functions.tools).toEqual(TOOLS);
    expect(examples).toHaveLength(64);
    for (const { input, gold } of LABELLED) {
      const example = byInput.get(input)!;
      // The loader keeps gold in the string form: 5 is "5", true is "true".
      expect({ name: example.gold!.name, args: callArgumentsObject(example.gold!) }).toEqual({ name: gold.name, args: stringForm(gold.args) });
      expect(example.split).toBe(splitOf(input));
    }
    for (const input of UNLABELLED) expect(byInput.get(input)).toEqual({ id: expect.any(String), split: 'train', input });
    // The last user message is the input; the first tool call of the answer is the gold.
    const queen = byInput.get('play anything by queen')!;
    expect({ name: queen.gold!.name, args: callArgumentsObject(queen.gold!) }).toEqual({ name: 'play_music', args: { artist: 'queen' } });
    expect(byInput.has('play something')).toBe(false);
    expect(new Set(examples.map((e) => e.id)).size).toBe(64);
  });

  test('refuses a bad line with the file, the line and the field', async () => {
    const good = chatLine(LABELLED[0].input, LABELLED[0].gold);
    const badArguments = chatLine('wake me at six', { name: 'set_alarm', args: {} });
    (badArguments.messages[2] as { tool_calls: ChatCompletionMessageFunctionToolCall[] }).tool_calls[0].function.arguments = '{"time": six}';
    const cases: [unknown, RegExp][] = [
      ['{not json', /^calls\.jsonl:2: not valid JSON$/],
      [badArguments, /^calls\.jsonl:2: messages\[2\]\.tool_calls\[0\]\.function\.arguments is not JSON$/],
      [chatLine('play it louder', { name: 'play_music', args: { artist: 'abba', volume: 11 } }), /^calls\.jsonl:2: messages\[2\]\.tool_calls\[0\]\.function\.arguments: argument "volume" must be <= 10 \(function "play_music"\)$/],
      [chatLine('play abba', { name: 'play_music', args: { artist: 'abba' } }, [SET_ALARM]), /^calls\.jsonl:2: messages\[2\]\.tool_calls\[0\]\.function\.name: "play_music" is not a function of the line's tools$/],
      [{ messages: [{ role: 'system', content: SYSTEM }], tools: TOOLS }, /^calls\.jsonl:2: messages: no user message/],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }], tools: TOOLS }, /^calls\.jsonl:2: messages\[0\]\.content\[0\]: only text parts can be an input, not "image_url"$/],
      [{ messages: [{ role: 'robot', content: 'hi' }], tools: TOOLS }, /^calls\.jsonl:2: messages\[0\]\.role: /],
      [{ messages: [{ role: 'user', content: 'x'.repeat(5000) }], tools: TOOLS }, /^calls\.jsonl:2: messages\[0\]\.content: longer than 4096 bytes/],
      [chatLine('hi', undefined, [{ type: 'custom', custom: { name: 'grammar' } }]), /^calls\.jsonl:2: tools\[0\]\.type: only function tools can be a task's functions, not "custom"$/],
      [
        chatLine('hi', undefined, [{ type: 'function', function: { name: 'tag', parameters: { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' } } } } } }]),
        /^calls\.jsonl:2: tools\[0\]\.function\.parameters\.properties\.tags\.type: /,
      ],
      [{ messages: [{ role: 'user', content: 'hi' }], functions: [{ name: 'f' }] }, /^calls\.jsonl:2: functions: the legacy functions format is not supported/],
    ];
    for (const [bad, message] of cases) {
      const failure = await importInto([good, bad]).catch((err: Error) => err);
      expect(failure).toBeInstanceOf(Error);
      expect((failure as Error).message).toMatch(message);
    }
  });

  test('merges tools that differ between lines when compatible, and refuses one function with two schemas naming both lines', async () => {
    const lines = LABELLED.map((l) => chatLine(l.input, l.gold, l.gold.name === 'set_alarm' ? [SET_ALARM] : [PLAY_MUSIC]));
    const { out, summary } = await importInto(lines);
    expect(summary.functions).toEqual(['set_alarm', 'play_music']);
    expect((await loadImported(out)).task.functionNames).toEqual(['set_alarm', 'play_music']);

    const otherAlarm: ChatCompletionTool = {
      type: 'function',
      function: { name: 'set_alarm', parameters: { type: 'object', properties: { time: { type: 'string' }, label: { type: 'string' } }, required: ['time'] } },
    };
    const failure = await importInto([chatLine('wake me', undefined, [PLAY_MUSIC, SET_ALARM]), chatLine('play abba'), chatLine('wake me at six', undefined, [otherAlarm])]).catch((e: Error) => e);
    expect((failure as Error).message).toBe(
      'calls.jsonl:3: tools[0].function.parameters: function "set_alarm" has other parameters than on calls.jsonl:1; the two cannot be merged',
    );
  });

  test("imports a capture file of serve --capture: the teacher's call is gold, the student's own call never is", async () => {
    const dir = folder();
    const functionsFile = path.join(dir, 'served-functions.json');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(functionsFile, JSON.stringify({ name: 'speaker', systemPrompt: SYSTEM, tools: TOOLS }));
    const captureDir = path.join(dir, 'capture');
    const writer = await CaptureWriter.open({ dir: captureDir });
    const base = { model: 'tiny-student', model_version: 'v1', student_confidence: 0.4, cascaded: true, teacher_model: 'teacher-simulator' };
    let id = 0;
    const record = (r: Partial<CaptureRecord> & Pick<CaptureRecord, 'input' | 'answered_by'>) => writer.record({ ...base, id: `req_${++id}`, student_call: null, ...r });
    for (const { input, gold } of LABELLED) {
      // The server records calls as it answers them: every argument in the string form.
      record({ input, teacher_call: { name: gold.name, arguments: stringForm(gold.args) }, student_call: { name: 'set_alarm', arguments: { time: 'wrong' } }, answered_by: 'teacher' });
    }
    record({ input: 'play the radio', student_call: { name: 'play_music', arguments: { artist: 'the radio' } }, student_confidence: 0.99, cascaded: false, answered_by: 'student' });
    record({ input: 'wake me whenever', cascaded: true, teacher_error: 'http_error:500', answered_by: 'none' });
    await writer.close();
    const files = (await fs.readdir(captureDir)).map((name) => path.join(captureDir, name));
    expect(files).toHaveLength(1);

    const refused = await importOpenAI({ inputs: files, out: path.join(dir, 'no-functions') }).catch((e: Error) => e);
    expect((refused as Error).message).toMatch(/capture lines carry none; pass --functions FILE/);

    const out = path.join(dir, 'task');
    const summary = await importOpenAI({ inputs: files, out, functions: functionsFile });
    expect(summary).toMatchObject({ linesRead: 62, chatLines: 0, captureLines: 62, labelled: 60, unlabelled: 2, systemPromptFrom: '--functions' });
    const { byInput } = await loadImported(out);
    for (const { input, gold } of LABELLED) {
      const example = byInput.get(input)!;
      expect({ name: example.gold!.name, args: callArgumentsObject(example.gold!) }).toEqual({ name: gold.name, args: stringForm(gold.args) });
    }
    for (const input of ['play the radio', 'wake me whenever']) expect(byInput.get(input)).toEqual({ id: expect.any(String), split: 'train', input });
    // The typed form went to the data file: volume is an integer there, as its schema says.
    const row = (await fs.readFile(path.join(out, DATA_FILE), 'utf8')).split('\n').map((l) => l && JSON.parse(l)).find((r) => r && r.input === LABELLED[1].input);
    expect(row.gold.arguments.volume).toBe(LABELLED[1].gold.args.volume);
  });

  test('a re-import keeps every split, whatever the order and the other lines', async () => {
    const first = await importInto(LABELLED.map((l) => chatLine(l.input, l.gold)));
    const more = Array.from({ length: 20 }, (_, i) => ({ input: `set an alarm for ${i} in the morning`, gold: { name: 'set_alarm', args: { time: `${i} in the morning` } } }));
    const second = await importInto([...more, ...LABELLED].reverse().map((l) => chatLine(l.input, l.gold)));
    const a = await loadImported(first.out);
    const b = await loadImported(second.out);
    for (const example of a.examples) expect(b.byInput.get(example.input)).toMatchObject({ id: example.id, split: example.split });
    // The same lines give the same files, byte for byte.
    const again = await importInto(LABELLED.map((l) => chatLine(l.input, l.gold)));
    expect(await fs.readFile(path.join(again.out, DATA_FILE), 'utf8')).toBe(await fs.readFile(path.join(first.out, DATA_FILE), 'utf8'));
    // Roughly 80/10/10.
    const counts = { train: 0, dev: 0, test: 0 };
    for (let i = 0; i < 2000; i++) counts[splitOf(`utterance ${i}`)]++;
    expect(counts.train / 2000).toBeCloseTo(0.8, 1);
    expect(counts.dev / 2000).toBeCloseTo(0.1, 1);
  });

  test('the CLI prints a summary, and --help its usage', async () => {
    const dir = folder();
    const file = await writeJsonl(path.join(dir, 'calls.jsonl'), [...LABELLED.map((l) => chatLine(l.input, l.gold)), chatLine(UNLABELLED[0])]);
    const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', path.join(env.projectRoot, 'cli', 'main.ts'), 'import-openai', ...args], { cwd: env.projectRoot });
    const { stdout } = await cli([file, '--out', path.join(dir, 'task')]);
    expect(stdout).toMatch(/^read 61 lines \(61 chat, 0 capture\)$/m);
    expect(stdout).toMatch(/^wrote 61 examples: train \d+, dev \d+, test \d+; 60 labelled, 1 unlabelled$/m);
    expect(stdout).toMatch(/^functions \(2\): set_alarm, play_music$/m);
    expect((await cli(['--help'])).stdout).toMatch(/^usage: supertiny import-openai FILE/);
    const failed = await cli([file]).catch((e: { stderr: string; code: number }) => e);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toMatch(/--out DIR is required/);
  }, 60_000);
});
