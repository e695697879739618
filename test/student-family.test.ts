// The student family when the config does not say: chosen on the worker from the task's schema (the encoder
// when it can express every argument, else the decoder, with the reason), the config then resolved with that
// family's defaults; a config that names its family keeps it, and a forced family that cannot express the task
// is refused naming the argument.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTaskResources } from '../activities/task-resources';
import { checkConfigOnWorker, resolvePlan, resolveStudentFamily } from '../activities/config-check';
import { ArtifactStore } from '../artifacts/store';
import { readEnv, type SupertinyEnv } from '../config/env';
import { InvalidConfigError, parsePipelineConfig, studentFamilyGiven, type PipelineConfigInput } from '../config/pipeline';
import { encoderCanExpress, studentFamilyChoice, taskArguments } from '../tasks/argument-kinds';
import { loadTaskFromFiles } from '../tasks/from-files';

const ROUTER = path.join(__dirname, '..', 'examples', 'request-router');
const ROUTER_TASK = { name: 'from-files', functionsPath: path.join(ROUTER, 'functions.json'), dataPath: path.join(ROUTER, 'data.jsonl') };

const NOTES_FUNCTIONS = {
  name: 'Notes',
  systemPrompt: 'Turn the request into one function call.',
  tools: [
    {
      type: 'function',
      function: {
        name: 'note',
        description: 'Writes a note for someone.',
        parameters: { type: 'object', properties: { who: { type: 'string', 'x-span': true }, topic: { type: 'string', 'x-span': true } }, required: ['who'] },
      },
    },
    { type: 'function', function: { name: 'clear_notes', description: 'Clears the notes.', parameters: { type: 'object', properties: {} } } },
  ],
};
const NOTES_ROWS = [
  { id: 'a', split: 'train', input: 'note for bob about lunch', gold: { name: 'note', arguments: { who: 'bob', topic: 'lunch' } } },
  { id: 'b', split: 'dev', input: 'note for ann', gold: { name: 'note', arguments: { who: 'ann' } } },
  { id: 'c', split: 'test', input: 'clear my notes', gold: { name: 'clear_notes', arguments: {} } },
];

let dir: string;
let env: SupertinyEnv;
let notesTask: { name: 'from-files'; functionsPath: string; dataPath: string };
const resources = () => createTaskResources({ env, store: new ArtifactStore(path.join(dir, 'store')) });

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'student-family-'));
  const base = readEnv();
  env = { ...base, dataDir: dir, dataRoots: [...base.dataRoots, dir] };
  notesTask = { name: 'from-files', functionsPath: path.join(dir, 'functions.json'), dataPath: path.join(dir, 'data.jsonl') };
  await fs.writeFile(notesTask.functionsPath, JSON.stringify(NOTES_FUNCTIONS));
  await fs.writeFile(notesTask.dataPath, NOTES_ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');
});
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** What the workflow does: its first activity resolves the input as written into the plan. */
async function resolve(input: PipelineConfigInput) {
  const { config, studentFamily } = await resolvePlan(input, env, resources());
  return { config, studentFamily };
}

describe('whether a config names its student family', () => {
  test.each([
    ['{}', false, {}],
    ['an empty transfer', false, { transfer: {} }],
    ['an empty student', false, { transfer: { student: {} } }],
    ['a base model only (either family has one)', false, { transfer: { student: { baseModelPath: '/models/x' } } }],
    ['a decoder-only step (a setting, not a family: refused if the chosen family lacks it)', false, { transfer: { steps: ['sft', 'dpo'] } }],
    ['family "encoder"', true, { transfer: { student: { family: 'encoder' } } }],
    ['family "decoder"', true, { transfer: { student: { family: 'decoder' } } }],
    ['a decoder shape field', true, { transfer: { student: { hiddenSize: 64 } } }],
    ["an encoder-only field", true, { transfer: { student: { maxLength: 32 } } }],
    ['a parsed config', true, parsePipelineConfig({})],
  ])('%s: %s', (_label, given, input) => {
    expect(studentFamilyGiven(input)).toBe(given);
  });
});

describe('parsing with a chosen family', () => {
  test('a config that names none resolves with the chosen family and its defaults; one that names one keeps it', () => {
    expect(parsePipelineConfig({ task: ROUTER_TASK }, 'decoder')).toEqual(parsePipelineConfig({ task: ROUTER_TASK, transfer: { student: { family: 'decoder' } } }));
    const decoder = parsePipelineConfig({}, 'decoder');
    expect(decoder.transfer).toMatchObject({ epochs: 12, learningRate: 1e-3, student: { family: 'decoder', hiddenSize: 192 } });
    expect(decoder.compress.steps).toEqual(['int8']);
    expect(parsePipelineConfig({}, 'encoder')).toEqual(parsePipelineConfig({}));
    expect(parsePipelineConfig({ transfer: { student: { family: 'encoder' } } }, 'decoder').transfer.student.family).toBe('encoder');
    expect(parsePipelineConfig({ transfer: { student: { hiddenSize: 64, heads: 2, kvHeads: 1 } } }, 'encoder').transfer.student.family).toBe('decoder');
  });

  test('without a chosen family the parse is provisional: a decoder-only setting passes, a bad field still fails', () => {
    expect(parsePipelineConfig({}).transfer.student.family).toBe('encoder');
    expect(parsePipelineConfig({ transfer: { steps: ['sft', 'dpo'] } }).transfer.student.family).toBe('decoder');
    expect(() => parsePipelineConfig({ transfer: { steps: ['sft', 'dpo'] } }, 'encoder')).toThrow(/transfer\.steps\.1: "dpo" is a decoder step/);
    expect(() => parsePipelineConfig({ teacher: { samples: 0 } })).toThrow(InvalidConfigError);
    expect(() => parsePipelineConfig({ teacher: { samples: 0 } })).toThrow(/^invalid pipeline config: teacher\.samples: [^;]*$/);
  });
});

describe('the family from the task schema', () => {
  test('the one rule: the encoder expresses spans, enums, numbers and booleans, not free text', async () => {
    const router = await loadTaskFromFiles({ functions: ROUTER_TASK.functionsPath, data: ROUTER_TASK.dataPath });
    expect(taskArguments(router).map((a) => `${a.argument}:${a.kind}:${encoderCanExpress(a)}`)).toEqual([
      'domain:enum:true',
      'action:free text:false',
      'entity_count:number:true',
      'first_entity:span:true',
    ]);
  });

  test('a task whose arguments are all spans gets the encoder', async () => {
    const notes = await loadTaskFromFiles({ functions: notesTask.functionsPath, data: notesTask.dataPath });
    expect(studentFamilyChoice(notes)).toEqual({
      family: 'encoder',
      chosenFrom: 'task schema',
      reason: 'every argument of the 2 output functions is a span of the input, which the encoder student expresses',
    });
    const { config, studentFamily } = await resolve({ task: notesTask });
    expect(studentFamily?.family).toBe('encoder');
    expect(config).toEqual(parsePipelineConfig({ task: notesTask, transfer: { student: { family: 'encoder' } } }));
  });

  test('a free-text argument gets the decoder on the pretrained SmolLM2 base, with its defaults, naming the argument as the reason', async () => {
    expect(env.freeTextDecoderBase).toBe('smollm2-135m'); // the worker's default (SUPERTINY_FREE_TEXT_BASE unset)
    const { config, studentFamily } = await resolve({ task: ROUTER_TASK });
    expect(studentFamily).toEqual({
      family: 'decoder',
      base: 'smollm2-135m',
      chosenFrom: 'task schema',
      reason: 'argument route_request.action is free text, not a span, which the encoder student cannot express; it starts from the pretrained smollm2-135m base',
    });
    expect(config).toEqual(parsePipelineConfig({ task: ROUTER_TASK, transfer: { student: { base: 'smollm2-135m' } } }));
    expect(config.transfer).toMatchObject({ epochs: 3, learningRate: 3e-4, student: { family: 'decoder', base: 'smollm2-135m' } });
    expect(config.compress.steps).toEqual(['prune-vocab', 'int8', 'int4-qat']);
    // The plan fetches and converts the base, and trains no tokenizer.
    const plan = await resolvePlan({ task: ROUTER_TASK }, env, resources());
    expect(plan.transfer).toMatchObject({ family: 'decoder', tokenizer: null, base: { registry: 'smollm2-135m' } });
  });

  test("a worker whose operator turned the free-text base off gives the random-init decoder; a config's own folder or family is kept", async () => {
    const off = await resolvePlan({ task: ROUTER_TASK }, { ...env, freeTextDecoderBase: undefined }, resources());
    expect(off.studentFamily).toEqual({
      family: 'decoder',
      chosenFrom: 'task schema',
      reason: 'argument route_request.action is free text, not a span, which the encoder student cannot express',
    });
    expect(off.config).toEqual(parsePipelineConfig({ task: ROUTER_TASK, transfer: { student: { family: 'decoder' } } }));
    expect(off.config.transfer.epochs).toBe(12);
    // A config that names the decoder family and no base keeps the random-init decoder, as before.
    const named = await resolve({ task: ROUTER_TASK, transfer: { student: { family: 'decoder' } } });
    expect(named.studentFamily).toBeUndefined();
    expect(named.config.transfer.student).toMatchObject({ family: 'decoder', hiddenSize: 192 });
    // A config with its own model folder starts from it, not from the registry's base.
    const folder = path.join(dir, 'my-model');
    await fs.mkdir(folder, { recursive: true });
    await fs.writeFile(path.join(folder, 'config.json'), '{"model_type": "llama"}');
    const own = await resolveStudentFamily(parsePipelineConfig({ task: ROUTER_TASK }), { task: ROUTER_TASK, transfer: { student: { baseModelPath: folder } } }, resources(), 'smollm2-135m');
    expect(own.studentFamily?.family).toBe('decoder');
    expect(own.studentFamily?.base).toBeUndefined();
    expect(own.config.transfer.student).toMatchObject({ family: 'decoder', baseModelPath: folder });
    expect(own.config.transfer.student.base).toBeUndefined();
  });

  test('SUPERTINY_FREE_TEXT_BASE: a registry name, "none", or unset; anything else is refused naming the variable', () => {
    expect(readEnv({}).freeTextDecoderBase).toBe('smollm2-135m');
    expect(readEnv({ SUPERTINY_FREE_TEXT_BASE: 'none' }).freeTextDecoderBase).toBeUndefined();
    expect(readEnv({ SUPERTINY_FREE_TEXT_BASE: 'smollm2-135m' }).freeTextDecoderBase).toBe('smollm2-135m');
    expect(() => readEnv({ SUPERTINY_FREE_TEXT_BASE: 'minilm-l6' })).toThrow(/^SUPERTINY_FREE_TEXT_BASE must be a decoder base \("smollm2-135m"\) or "none", got "minilm-l6"$/);
  });

  test('a forced encoder on a free-text task is refused, naming the argument', async () => {
    const input = { task: ROUTER_TASK, transfer: { student: { family: 'encoder' as const } } };
    const err = await checkConfigOnWorker(parsePipelineConfig(input), env, resources(), input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect((err as InvalidConfigError).issues).toEqual([{ path: 'transfer.student.family', message: expect.stringMatching(/argument "action" of function "route_request" is free text, not a span \(mark a string copied from the input "x-span": true\); this task needs transfer\.student\.family "decoder"/) }]);
    // The encoder's own shape fields name the family as much as `family` does.
    const shaped = { task: ROUTER_TASK, transfer: { student: { maxLength: 32 } } };
    await expect(checkConfigOnWorker(parsePipelineConfig(shaped), env, resources(), shaped)).rejects.toThrow(/transfer\.student\.family: .*argument "action"/);
  });

  test('MASSIVE with no family gets the encoder, resolved exactly as before the choice existed', async () => {
    const { config, studentFamily } = await resolve({});
    expect(studentFamily).toEqual({
      family: 'encoder',
      chosenFrom: 'task schema',
      reason: expect.stringMatching(/^every argument of the \d+ output functions is a span of the input, which the encoder student expresses$/),
    });
    expect(config).toEqual(parsePipelineConfig({}));
    expect(config).toEqual(parsePipelineConfig({ transfer: { student: { family: 'encoder' } } }));
  });

  test('decoder shape fields name the decoder: nothing is chosen', async () => {
    const input = { transfer: { student: { hiddenSize: 64, layers: 2, heads: 2, kvHeads: 1 } } };
    const { config, studentFamily } = await resolve(input);
    expect(studentFamily).toBeUndefined();
    expect(config.transfer.student).toMatchObject({ family: 'decoder', hiddenSize: 64 });
    expect(await resolveStudentFamily(parsePipelineConfig(input), input, resources())).toEqual({ config: parsePipelineConfig(input) });
  });

  test("a setting the chosen family refuses is named, with the family that was chosen and why", async () => {
    // MASSIVE gets the encoder, which has no dpo step.
    const err = await resolve({ transfer: { steps: ['sft', 'dpo'] } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect((err as Error).message).toMatch(
      /transfer\.steps\.1: "dpo" is a decoder step; the encoder student trains with "sft" only \(the config names no student family, and "encoder" was chosen from the task's schema: every argument .*; name transfer\.student\.family to choose another\)/,
    );
    // The router gets the decoder, which has it.
    const { config } = await resolve({ task: ROUTER_TASK, transfer: { steps: ['sft', 'dpo'] } });
    expect(config.transfer).toMatchObject({ steps: ['sft', 'dpo'], student: { family: 'decoder', base: 'smollm2-135m' } });
  });
});
