// The encoder student end to end on a real ONNX graph: a tiny random-weight BERT with intent and tag heads,
// exported by test/fixtures/make-encoder-fixture.py, checked against the PyTorch model and the Python tokenizer.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { readEnv } from '../config/env';
import { compactCallFormat, defineTask, type TaskSpec } from '../tasks/define';
import {
  allowedTagIndices,
  bestBioPath,
  bioSpans,
  EncoderStudent,
  type EncoderPrediction,
  loadStudent,
  parseBioTag,
  StudentModelError,
  viterbiBio,
} from '../runtime/student';

import { CALIBRATION_FILE, calibratedConfidence, fitCalibration, rawConfidence } from '../runtime/student/confidence';

const run = promisify(execFile);
const env = readEnv();

const INTENT_SLOTS: Record<string, string[]> = {
  alarm_set: ['time', 'date'],
  play_music: ['artist_name', 'song_name'],
  weather_query: ['place_name', 'date'],
  greet: [],
};
const UTTERANCES = [
  'wake me up at five am tomorrow',
  'Set an ALARM for seven thirty pm on Monday!',
  'play some music by the Beatles',
  "what's the weather in New York today?",
  'hello',
  'hi, please play Yesterday',
  'weather in São Paulo, London and Paris',
  'wake me up',
  'zzqx weatherly 日本 🎉',
  '',
  'set an alarm for five am tomorrow and play music by the beatles in london please',
];

interface Probe {
  text: string;
  ids: number[];
  offsets: [number, number][];
  special: number[];
  intent_logits: number[];
  tag_logits: number[][];
}

/** A task whose functions take the fixture's slots; `slot` makes each slot's schema (default: any string). */
function fixtureTask(slot: () => z.ZodType = () => z.string()): TaskSpec {
  return defineTask({
    name: 'encoder-fixture',
    systemPrompt: 'Answer with one call.',
    tools: {},
    functions: Object.fromEntries(
      Object.entries(INTENT_SLOTS).map(([name, slots]) => [
        name,
        { description: name, parameters: z.strictObject(Object.fromEntries(slots.map((s) => [s, z.union([slot(), z.array(slot()).min(2)]).optional()]))) },
      ]),
    ),
    entryTools: Object.keys(INTENT_SLOTS),
    maxSteps: 1,
    callFormat: compactCallFormat,
    input: () => '',
    gold: () => undefined,
    verify: () => ({ ok: true }),
    metrics: () => {
      throw new Error('not used');
    },
    dataset: { splits: ['train', 'dev', 'test'], load: async () => [] },
  });
}

const softmax = (logits: number[]) => {
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
};

let root: string;
let folder: string;
let probes: Probe[];

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'encoder-student-'));
  folder = path.join(root, 'student');
  await run(env.python, [path.join(env.projectRoot, 'test', 'fixtures', 'make-encoder-fixture.py'), folder], { cwd: env.projectRoot });
  probes = JSON.parse(await fs.readFile(path.join(folder, 'probes.json'), 'utf8'));
}, 120_000);

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('EncoderStudent on a real ONNX graph', () => {
  let student: EncoderStudent;
  const task = fixtureTask();

  beforeAll(async () => {
    const loaded = await loadStudent(folder, { task, threads: 1 });
    expect(loaded).toBeInstanceOf(EncoderStudent);
    student = loaded as EncoderStudent;
  });
  afterAll(async () => {
    await student?.release();
  });

  test('loadStudent picks the encoder family from supertiny.json', () => {
    expect(student.family).toBe('encoder');
    expect(path.basename(student.modelFile)).toBe('model.onnx');
  });

  test('token ids and character offsets equal the Python tokenizer\'s', () => {
    for (const probe of probes) {
      const encoded = student.tokenizer.encode(probe.text, 64);
      expect(encoded.ids).toEqual(probe.ids);
      const expected = probe.offsets.map(([start, end], j) => (probe.special[j] ? null : { start, end }));
      expect({ text: probe.text, offsets: encoded.offsets }).toEqual({ text: probe.text, offsets: expected });
    }
  });

  test('answers are PyTorch\'s: its intent and probability, and the constrained tags of its logits', async () => {
    const tags = student.labels.tags.map(parseBioTag);
    const predictions = await student.predictBatch(probes.map((p) => p.text), { batchSize: 8 });
    probes.forEach((probe, i) => {
      const intentProbs = softmax(probe.intent_logits);
      const intentIndex = intentProbs.indexOf(Math.max(...intentProbs));
      expect(predictions[i].intent).toBe(student.labels.intents[intentIndex]);
      expect(predictions[i].intentProbability).toBeCloseTo(intentProbs[intentIndex], 4);
      const allowed = allowedTagIndices(tags, new Set(INTENT_SLOTS[predictions[i].intent]));
      const content = probe.tag_logits.filter((_, j) => !probe.special[j]);
      const scores = content.flatMap((logits) => {
        const probs = softmax(logits);
        return allowed.map((k) => Math.log(probs[k]));
      });
      const spans = bioSpans(viterbiBio(scores, content.length, allowed.map((k) => tags[k])), allowed.map((k) => tags[k]));
      const offsets = probe.offsets.filter((_, j) => !probe.special[j]);
      expect(predictions[i].spans.map((s) => [s.slot, s.start, s.end])).toEqual(spans.map((s) => [s.slot, offsets[s.first][0], offsets[s.last][1]]));
    });
  });

  test('every answer is a call the task accepts, its values the input\'s own characters', async () => {
    const predictions = await student.predictBatch(UTTERANCES);
    for (const [i, p] of predictions.entries()) {
      expect(p.input).toBe(UTTERANCES[i]);
      expect(p.errors).toBeUndefined();
      expect(p.call).toBeDefined();
      expect(task.validateCall(p.call!)).toEqual({ ok: true });
      expect(p.call!.name).toBe(p.intent);
      expect(p.call!.args).toEqual(p.spans.map((s) => ({ key: s.slot, value: s.value })));
      for (const span of p.spans) {
        expect(INTENT_SLOTS[p.intent]).toContain(span.slot);
        expect(span.value).toBe(p.input.slice(span.start, span.end));
        expect(span.value).toBe(span.value.trim());
        expect(span.value.length).toBeGreaterThan(0);
      }
      for (let s = 1; s < p.spans.length; s++) expect(p.spans[s].start).toBeGreaterThanOrEqual(p.spans[s - 1].end);
      expect(p.confidence).toBeGreaterThan(0);
      expect(p.confidence).toBeLessThanOrEqual(p.intentProbability);
    }
    // The random heads are decisive enough to tag spans, so the checks above are not vacuous.
    expect(predictions.filter((p) => p.spans.length > 0).length).toBeGreaterThanOrEqual(3);
    expect(new Set(predictions.map((p) => p.intent)).size).toBeGreaterThanOrEqual(2);
  });

  test('a batch answers as single requests do (right padding is masked out)', async () => {
    const strip = (p: EncoderPrediction) => ({ call: p.call, spans: p.spans.map(({ probability: _p, ...s }) => s), intent: p.intent });
    const batched = await student.predictBatch(UTTERANCES, { batchSize: 4 });
    for (const [i, input] of UTTERANCES.entries()) {
      const single = await student.predict(input);
      expect(single.latencyMs).toBeGreaterThan(0);
      expect(strip(batched[i])).toEqual(strip(single));
      expect(batched[i].confidence).toBeCloseTo(single.confidence, 4);
    }
  });

  test('rejects a batch size that is not a positive integer', async () => {
    await expect(student.predictBatch(['hi'], { batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer/);
  });
});

describe('EncoderStudent with word_spans', () => {
  test('ties each word\'s tokens to one span or none: PyTorch\'s logits decoded with the word rule, no span inside a word', async () => {
    const dir = path.join(root, 'word-spans');
    await fs.cp(folder, dir, { recursive: true });
    const file = path.join(dir, 'supertiny.json');
    await fs.writeFile(file, JSON.stringify({ ...JSON.parse(await fs.readFile(file, 'utf8')), word_spans: true }));
    const student = (await loadStudent(dir, { task: fixtureTask(), threads: 1 })) as EncoderStudent;
    const plain = (await loadStudent(folder, { task: fixtureTask(), threads: 1 })) as EncoderStudent;
    try {
      const tags = student.labels.tags.map(parseBioTag);
      const texts = probes.map((p) => p.text);
      const [tied, free] = [await student.predictBatch(texts), await plain.predictBatch(texts)];
      let changed = 0;
      probes.forEach((probe, i) => {
        const allowed = allowedTagIndices(tags, new Set(INTENT_SLOTS[tied[i].intent]));
        const content = probe.tag_logits.filter((_, j) => !probe.special[j]);
        const scores = content.flatMap((logits) => allowed.map((k) => Math.log(softmax(logits)[k])));
        const offsets = probe.offsets.filter((_, j) => !probe.special[j]);
        const continues = offsets.map(([start], t) => t > 0 && start === offsets[t - 1][1]);
        const spans = bioSpans(bestBioPath(scores, content.length, allowed.map((k) => tags[k]), continues).path, allowed.map((k) => tags[k]));
        expect(tied[i].spans.map((s) => [s.slot, s.start, s.end])).toEqual(spans.map((s) => [s.slot, offsets[s.first][0], offsets[s.last][1]]));
        for (const span of tied[i].spans) {
          expect(span.start === 0 || /\s/.test(probe.text[span.start - 1])).toBe(true);
          expect(span.end === probe.text.length || /\s/.test(probe.text[span.end])).toBe(true);
        }
        if (JSON.stringify(tied[i].call) !== JSON.stringify(free[i].call)) changed++;
      });
      // The random heads tag pieces of words, so the rule changes some answers (the check above is not vacuous).
      expect(changed).toBeGreaterThan(0);
    } finally {
      await student.release();
      await plain.release();
    }
  });
});

describe('EncoderStudent with a calibration.json', () => {
  test('answers the same calls, its confidence the calibrated probability of its signals; without it, the raw confidence', async () => {
    const task = fixtureTask();
    const plain = (await loadStudent(folder, { task, threads: 1 })) as EncoderStudent;
    const answers = (await plain.predictBatch(UTTERANCES)) as EncoderPrediction[];
    await plain.release();
    for (const a of answers.filter((a) => a.call)) {
      expect(a.confidence).toBeCloseTo(rawConfidence(a.signals), 12);
      expect(a.signals.intentProbability).toBeCloseTo(a.intentProbability, 12);
      expect(a.signals.intentMargin).toBeGreaterThanOrEqual(0);
      expect(a.signals.leastTag).toBeLessThanOrEqual(Math.min(a.signals.leastSpanTag, a.signals.leastOutsideTag) + 1e-12);
      expect(a.signals.tokens > 0).toBe(a.input.trim().length > 0);
      expect(a.signals.arguments).toBe(a.call!.args.length);
    }
    // A calibration fitted on labels that make every other answer wrong: any fitted weights will do here.
    const rows = [...answers, ...answers, ...answers].filter((a) => a.call).map((a, i) => ({ signals: a.signals, correct: i % 2 === 0 }));
    const calibration = fitCalibration(rows, 'dev');
    const dir = path.join(root, 'calibrated');
    await fs.cp(folder, dir, { recursive: true });
    await fs.writeFile(path.join(dir, CALIBRATION_FILE), JSON.stringify(calibration));
    const calibrated = (await loadStudent(dir, { task, threads: 1 })) as EncoderStudent;
    try {
      expect(calibrated.calibration).toEqual(calibration);
      const again = (await calibrated.predictBatch(UTTERANCES)) as EncoderPrediction[];
      again.forEach((a, i) => {
        expect(a.call).toEqual(answers[i].call);
        expect(a.confidence).toBeCloseTo(a.call ? calibratedConfidence(calibration, a.signals) : 0, 12);
      });
    } finally {
      await calibrated.release();
    }
  });
});

describe('EncoderStudent answers the task rejects', () => {
  test('come back as errors without a call, as the decoder\'s do', async () => {
    // A task whose slots take one character at most: every answer with a longer span fails validation.
    const strict = fixtureTask(() => z.string().max(1));
    const student = await loadStudent(folder, { task: strict, threads: 1 });
    try {
      const predictions = (await student.predictBatch(UTTERANCES)) as EncoderPrediction[];
      const longSpan = (p: EncoderPrediction) => p.spans.some((s) => s.value.length > 1);
      expect(predictions.filter(longSpan).length).toBeGreaterThan(0);
      for (const p of predictions) {
        if (longSpan(p)) {
          expect(p.call).toBeUndefined();
          expect(p.confidence).toBe(0);
          expect(p.errors?.join('; ')).toMatch(/slot "\w+"/);
        } else expect(p.call?.name).toBe(p.intent);
      }
    } finally {
      await student.release();
    }
  });
});

describe('a broken encoder folder fails to load with an error naming the file and field', () => {
  async function brokenCopy(name: string, change: (dir: string) => Promise<void>): Promise<string> {
    const dir = path.join(root, name);
    await fs.cp(folder, dir, { recursive: true });
    await change(dir);
    return dir;
  }
  async function editLabels(dir: string, edit: (labels: Record<string, any>) => void) {
    const file = path.join(dir, 'supertiny.json');
    const labels = JSON.parse(await fs.readFile(file, 'utf8'));
    edit(labels);
    await fs.writeFile(file, JSON.stringify(labels));
  }
  async function loadError(dir: string, options = {}): Promise<StudentModelError> {
    const err = await loadStudent(dir, options).then(
      async (s) => {
        await s.release();
        throw new Error('loaded a broken folder');
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StudentModelError);
    return err as StudentModelError;
  }

  test('a calibration.json of another shape', async () => {
    const dir = await brokenCopy('bad-calibration', (d) => fs.writeFile(path.join(d, CALIBRATION_FILE), JSON.stringify({ format: 'supertiny-calibration/1', weights: [1] })));
    const err = await loadError(dir);
    expect(err.kind).toBe('io_mismatch');
    expect(err.message).toMatch(/calibration\.json is not a supertiny-calibration\/1 file/);
  });

  test('a missing tokenizer.json', async () => {
    const dir = await brokenCopy('no-tokenizer', (d) => fs.rm(path.join(d, 'tokenizer.json')));
    const err = await loadError(dir);
    expect(err.kind).toBe('missing_file');
    expect(err.message).toMatch(/has no tokenizer\.json/);
  });

  test('a missing model file', async () => {
    const err = await loadError(folder, { modelFile: 'model.int8.onnx' });
    expect(err.kind).toBe('missing_file');
    expect(err.message).toMatch(/has no model\.int8\.onnx/);
  });

  test.each([
    ['tags that do not start with O', (l: Record<string, any>) => (l.tags = [...l.tags.slice(1), 'O']), /supertiny\.json: field tags must start with "O"/],
    ['a max_length that is not a number', (l: Record<string, any>) => (l.max_length = '64'), /supertiny\.json: field max_length/],
    ['an intent without its slots', (l: Record<string, any>) => delete l.intent_slots.greet, /supertiny\.json: field intent_slots\.greet is missing/],
    ['an unknown format', (l: Record<string, any>) => (l.format = 'supertiny-encoder/9'), /supertiny\.json: field format/],
    ['an unknown family', (l: Record<string, any>) => (l.family = 'seq2seq'), /supertiny\.json: field family/],
    ['a word_spans that is not a boolean', (l: Record<string, any>) => (l.word_spans = 'yes'), /supertiny\.json: field word_spans/],
  ])('%s', async (name, edit, message) => {
    const dir = await brokenCopy(name.replace(/\W+/g, '-'), (d) => editLabels(d, edit));
    const err = await loadError(dir);
    expect(err.kind).toBe('invalid_file');
    expect(err.message).toMatch(message);
    expect(err.file).toBe(path.join(dir, 'supertiny.json'));
  });

  test('labels for another task', async () => {
    const dir = await brokenCopy('other-task', (d) => editLabels(d, (l) => (l.intent_slots.greet = ['mood'])));
    const err = await loadError(dir, { task: fixtureTask() });
    expect(err.kind).toBe('io_mismatch');
    expect(err.message).toMatch(/intent_slots\.greet names mood, which function "greet" does not take/);
  });

  test('label spaces that do not match the graph\'s outputs', async () => {
    const dir = await brokenCopy('extra-intent', (d) =>
      editLabels(d, (l) => {
        l.intents.push('goodbye');
        l.intent_slots.goodbye = [];
      }),
    );
    const student = await loadStudent(dir);
    try {
      await expect(student.predict('hello')).rejects.toThrow(/output intent_logits is float32 \[1, 4\], expected float32 \[1, 5\] \(5 intents in supertiny\.json\)/);
    } finally {
      await student.release();
    }
  });
});

describe('EncoderStudent with value heads (enum, boolean and integer arguments)', () => {
  // make-encoder-fixture.py --value-heads: alarm_set.loud (boolean, optional), play_music.volume (1..3,
  // optional), weather_query.unit (enum, required).
  const VALUE_ARGS: Record<string, Record<string, z.ZodType>> = {
    alarm_set: { loud: z.enum(['true', 'false']).optional() },
    play_music: { volume: z.enum(['1', '2', '3']).optional() },
    weather_query: { unit: z.enum(['celsius', 'fahrenheit', 'kelvin']) },
    greet: {},
  };
  const valueTask = defineTask({
    name: 'encoder-value-fixture',
    systemPrompt: 'Answer with one call.',
    tools: {},
    functions: Object.fromEntries(
      Object.entries(INTENT_SLOTS).map(([name, slots]) => [
        name,
        {
          description: name,
          parameters: z.strictObject({ ...Object.fromEntries(slots.map((s) => [s, z.union([z.string(), z.array(z.string()).min(2)]).optional()])), ...VALUE_ARGS[name] }),
        },
      ]),
    ),
    entryTools: Object.keys(INTENT_SLOTS),
    maxSteps: 1,
    callFormat: compactCallFormat,
    input: () => '',
    gold: () => undefined,
    verify: () => ({ ok: true }),
    metrics: () => {
      throw new Error('not used');
    },
    dataset: { splits: ['train', 'dev', 'test'], load: async () => [] },
  });
  let valueFolder: string;
  let valueProbes: (Probe & { value_logits: number[] })[];
  let student: EncoderStudent;

  beforeAll(async () => {
    valueFolder = path.join(root, 'value-student');
    await run(env.python, [path.join(env.projectRoot, 'test', 'fixtures', 'make-encoder-fixture.py'), valueFolder, '--value-heads', '--seed', '3'], { cwd: env.projectRoot });
    valueProbes = JSON.parse(await fs.readFile(path.join(valueFolder, 'probes.json'), 'utf8'));
    student = (await loadStudent(valueFolder, { task: valueTask, threads: 1 })) as EncoderStudent;
  }, 120_000);
  afterAll(async () => {
    await student?.release();
  });

  test('the value heads\' answers are PyTorch\'s logits decoded by the rule: the intent\'s heads only, a required one never absent', async () => {
    const heads = student.labels.value_heads!;
    expect(heads.map((h) => `${h.function}.${h.argument}@${h.offset}`)).toEqual(['alarm_set.loud@0', 'play_music.volume@3', 'weather_query.unit@7']);
    const predictions = await student.predictBatch(valueProbes.map((p) => p.text), { batchSize: 8 });
    for (const [i, probe] of valueProbes.entries()) {
      const intent = student.labels.intents[probe.intent_logits.indexOf(Math.max(...probe.intent_logits))];
      expect(predictions[i].intent).toBe(intent);
      const expected: [string, string][] = [];
      for (const head of heads.filter((h) => h.function === intent)) {
        const column = probe.value_logits.slice(head.offset, head.offset + 1 + head.values.length);
        const best = head.required ? 1 + column.slice(1).indexOf(Math.max(...column.slice(1))) : column.indexOf(Math.max(...column));
        if (best > 0) expected.push([head.argument, head.values[best - 1]]);
        const probs = softmax(column);
        const chosen = predictions[i].values.find((v) => v.argument === head.argument);
        if (chosen) expect(chosen.probability).toBeCloseTo(probs[best], 4);
      }
      expect(predictions[i].values.map((v) => [v.argument, v.value])).toEqual(expected);
    }
    expect(predictions.some((p) => p.values.length > 0)).toBe(true);
  });

  test('every answer is a call the task accepts, its value arguments among the schema\'s values', async () => {
    const inputs = [...UTTERANCES, ...valueProbes.map((p) => p.text), 'weather tomorrow', 'play music please', 'set an alarm', 'what is the weather in paris'];
    const predictions = await student.predictBatch(inputs);
    for (const p of predictions) {
      expect(p.errors).toBeUndefined();
      expect(valueTask.validateCall(p.call!)).toEqual({ ok: true });
      expect(p.call!.args).toEqual([...p.spans.map((s) => ({ key: s.slot, value: s.value })), ...p.values.map((v) => ({ key: v.argument, value: v.value }))]);
      if (p.intent === 'weather_query') expect(p.values.map((v) => v.argument)).toEqual(['unit']);
      for (const v of p.values) expect(Object.keys(VALUE_ARGS[p.intent])).toContain(v.argument);
      expect(p.confidence).toBeLessThanOrEqual(Math.min(p.intentProbability, ...p.values.map((v) => v.probability)) + 1e-12);
    }
    // The random heads vary enough that the checks above see value arguments, not only empty calls.
    expect(predictions.filter((p) => p.values.length > 0).length).toBeGreaterThanOrEqual(3);
  });

  test('labels with value heads for a graph without value_logits fail at load, naming the output', async () => {
    const dir = path.join(root, 'heads-without-output');
    await fs.cp(folder, dir, { recursive: true });
    const file = path.join(dir, 'supertiny.json');
    const labels = JSON.parse(await fs.readFile(file, 'utf8'));
    labels.value_heads = [{ function: 'greet', argument: 'loud', kind: 'boolean', values: ['false', 'true'], required: false, offset: 0 }];
    await fs.writeFile(file, JSON.stringify(labels));
    const err = await loadStudent(dir).then(
      async (s) => {
        await s.release();
        throw new Error('loaded');
      },
      (e: unknown) => e as StudentModelError,
    );
    expect(err).toBeInstanceOf(StudentModelError);
    expect(err.message).toMatch(/missing outputs value_logits/);
    labels.value_heads[0].offset = 2;
    await fs.writeFile(file, JSON.stringify(labels));
    await expect(loadStudent(dir)).rejects.toThrow(/field value_heads\.0\.offset must be 0/);
  });
});
