// A task from files: a functions file (system prompt + OpenAI tool definitions) and a JSONL data file become
// a task with no TypeScript; every kind of bad input is refused with the file, line and field, never the content.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTaskResources } from '../activities/task-resources';
import { checkConfigOnWorker } from '../activities/config-check';
import { createPrototypeActivities } from '../activities/prototype/stage-activities';
import type { ArtifactRef } from '../artifacts/ref';
import { simulatorKnowledge, TeacherSimulator } from '../runtime/teacher-simulator';
import { ArtifactStore } from '../artifacts/store';
import { readEnv } from '../config/env';
import { parsePipelineConfig } from '../config/pipeline';
import { loadTaskFromFiles, TaskFileError } from '../tasks/from-files';
import { readDataFile } from '../tasks/from-files/data-file';
import { FROM_FILES_LIMITS } from '../tasks/from-files/limits';
import { studentFamilyFor, studentFamilyProblem, taskArguments } from '../tasks/argument-kinds';
import { taskDescription } from '../tasks/task-description';
import { pipelinePlan } from '../config/plan';

const SECRET = 'SECRET-CONTENT-42';

const FUNCTIONS = {
  name: 'Kitchen timers',
  systemPrompt: 'Turn the request into one function call.',
  tools: [
    {
      type: 'function',
      function: {
        name: 'set_timer',
        description: 'Starts a kitchen timer.',
        parameters: {
          type: 'object',
          properties: {
            minutes: { type: 'integer', minimum: 1, maximum: 180 },
            unit: { type: 'string', enum: ['oven', 'stove'] },
            label: { type: 'string', 'x-span': true, description: 'What the timer is for' },
            loud: { type: 'boolean' },
          },
          required: ['minutes', 'unit'],
        },
      },
    },
    {
      type: 'function',
      function: { name: 'cancel_timer', description: 'Stops the timer.', parameters: { type: 'object', properties: {} } },
    },
  ],
};

const row = (id: string, split: string, input: string, gold?: unknown) => JSON.stringify({ id, split, input, ...(gold ? { gold } : {}) });
const GOOD_ROWS = [
  row('t1', 'train', 'timer for the pasta ten minutes on the stove'),
  row('t2', 'train', 'stop the timer', { name: 'cancel_timer', arguments: {} }),
  row('d1', 'dev', 'oven timer 25 minutes for the bread', { name: 'set_timer', arguments: { minutes: 25, unit: 'oven', label: 'bread' } }),
  row('s1', 'test', 'loud stove timer 5 minutes', { name: 'set_timer', arguments: { minutes: 5, unit: 'stove', loud: true } }),
];

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'from-files-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function files(functions: unknown, rows: string[], name = 'functions.json') {
  const sub = await fs.mkdtemp(path.join(dir, 'case-'));
  const functionsFile = path.join(sub, name);
  await fs.writeFile(functionsFile, typeof functions === 'string' ? functions : JSON.stringify(functions, null, 2));
  const dataFile = path.join(sub, 'data.jsonl');
  await fs.writeFile(dataFile, rows.join('\n') + '\n');
  return { functions: functionsFile, data: dataFile };
}

async function loadError(functions: unknown, rows: string[], name?: string): Promise<Error> {
  const err = await loadTaskFromFiles(await files(functions, rows, name)).then(
    () => undefined,
    (e: Error) => e,
  );
  if (!err) throw new Error('the files loaded');
  expect(err).toBeInstanceOf(TaskFileError);
  expect(err.message).not.toContain(SECRET);
  return err;
}

describe('a task from files', () => {
  test('loads: typed tool definitions for the teacher, string-form calls, gold of the labelled examples', async () => {
    const task = await loadTaskFromFiles(await files(FUNCTIONS, GOOD_ROWS));
    expect(task.displayName).toBe('Kitchen timers');
    expect(task.functionNames).toEqual(['set_timer', 'cancel_timer']);
    expect(task.spanArguments).toEqual({ set_timer: ['label'] });
    const [tool] = task.toolDefinitions(['set_timer']);
    expect(tool.function.parameters).toMatchObject({ properties: { minutes: { type: 'integer', minimum: 1, maximum: 180 }, loud: { type: 'boolean' } }, additionalProperties: false });
    expect(JSON.stringify(tool.function.parameters)).not.toContain('x-span');
    const [train, dev, test] = await Promise.all((['train', 'dev', 'test'] as const).map((s) => task.dataset.load(s)));
    expect(train.map((e) => task.gold(e))).toEqual([undefined, { name: 'cancel_timer', args: [] }]);
    expect(task.callFormat.print(task.gold(dev[0])!)).toBe('set_timer(minutes="25", unit="oven", label="bread")');
    expect(task.callFormat.print(task.gold(test[0])!)).toBe('set_timer(minutes="5", unit="stove", loud="true")');
  });

  test("the teacher's typed tool call becomes a string-form call; the schema refuses wrong types, values and keys", async () => {
    const task = await loadTaskFromFiles(await files(FUNCTIONS, GOOD_ROWS));
    const decoded = task.decodeToolCall('set_timer', JSON.stringify({ minutes: 10, unit: 'stove', loud: false }), task.entryTools);
    expect(decoded).toEqual({ kind: 'call', call: { name: 'set_timer', args: [{ key: 'minutes', value: '10' }, { key: 'unit', value: 'stove' }, { key: 'loud', value: 'false' }] } });
    expect(task.decodeToolCall('set_timer', JSON.stringify({ minutes: 'ten', unit: 'stove' }), task.entryTools).kind).toBe('invalid_arguments');
    expect(task.decodeToolCall('set_timer', JSON.stringify({ minutes: 2.5, unit: 'stove' }), task.entryTools).kind).toBe('invalid_arguments');
    expect(task.decodeToolCall('set_timer', JSON.stringify({ minutes: 500, unit: 'stove' }), task.entryTools).kind).toBe('invalid_arguments');
    expect(task.decodeToolCall('set_timer', JSON.stringify({ minutes: 5, unit: 'grill' }), task.entryTools).kind).toBe('invalid_arguments');
    expect(task.decodeToolCall('set_timer', JSON.stringify({ minutes: 5 }), task.entryTools).kind).toBe('invalid_arguments');
    expect(task.decodeToolCall('set_timer', JSON.stringify({ minutes: 5, unit: 'oven', color: 'red' }), task.entryTools).kind).toBe('invalid_arguments');
  });

  test('the verifier comes from the schema: a span argument must occur in the input, as whole words', async () => {
    const task = await loadTaskFromFiles(await files(FUNCTIONS, GOOD_ROWS));
    const call = (label: string) => ({ name: 'set_timer', args: [{ key: 'minutes', value: '25' }, { key: 'unit', value: 'oven' }, { key: 'label', value: label }] });
    expect(task.verify(call('bread'), 'oven timer 25 minutes for the bread')).toEqual({ ok: true });
    expect(task.verify(call('brea'), 'oven timer 25 minutes for the bread')).toEqual({ ok: false, reason: 'argument "label" is not a span of the input' });
    expect(task.verify(call('cake'), 'oven timer 25 minutes for the bread').ok).toBe(false);
    expect(task.verify({ name: 'set_timer', args: [{ key: 'minutes', value: '0' }, { key: 'unit', value: 'oven' }] }, 'x').reason).toMatch(/argument "minutes" must be >= 1/);
    // The trainer reads the same rules from the task description: the typed schema, each argument's kind and type.
    const [setTimer] = taskDescription(task).functions;
    expect(setTimer.parameters).toMatchObject({ additionalProperties: false, properties: { minutes: { type: 'integer', minimum: 1 }, loud: { type: 'boolean' } } });
    expect(setTimer.arguments.map((a) => [a.name, a.kind, a.type, a.required])).toEqual([
      ['minutes', 'number', 'integer', true],
      ['unit', 'enum', 'string', true],
      ['label', 'span', 'string', false],
      ['loud', 'boolean', 'boolean', false],
    ]);
  });

  test('a YAML functions file works too', async () => {
    const yaml = [
      'systemPrompt: Turn the request into one call.',
      'tools:',
      '  - type: function',
      '    function:',
      '      name: cancel_timer',
      '      description: Stops the timer.',
      '      parameters: { type: object, properties: {} }',
    ].join('\n');
    const task = await loadTaskFromFiles(await files(yaml, [row('a', 'train', 'stop'), row('b', 'dev', 'stop it', { name: 'cancel_timer' }), row('c', 'test', 'halt', { name: 'cancel_timer' })], 'functions.yaml'));
    expect(task.functionNames).toEqual(['cancel_timer']);
    expect(task.displayName).toBe('task from files');
  });

  const withArgs = (args: Record<string, unknown>, input = `oven timer for the bread ${SECRET}`) => row('d9', 'dev', input, { name: 'set_timer', arguments: args });
  test.each([
    ['a line that is not JSON', [...GOOD_ROWS, `{"id": "x", "split": "train", "input": "${SECRET}"`], /^data file data\.jsonl line 5: not valid JSON$/],
    ['a missing field', [...GOOD_ROWS, JSON.stringify({ id: 'x', split: 'train' })], /^data file data\.jsonl line 5: field input: /],
    ['an unknown field', [...GOOD_ROWS, JSON.stringify({ id: 'x', split: 'train', input: SECRET, label: SECRET })], /^data file data\.jsonl line 5: field .*label/],
    ['an unknown split', [...GOOD_ROWS, row('x', 'validation', SECRET)], /^data file data\.jsonl line 5: field split: must be one of train, dev, test$/],
    ['gold naming an unknown function', [...GOOD_ROWS, row('x', 'dev', SECRET, { name: 'boil_egg', arguments: {} })], /^data file data\.jsonl line 5: field gold\.name: not a function of the functions file$/],
    ['gold with a value outside the enum', [...GOOD_ROWS, withArgs({ minutes: 5, unit: SECRET })], /line 5: field gold\.arguments: argument "unit" must be equal to one of the allowed values$/],
    ['gold with a number of the wrong type', [...GOOD_ROWS, withArgs({ minutes: SECRET, unit: 'oven' })], /line 5: field gold\.arguments: argument "minutes" must be integer$/],
    ['gold with a number out of range', [...GOOD_ROWS, withArgs({ minutes: 900, unit: 'oven' })], /line 5: field gold\.arguments: argument "minutes" must be <= 180$/],
    ['gold missing a required argument', [...GOOD_ROWS, withArgs({ unit: 'oven' })], /line 5: field gold\.arguments: argument "minutes" is required$/],
    ['gold with an argument the function lacks', [...GOOD_ROWS, withArgs({ minutes: 5, unit: 'oven', [SECRET.toLowerCase().replace(/-/g, '_')]: 1 })], /line 5: field gold\.arguments: argument ".*" is not a parameter$/],
    ['gold with a span that is not in the input', [...GOOD_ROWS, withArgs({ minutes: 5, unit: 'oven', label: 'cake' })], /line 5: field gold\.arguments: argument "label" is not a span of the input$/],
    ['a dev example without gold', [...GOOD_ROWS, row('x', 'dev', SECRET)], /line 5: field gold: missing; dev examples need a gold call/],
    ['a test example without gold', [...GOOD_ROWS, row('x', 'test', SECRET)], /line 5: field gold: missing; test examples need a gold call/],
    ['a duplicate id', [...GOOD_ROWS, row('d1', 'train', SECRET)], /^data file data\.jsonl line 5: field id: the same id as line 3$/],
    ['a split with no examples', GOOD_ROWS.filter((r) => !r.includes('"test"')), /^data file data\.jsonl: no test examples/],
  ])('refuses a data file with %s, naming the line and field', async (_what, rows, message) => {
    expect((await loadError(FUNCTIONS, rows)).message).toMatch(message);
  });

  const withTool = (parameters: unknown, name = 'set_timer') => ({ ...FUNCTIONS, tools: [{ type: 'function', function: { name, description: 'x', parameters } }] });
  test.each([
    ['a functions file that is not JSON', `{"systemPrompt": "${SECRET}",\n  "tools": [,]\n}`, /^functions file functions\.json line 2: not valid JSON or YAML \(/],
    ['no system prompt', { tools: FUNCTIONS.tools }, /^functions file functions\.json line 1: field systemPrompt: /],
    ['no functions', { ...FUNCTIONS, tools: [] }, /field tools: must define at least one function$/],
    [
      'a parameter type outside the supported subset',
      withTool({ type: 'object', properties: { items: { type: 'array', items: { type: 'string' } } } }),
      /^functions file functions\.json line \d+: field tools\[0\]\.function\.parameters\.properties\.items(\.type)?: /,
    ],
    ['a keyword outside the subset', withTool({ type: 'object', properties: { minutes: { type: 'integer', multipleOf: 5 } } }), /field tools\[0\]\.function\.parameters\.properties\.minutes: .*multipleOf/],
    ['required naming no parameter', withTool({ type: 'object', properties: {}, required: ['minutes'] }), /field tools\[0\]\.function\.parameters\.required\[0\]: names a parameter that is not in properties$/],
    ['an enum marked as a span', withTool({ type: 'object', properties: { unit: { type: 'string', enum: ['a'], 'x-span': true } } }), /properties\.unit\.x-span: an enum parameter cannot also be a span$/],
    ['a function name that is not an identifier', withTool({ type: 'object', properties: {} }, 'set timer'), /field tools\[0\]\.function\.name: must be an identifier/],
    ['a function defined twice', { ...FUNCTIONS, tools: [FUNCTIONS.tools[1], FUNCTIONS.tools[1]] }, /field tools\[1\]\.function\.name: names a function defined earlier in the file$/],
    ['parameters that are not an object schema', withTool({ type: 'string' }), /field tools\[0\]\.function\.parameters\.type: /],
  ])('refuses a functions file with %s, naming the line and field', async (_what, functions, message) => {
    const err = await loadError(functions, GOOD_ROWS);
    expect(err.message).toMatch(message);
  });

  const parameters = (properties: Record<string, unknown>) => withTool({ type: 'object', properties });
  const manyTools = (count: number) => ({
    ...FUNCTIONS,
    tools: Array.from({ length: count }, (_, i) => ({ type: 'function', function: { name: `f${i}`, parameters: { type: 'object', properties: {} } } })),
  });
  test.each([
    ['a file over the size bound', JSON.stringify(FUNCTIONS) + ' '.repeat(FROM_FILES_LIMITS.functionsFileBytes), /^functions file functions\.json: larger than 1048576 bytes$/],
    ['a systemPrompt over 32 KB', { ...FUNCTIONS, systemPrompt: SECRET + 'x'.repeat(32 * 1024) }, /^functions file functions\.json line 3: field systemPrompt: must be at most 32768 bytes \(UTF-8\)$/],
    ['more than 128 functions', manyTools(129), /^functions file functions\.json line 4: field tools: must define at most 128 functions$/],
    ['an enum of more than 256 values', parameters({ unit: { type: 'string', enum: Array.from({ length: 257 }, (_, i) => `v${i}`) } }), /line \d+: field tools\[0\]\.function\.parameters\.properties\.unit\.enum: must have at most 256 values$/],
    ['more than 64 parameters', parameters(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`p${i}`, { type: 'boolean' }]))), /line \d+: field tools\[0\]\.function\.parameters\.properties: must have at most 64 parameters$/],
    ['a description over 4 KB', parameters({ unit: { type: 'string', description: SECRET + 'é'.repeat(2048) } }), /line \d+: field tools\[0\]\.function\.parameters\.properties\.unit\.description: must be at most 4096 bytes \(UTF-8\)$/],
    ['required naming an inherited property', withTool({ type: 'object', properties: {}, required: ['constructor'] }), /field tools\[0\]\.function\.parameters\.required\[0\]: names a parameter that is not in properties$/],
    ['a parameter named __proto__ (it would vanish)', JSON.stringify(parameters({ unit: { type: 'string' } }), null, 2).replace('"unit"', '"__proto__"'), /^functions file functions\.json line \d+: the key __proto__ is refused/],
  ])('refuses a functions file with %s, naming the line and field', async (_what, functions, message) => {
    expect((await loadError(functions, GOOD_ROWS)).message).toMatch(message);
  });

  const goldPad = (pad: number) => JSON.stringify({ id: 'x', split: 'train', input: 'short', gold: { name: 'cancel_timer', arguments: {} } }).replace('"arguments"', `"${'a'.repeat(pad)}": 1, "arguments"`);
  test.each([
    ['an input over 4 KB (counted in UTF-8 bytes)', [...GOOD_ROWS, row('x', 'train', SECRET + 'é'.repeat(2040))], /^data file data\.jsonl line 5: field input: must be at most 4096 bytes \(UTF-8\)$/],
    ['a line over 64 KB', [...GOOD_ROWS, goldPad(FROM_FILES_LIMITS.dataLineBytes)], /^data file data\.jsonl line 5: longer than 65536 bytes$/],
    ['a field given twice (JSON.parse would keep the last)', [...GOOD_ROWS, `{"id": "x", "split": "train", "input": "${SECRET}", "input": "fine"}`], /^data file data\.jsonl line 5: field input: appears twice in the row$/],
    [
      'an argument given twice',
      [...GOOD_ROWS, '{"id": "x", "split": "dev", "input": "oven timer for the bread", "gold": {"name": "set_timer", "arguments": {"minutes": 500, "unit": "oven", "minutes": 5}}}'],
      /^data file data\.jsonl line 5: field gold\.arguments\.minutes: appears twice in the row$/,
    ],
    ['a replaced object hiding keys of its own', [...GOOD_ROWS, `{"id": "x", "split": "train", "input": "stop", "gold": {"${SECRET}": 1, "${SECRET}": 2}, "gold": {"name": "cancel_timer"}}`], /^data file data\.jsonl line 5: field gold: appears twice in the row$/],
  ])('refuses a data file with %s, naming the line and field', async (_what, rows, message) => {
    expect((await loadError(FUNCTIONS, rows)).message).toMatch(message);
  });

  test('refuses a data file over 256 MB before reading it', async () => {
    const { functions, data } = await files(FUNCTIONS, GOOD_ROWS);
    await fs.truncate(data, FROM_FILES_LIMITS.dataFileBytes + 1); // sparse: nothing is written
    await expect(loadTaskFromFiles({ functions, data })).rejects.toThrow(/^data file data\.jsonl: larger than 268435456 bytes$/);
  });

  test('refuses a data file of more examples than the bound, naming the first line over it', async () => {
    const { data } = await files(FUNCTIONS, ['', ...GOOD_ROWS]);
    const anyGold = { hasFunction: () => true, check: () => [], toCall: (name: string) => ({ name, args: [] }) };
    await expect(readDataFile(data, anyGold, { ...FROM_FILES_LIMITS, dataRows: 3 })).rejects.toThrow(/^data file data\.jsonl line 5: more than 3 examples$/);
    await expect(readDataFile(data, anyGold, { ...FROM_FILES_LIMITS, dataRows: 4 })).resolves.toHaveLength(4);
  });

  test('the examples in the repository are within every bound', async () => {
    const example = path.resolve(__dirname, '../examples/request-router');
    const task = await loadTaskFromFiles({ functions: path.join(example, 'functions.json'), data: path.join(example, 'data.jsonl') });
    expect((await task.dataset.load('train')).length).toBeGreaterThan(0);
  });

  test('the error of a bad tool schema gives the line of the field in the file', async () => {
    const functions = withTool({ type: 'object', properties: { minutes: { type: 'decimal' } } });
    const text = JSON.stringify(functions, null, 2);
    const line = text.split('\n').findIndex((l) => l.includes('"decimal"')) + 1;
    expect((await loadError(text, GOOD_ROWS)).message).toMatch(new RegExp(`^functions file functions\\.json line ${line}: field tools\\[0\\]\\.function\\.parameters\\.properties\\.minutes\\.type: `));
  });

  test('a config names the files, inside the data roots; a missing functions file is a config error', async () => {
    const { functions, data } = await files(FUNCTIONS, GOOD_ROWS);
    const env = { ...readEnv(), dataRoots: [dir] };
    const resources = createTaskResources({ env, store: new ArtifactStore(path.join(dir, 'store')) });
    const loaded = await resources.loadTask(parsePipelineConfig({ task: { name: 'from-files', functionsPath: functions, dataPath: data } }));
    expect(loaded.task.displayName).toBe('Kitchen timers');
    expect(loaded.labelledTrain).toBe(1);
    await expect(resources.loadTask(parsePipelineConfig({ task: { name: 'from-files', dataPath: data } }))).rejects.toThrow(
      /task\.functionsPath: task "from-files" needs a functions file/,
    );
    await expect(resources.loadTask(parsePipelineConfig({ task: { name: 'from-files', functionsPath: '/etc/hosts', dataPath: data } }))).rejects.toThrow(
      /task\.functionsPath: \/etc\/hosts is outside the worker's allowed folders/,
    );
  });

  test('a file edited in place between two loads in one worker gives the new rows under the new bytes\' hash, never the old rows', async () => {
    const { functions, data } = await files(FUNCTIONS, GOOD_ROWS);
    const env = { ...readEnv(), dataRoots: [dir] };
    const store = new ArtifactStore(path.join(dir, 'store-edited'));
    const resources = createTaskResources({ env, store });
    const prototype = createPrototypeActivities({ env, store }, resources);
    const config = parsePipelineConfig({ task: { name: 'from-files', functionsPath: functions, dataPath: data } });
    const sha256 = async (file: string) => createHash('sha256').update(await fs.readFile(file)).digest('hex');
    const devInputs = async (ref: ArtifactRef) => (await store.readJsonl<{ text: string }>(ref)).map((r) => r.text);

    const loaded = await resources.loadTask(config);
    expect(loaded.hashes).toEqual({ data: await sha256(data), functions: await sha256(functions) });
    expect(await resources.loadTask(config)).toBe(loaded);
    const before = await prototype.prepareTaskData({ plan: pipelinePlan(config).prototype.data });
    expect(await devInputs(before.dev)).toEqual(['oven timer 25 minutes for the bread']);

    // The same size, the same inode, at once: only the bytes tell the two versions apart.
    const edited = (await fs.readFile(data, 'utf8')).replace(/bread/g, 'toast');
    await fs.writeFile(data, edited);
    const reloaded = await resources.loadTask(config);
    expect(reloaded).not.toBe(loaded);
    expect(reloaded.hashes.data).toBe(await sha256(data));
    expect((await reloaded.task.dataset.load('dev')).map((e: { input: string }) => e.input)).toEqual(['oven timer 25 minutes for the toast']);
    const after = await prototype.prepareTaskData({ plan: pipelinePlan(config).prototype.data });
    expect(after.dev.sha256).not.toBe(before.dev.sha256);
    expect(await devInputs(after.dev)).toEqual(['oven timer 25 minutes for the toast']);

    // The functions file too: its new prompt, under its new hash.
    await fs.writeFile(functions, JSON.stringify({ ...FUNCTIONS, systemPrompt: 'Answer with one call.' }));
    const retold = await resources.loadTask(config);
    expect(retold.task.systemPrompt).toBe('Answer with one call.');
    expect(retold.hashes.functions).toBe(await sha256(functions));
    expect(retold.fingerprint).not.toBe(reloaded.fingerprint);
    await resources.close();
  });

  test('the teacher simulator serves it from its gold calls, with typed arguments, through the same decoding as a real teacher', async () => {
    const task = await loadTaskFromFiles(await files(FUNCTIONS, GOOD_ROWS));
    const sim = new TeacherSimulator(await simulatorKnowledge(task), {
      seed: 3,
      model: 'teacher-simulator',
      errorModel: { tiers: [{ share: 1, errorMass: [0, 0] }], malformedArgumentsRate: 0, unknownFunctionRate: 0 },
    });
    const ask = (input: string) =>
      sim.complete({
        model: 'teacher-simulator',
        messages: [
          { role: 'system', content: task.systemPrompt },
          { role: 'user', content: input },
        ],
        tools: task.toolDefinitions(task.entryTools) as never,
        temperature: 0,
      });
    const answer = ask('oven timer 25 minutes for the bread');
    expect(answer).toMatchObject({ role: 'final', known: true });
    const fn = (answer.body as any).choices[0].message.tool_calls[0].function;
    expect(JSON.parse(fn.arguments)).toEqual({ label: 'bread', minutes: 25, unit: 'oven' });
    const decoded = task.decodeToolCall(fn.name, fn.arguments, task.entryTools);
    expect(decoded.kind === 'call' && task.canonicalText(decoded.call, '')).toBe(task.canonicalText(task.gold((await task.dataset.load('dev'))[0])!, ''));
    // An unlabelled train input gets a neighbour's guess, never its own gold: there is none.
    expect(ask('timer for the pasta ten minutes on the stove').known).toBe(false);
  });

  test('with unlabelled train inputs and the simulator as teacher, the pipeline refuses at the start, saying why', async () => {
    const { functions, data } = await files(FUNCTIONS, GOOD_ROWS);
    const env = { ...readEnv(), dataRoots: [dir] };
    const resources = createTaskResources({ env, store: new ArtifactStore(path.join(dir, 'store')) });
    const decoder = { student: { family: 'decoder' as const } };
    const config = parsePipelineConfig({ task: { name: 'from-files', functionsPath: functions, dataPath: data }, transfer: decoder });
    await expect(checkConfigOnWorker(config, env, resources)).rejects.toThrow(
      /teacher\.endpoint: the teacher simulator answers from gold calls, and 1 of the 2 train inputs of task "from-files" have none: name a real teacher endpoint/,
    );
    const labelled = await files(FUNCTIONS, GOOD_ROWS.filter((r) => !r.includes('"t1"')));
    await expect(
      checkConfigOnWorker(parsePipelineConfig({ task: { name: 'from-files', functionsPath: labelled.functions, dataPath: labelled.data }, transfer: decoder }), env, resources),
    ).resolves.not.toHaveProperty('studentFamily');
  });

  test('the student family follows the schema: the encoder takes spans, enums, numbers and booleans, and is refused for free text, naming it', async () => {
    const task = await loadTaskFromFiles(await files(FUNCTIONS, GOOD_ROWS));
    expect(taskArguments(task).map((a) => `${a.function}.${a.argument}:${a.kind}`)).toEqual([
      'set_timer.minutes:number',
      'set_timer.unit:enum',
      'set_timer.label:span',
      'set_timer.loud:boolean',
    ]);
    expect(studentFamilyFor(task)).toBe('encoder');
    expect(studentFamilyProblem(task, 'decoder')).toBeUndefined();
    expect(studentFamilyProblem(task, 'encoder')).toBeUndefined();
    const { functions, data } = await files(
      { ...FUNCTIONS, tools: [{ type: 'function', function: { name: 'note', description: 'x', parameters: { type: 'object', properties: { text: { type: 'string' }, who: { type: 'string', 'x-span': true } } } } }] },
      [row('a', 'train', 'note for bob', { name: 'note', arguments: { who: 'bob', text: 'call him' } }), row('b', 'dev', 'note for ann', { name: 'note', arguments: { who: 'ann' } }), row('c', 'test', 'x', { name: 'note' })],
    );
    const env = { ...readEnv(), dataRoots: [dir] };
    const resources = createTaskResources({ env, store: new ArtifactStore(path.join(dir, 'store')) });
    // The config check lets the encoder take the enum, number and boolean task (its value heads learn them).
    const labelled = await files(FUNCTIONS, GOOD_ROWS.filter((r) => !r.includes('"t1"')));
    const encoder = { student: { family: 'encoder' as const } };
    await expect(
      checkConfigOnWorker(parsePipelineConfig({ task: { name: 'from-files', functionsPath: labelled.functions, dataPath: labelled.data }, transfer: encoder }), env, resources),
    ).resolves.not.toHaveProperty('studentFamily');
    await expect(
      checkConfigOnWorker(parsePipelineConfig({ task: { name: 'from-files', functionsPath: functions, dataPath: data }, transfer: encoder }), env, resources),
    ).rejects.toThrow(
      /transfer\.student\.family: the encoder student predicts spans of the input and enum, boolean and number values, and argument "text" of function "note" is free text, not a span/,
    );
    const spansOnly = await loadTaskFromFiles(await files({ ...FUNCTIONS, tools: [{ type: 'function', function: { name: 'note', description: 'x', parameters: { type: 'object', properties: { who: { type: 'string', 'x-span': true } } } } }] }, [row('a', 'train', 'bob'), row('b', 'dev', 'ann', { name: 'note', arguments: { who: 'ann' } }), row('c', 'test', 'x', { name: 'note' })]));
    expect(studentFamilyFor(spansOnly)).toBe('encoder');
    expect(studentFamilyProblem(spansOnly, 'encoder')).toBeUndefined();
  });
});
