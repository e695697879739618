// The student runtime against a real exported student: a tiny model built by the trainer CLI
// (tokenizer, init, a few sft steps, export, quantize, predict), cached by a hash of the trainer's source.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { readEnv } from '../config/env';
import { printCall } from '../tasks/call-format';
import { compactCallFormat, defineTask } from '../tasks/define';
import { callMetrics } from '../tasks/metrics';
import { loadMassiveTask, massiveGoldCall, MassiveExample, MassiveTask, verifyMassiveCall } from '../tasks/massive';
import type * as Student from '../runtime/student';
import { cachedBuild, modelFolder, sftLine, trainerCommand } from './support/trainer-run';
import { requireStudentRuntime } from './support/student-runtime';
import { ThreadedStudent } from '../runtime/serve/student-thread';
import { CALIBRATION_FEATURES, CALIBRATION_FILE, calibratedDecoderConfidence, fitDecoderCalibration, rawDecoderConfidence } from '../runtime/student/confidence';

const { CallGrammar, loadStudent, DecoderStudent, StudentModelError, StudentRequestError, StudentTokenizer } = requireStudentRuntime();

const run = promisify(execFile);
const env = readEnv();

const BUILD = {
  version: 1,
  trainExamples: 1200,
  devExamples: 100,
  tokenizer: { vocab_size: 1024 },
  init: { hidden_size: 64, num_layers: 2, num_heads: 4, num_kv_heads: 2, intermediate_size: 128 },
  sft: { max_steps: 200, batch_size: 16, learning_rate: 0.01, max_length: 64, save_steps: 1000, logging_steps: 50, num_threads: 2 },
  predict: { batch_size: 32, max_new_tokens: 64, num_threads: 1 },
};
const TOKENIZER_PROBES = ['héllo wörld ☃ 日本 🎉  two  spaces\tand a tab', 'x<|eos|>y', 'set_alarm(time="five am", date="this week")<|eos|>'];

interface BuiltStudent {
  fp32: string;
  int8: string;
  /** The trainer's `predict` on the dev utterances, by utterance index. */
  trainerPredictions: string[];
  /** Token ids of HF `tokenizers` (Python) for the probe texts. */
  pythonIds: { text: string; ids: number[] }[];
}

/** The trainer's student (tokenizer, init, sft, export, quantize, predict), with its predictions and Python token ids. */
function buildStudent(train: MassiveExample[], dev: MassiveExample[]): Promise<BuiltStudent> {
  return cachedBuild('supertiny-runtime-test', BUILD, async (staging) => {
    // A slot type repeated in one utterance has no single-valued arguments object: leave those out.
    const sftExamples = train.filter((e) => new Set(e.slots.map((s) => s.type)).size === e.slots.length).slice(0, BUILD.trainExamples);
    const sftFile = path.join(staging, 'sft.jsonl');
    await fs.writeFile(sftFile, sftExamples.map(sftLine).join('\n') + '\n');
    const devFile = path.join(staging, 'dev.jsonl');
    await fs.writeFile(devFile, dev.map((e, i) => JSON.stringify({ id: i, utterance: e.utterance })).join('\n') + '\n');

    const tokenizer = await trainerCommand('tokenizer', staging, { data: sftFile, ...BUILD.tokenizer });
    const init = await trainerCommand('init', staging, { tokenizer: tokenizer.tokenizer, ...BUILD.init });
    const sft = await trainerCommand('sft', staging, { model: init.model, data: sftFile, ...BUILD.sft });
    const exportAndQuantize = async () => {
      const fp32 = await modelFolder(await trainerCommand('export', staging, { model: sft.model, num_threads: 1 }));
      return [fp32, await modelFolder(await trainerCommand('quantize', staging, { model: fp32 }))];
    };
    const [[fp32Folder, int8Folder], predicted] = await Promise.all([
      exportAndQuantize(),
      trainerCommand('predict', staging, { model: sft.model, data: devFile, ...BUILD.predict }),
    ]);

    const probeTexts = [...dev.map((e) => `<|bos|>${e.utterance}<|sep|>`), ...TOKENIZER_PROBES];
    const probeFile = path.join(staging, 'probes.json');
    await fs.writeFile(probeFile, JSON.stringify(probeTexts));
    const { stdout } = await run(env.python, [
      '-c',
      'import json,sys\nfrom tokenizers import Tokenizer\nt=Tokenizer.from_file(sys.argv[1])\n' +
        'print(json.dumps([{"text":x,"ids":t.encode(x,add_special_tokens=False).ids} for x in json.load(open(sys.argv[2]))]))',
      tokenizer.tokenizer_json,
      probeFile,
    ]);

    const predictions = (await fs.readFile(predicted.predictions, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { id: number; prediction: string });
    return {
      fp32: fp32Folder,
      int8: int8Folder,
      trainerPredictions: predictions.sort((a, b) => a.id - b.id).map((p) => p.prediction),
      pythonIds: JSON.parse(stdout),
    };
  });
}

let massive: MassiveTask;
let dev: MassiveExample[];
let built: BuiltStudent;
let student: Student.DecoderStudent;

beforeAll(async () => {
  massive = await loadMassiveTask();
  dev = (await massive.task.dataset.load('dev')).slice(0, BUILD.devExamples);
  built = await buildStudent(await massive.task.dataset.load('train'), dev);
  student = await DecoderStudent.load(built.fp32, { task: massive.task, threads: 1 });
}, 600_000);

afterAll(async () => {
  await student?.release();
});

const utterances = () => dev.map((e) => e.utterance);

describe('student tokenizer', () => {
  test('encodes exactly as HF tokenizers (Python) and decodes back to the same text', async () => {
    const tokenizer = await StudentTokenizer.load(built.fp32);
    for (const { text, ids } of built.pythonIds) {
      expect(tokenizer.encode(text)).toEqual(ids);
    }
    for (const text of [...utterances(), TOKENIZER_PROBES[0]]) {
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    }
  });

  test('every non-special token has the bytes it decodes to', async () => {
    const tokenizer = await StudentTokenizer.load(built.fp32);
    const bytes = tokenizer.tokenBytes!;
    const ascii = bytes.map((b, id) => ({ b, id })).filter(({ b }) => b && b.every((x) => x < 0x80));
    expect(ascii.length).toBeGreaterThan(500);
    for (const { b, id } of ascii) expect(tokenizer.decode([id])).toBe(new TextDecoder().decode(b));
    expect(bytes[tokenizer.requireTokenId('<|eos|>', 'eos')]).toBeUndefined();
  });
});

describe('pre-token boundaries for fast-forward', () => {
  test('a text ends a pre-token only if it does before every character that may follow', async () => {
    const tokenizer = await StudentTokenizer.load(built.fp32);
    // A run of symbols is one pre-token, as is a run of letters.
    expect(tokenizer.endsPreToken('f(x="', ['1', 'a'])).toBe(true);
    expect(tokenizer.endsPreToken('f(x="', ['a', '('])).toBe(false);
    expect(tokenizer.endsPreToken('f(xy', ['z'])).toBe(false);
    // An added token (this tokenizer has "play_music(") is split off across the end, whatever the pre-tokens.
    expect(tokenizer.endsPreToken('x', ['1'])).toBe(true);
    expect(tokenizer.endsPreToken('play_mu', ['1'])).toBe(false);
    expect(tokenizer.endsPreToken('f(x="1<|eo', ['1'])).toBe(false);
  });
});

describe('student decoding', () => {
  let unconstrained: Student.StudentPrediction[];
  let constrained: Student.StudentPrediction[];
  beforeAll(async () => {
    unconstrained = await student.predictBatch(utterances(), { constrained: false, batchSize: 32 });
    constrained = await student.predictBatch(utterances(), { batchSize: 32 });
  });

  test("unconstrained greedy decoding reproduces the trainer's predict on 100 dev utterances", () => {
    const mismatches = dev.map((e, i) => ({ utterance: e.utterance, ts: unconstrained[i].text, python: built.trainerPredictions[i] })).filter((m) => m.ts !== m.python);
    expect(mismatches).toEqual([]);
  });

  test('a constrained answer is always a call the task accepts, with slot values that are spans of the input', () => {
    for (const [i, prediction] of constrained.entries()) {
      expect(prediction.stopReason).toBe('eos');
      expect(prediction.errors).toBeUndefined();
      const call = prediction.call!;
      expect(printCall(call)).toBe(prediction.text);
      expect(massive.task.validateCall(call)).toEqual({ ok: true });
      expect(verifyMassiveCall(call, dev[i].utterance)).toEqual({ ok: true });
    }
    const differs = constrained.filter((p, i) => p.text !== unconstrained[i].text).length;
    const validUnconstrained = unconstrained.filter((p) => p.call).length;
    console.log(`constrained differs from unconstrained on ${differs}/${dev.length}; unconstrained schema-valid ${validUnconstrained}/${dev.length}`);
  });

  test('with free-text slot values the constrained answer is still schema-valid', async () => {
    const predictions = await student.predictBatch(utterances().slice(0, 30), { slotValues: 'any', batchSize: 16 });
    for (const p of predictions) expect(p.call && massive.task.validateCall(p.call).ok).toBe(true);
  });

  test('batched decoding gives the same tokens as one request at a time', async () => {
    const sample = utterances().slice(0, 24);
    for (const constrainedMode of [false, true]) {
      const batched = await student.predictBatch(sample, { constrained: constrainedMode, batchSize: 7 });
      for (const [i, utterance] of sample.entries()) {
        const single = await student.predict(utterance, { constrained: constrainedMode });
        expect(single.tokenIds).toEqual(batched[i].tokenIds);
        expect(single.latencyMs).toBeGreaterThan(0);
      }
    }
  });

  test('an answer with a call has a confidence in (0, 1], one without has 0', () => {
    for (const p of [...constrained, ...unconstrained]) {
      if (p.call) expect(p.confidence > 0 && p.confidence <= 1).toBe(true);
      else expect(p.confidence).toBe(0);
    }
    expect(unconstrained.some((p) => p.confidence < 1)).toBe(true);
  });

  describe('fast-forward over grammar-forced tokens', () => {
    const fixtureTask = (name: string, functions: Record<string, z.ZodObject>, spanArguments: Record<string, string[]>) =>
      defineTask({
        name,
        systemPrompt: 'Answer with one call.',
        tools: {},
        functions: Object.fromEntries(Object.entries(functions).map(([fn, parameters]) => [fn, { description: fn, parameters }])),
        entryTools: Object.keys(functions),
        maxSteps: 1,
        callFormat: compactCallFormat,
        input: (e: { id: string; split: 'dev'; text: string }) => e.text,
        gold: () => undefined,
        verify: () => ({ ok: true }),
        spanArguments,
        metrics: callMetrics,
        dataset: { splits: ['train', 'dev', 'test'], load: async () => [] },
      });
    // A one-function router whose call this tokenizer splits into many tokens, most of them forced.
    const router = fixtureTask(
      'router-fixture',
      {
        route_request: z.strictObject({
          domain: z.enum(['alarm', 'audio', 'calendar', 'cooking', 'datetime', 'weather']),
          action: z.enum(['set', 'query', 'remove', 'play']),
          entity_count: z.enum(['0', '1', '2', '3']),
          first_entity: z.string().optional(),
        }),
      },
      { route_request: ['first_entity'] },
    );
    let routing: Student.DecoderStudent;
    /** MASSIVE's functions without arguments: this student's answers are such calls, `)` forced after the name. */
    let intents: Student.DecoderStudent;
    beforeAll(async () => {
      const noArguments = Object.fromEntries(Object.keys(massive.task.functions).map((name) => [name, z.strictObject({})]));
      [routing, intents] = await Promise.all([
        DecoderStudent.load(built.fp32, { task: router, threads: 1 }),
        DecoderStudent.load(built.fp32, { task: fixtureTask('intents-fixture', noArguments, {}), threads: 1 }),
      ]);
    });
    afterAll(async () => {
      await Promise.all([routing?.release(), intents?.release()]);
    });
    const passes = (ps: Student.StudentPrediction[]) => ps.reduce((n, p) => n + p.forwardPasses, 0);

    test('where the forced tokens are those the model would choose, the answers and confidences are the same, in fewer passes', async () => {
      // The confidences agree only if every forced token went into the KV cache and into the geometric mean.
      const sample = utterances().slice(0, 40);
      const stepwise = await intents.predictBatch(sample, { fastForward: false, batchSize: 16 });
      const forwarded = await intents.predictBatch(sample, { batchSize: 16 });
      for (const [i, p] of forwarded.entries()) {
        expect(p.call).toBeDefined();
        expect(p.call).toEqual(stepwise[i].call);
        expect(p.tokenIds).toEqual(stepwise[i].tokenIds);
        expect(p.confidence).toBeCloseTo(stepwise[i].confidence, 4);
        expect(p.forwardPasses).toBeLessThan(stepwise[i].forwardPasses);
        expect(stepwise[i].forwardPasses).toBe(stepwise[i].tokenIds.length + 1);
      }
    });

    test('a call that is mostly forced takes far fewer passes and is still a call the task accepts, with an honest confidence', async () => {
      const sample = utterances().slice(0, 24);
      const stepwise = await routing.predictBatch(sample, { fastForward: false, batchSize: 8 });
      const forwarded = await routing.predictBatch(sample, { batchSize: 8 });
      for (const p of forwarded) {
        expect(p.stopReason).toBe('eos');
        expect(router.validateCall(p.call!)).toEqual({ ok: true });
        expect(Number.isFinite(p.confidence) && p.confidence > 0 && p.confidence <= 1).toBe(true);
      }
      expect(passes(forwarded)).toBeLessThan(0.6 * passes(stepwise));
      console.log(`router fixture, ${sample.length} calls: ${passes(stepwise)} forward passes token by token, ${passes(forwarded)} fast-forwarded`);
    });

    test('drafts change the passes, not the answers: the same tokens and confidences as without a draft', async () => {
      const sample = utterances().slice(0, 24);
      const plain = await routing.predictBatch(sample, { draft: false, batchSize: 8 });
      const drafted = await routing.predictBatch(sample, { batchSize: 8 });
      for (const [i, p] of drafted.entries()) {
        expect(p.tokenIds).toEqual(plain[i].tokenIds);
        expect(p.call).toEqual(plain[i].call);
        expect(p.confidence).toBeCloseTo(plain[i].confidence, 4);
        // A confirmed draft token was the model's choice, as it is without a draft: the signals count it so.
        expect(p.signals?.chosenTokens).toBe(plain[i].signals?.chosenTokens);
        expect(p.signals?.leastChosenLogProb ?? 0).toBeCloseTo(plain[i].signals?.leastChosenLogProb ?? 0, 4);
        expect(p.forwardPasses).toBeLessThanOrEqual(plain[i].forwardPasses);
        expect(p.acceptedDraftTokens).toBeLessThanOrEqual(p.draftedTokens);
        expect(plain[i].draftedTokens).toBe(0);
      }
      const confirmed = drafted.reduce((n, p) => n + p.acceptedDraftTokens, 0);
      expect(confirmed).toBeGreaterThan(0);
      expect(passes(drafted)).toBeLessThan(passes(plain));
      console.log(`router fixture, ${sample.length} calls: ${passes(plain)} forward passes without a draft, ${passes(drafted)} with (${confirmed} draft tokens confirmed)`);
    });

    test("remembered values make a repeated answer cheaper; without memory the answers are the same", async () => {
      const [remembering, forgetting] = await Promise.all([
        DecoderStudent.load(built.fp32, { task: router, threads: 1 }),
        DecoderStudent.load(built.fp32, { task: router, threads: 1, rememberValues: false }),
      ]);
      try {
        const utterance = utterances()[3];
        const first = await remembering.predict(utterance);
        const again = await remembering.predict(utterance);
        const forgot = await forgetting.predict(utterance);
        expect(again.tokenIds).toEqual(first.tokenIds);
        expect(forgot.tokenIds).toEqual(first.tokenIds);
        expect(again.forwardPasses).toBeLessThan(first.forwardPasses);
        expect((await forgetting.predict(utterance)).forwardPasses).toBe(forgot.forwardPasses);
      } finally {
        await Promise.all([remembering.release(), forgetting.release()]);
      }
    });

    test("serve's worker thread takes rememberValues (--no-value-memory): then a repeated request costs the same passes", async () => {
      const task = { name: 'massive', files: { data: env.massivePath } };
      const [remembering, forgetting] = await Promise.all([
        ThreadedStudent.load({ folder: built.fp32, task, threads: 1 }),
        ThreadedStudent.load({ folder: built.fp32, task, threads: 1, rememberValues: false }),
      ]);
      const passesOf = async (student: ThreadedStudent, input: string) => ((await student.predictBatch([input]))[0] as Student.StudentPrediction).forwardPasses;
      try {
        let cheaper = 0;
        // Utterances whose answers have arguments (this tiny student gives few): values are what the memory holds.
        const withValues = utterances().filter((_, i) => (constrained[i].call?.args.length ?? 0) > 0);
        expect(withValues.length).toBeGreaterThan(0);
        for (const utterance of withValues.slice(0, 8)) {
          const [first, again] = [await passesOf(remembering, utterance), await passesOf(remembering, utterance)];
          if (again < first) cheaper++;
          expect(again).toBeLessThanOrEqual(first);
          expect(await passesOf(forgetting, utterance)).toBe(await passesOf(forgetting, utterance));
        }
        expect(cheaper).toBeGreaterThan(0);
      } finally {
        await Promise.all([remembering.release(), forgetting.release()]);
      }
    });

    test('with drafts, maxNewTokens still bounds the answer, and a bad draft size is a request error', async () => {
      for (const limit of [1, 3, 6]) {
        const drafted = await routing.predict(utterances()[0], { maxNewTokens: limit });
        const plain = await routing.predict(utterances()[0], { maxNewTokens: limit, draft: false });
        expect(drafted.tokenIds).toEqual(plain.tokenIds);
        expect(drafted.tokenIds.length).toBeLessThanOrEqual(limit);
        expect(drafted.stopReason).toBe('max_new_tokens');
      }
      await expect(routing.predict(utterances()[0], { draftTokens: -1 })).rejects.toThrow(/draftTokens must be a non-negative integer/);
    });

    test('batched, rows forcing different numbers of tokens decode as they would alone', async () => {
      const sample = utterances().slice(0, 14);
      const batched = await routing.predictBatch(sample, { batchSize: 7 });
      for (const [i, utterance] of sample.entries()) {
        const single = await routing.predict(utterance);
        expect(single.tokenIds).toEqual(batched[i].tokenIds);
        expect(single.confidence).toBeCloseTo(batched[i].confidence, 4);
      }
    });
  });

  test("an answer's signals: the raw confidence is the geometric mean of its tokens' probabilities, the least at most the mean", () => {
    for (const p of [...constrained, ...unconstrained].filter((p) => p.call)) {
      const s = p.signals!;
      expect(p.confidence).toBeCloseTo(rawDecoderConfidence(s), 12);
      expect(s.tokens).toBe(p.tokenIds.length + (p.stopReason === 'eos' ? 1 : 0));
      expect(s.chosenTokens).toBeGreaterThan(0);
      expect(s.chosenTokens).toBeLessThanOrEqual(s.tokens);
      expect(s.leastLogProb).toBeLessThanOrEqual(s.meanLogProb + 1e-9);
      expect(s.leastLogProb).toBeLessThanOrEqual(s.leastChosenLogProb);
      expect(s.arguments).toBe(p.call!.args.length);
      expect(s.promptTokens).toBeGreaterThan(2);
    }
    // Unconstrained, every token is the model's own best, so each lead is >= 0; constrained, the grammar may overrule it.
    for (const p of unconstrained.filter((p) => p.call)) expect(p.signals!.leastChosenMargin).toBeGreaterThanOrEqual(0);
    for (const p of constrained.filter((p) => !p.call)) expect(p.signals).toBeUndefined();
  });

  test("with a calibration.json the same calls, the confidence the calibrated probability of the signals; an encoder's is refused", async () => {
    // A calibration fitted on labels that make every other answer wrong: any fitted weights will do here.
    const rows = [...constrained, ...constrained, ...constrained].filter((p) => p.call).map((p, i) => ({ signals: p.signals!, correct: i % 2 === 0 }));
    const calibration = fitDecoderCalibration(rows, 'dev');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'decoder-calibrated-'));
    try {
      await fs.cp(built.fp32, dir, { recursive: true });
      await fs.writeFile(path.join(dir, CALIBRATION_FILE), JSON.stringify(calibration));
      const calibrated = await DecoderStudent.load(dir, { task: massive.task, threads: 1 });
      try {
        expect(calibrated.calibration).toEqual(calibration);
        const sample = utterances().slice(0, 16);
        const again = await calibrated.predictBatch(sample, { batchSize: 8 });
        again.forEach((p, i) => {
          expect(p.call).toEqual(constrained[i].call);
          expect(p.confidence).toBeCloseTo(p.call ? calibratedDecoderConfidence(calibration, p.signals!) : 0, 12);
        });
      } finally {
        await calibrated.release();
      }
      // An encoder's calibration (other features) in a decoder folder is an error naming the file, not a silent raw confidence.
      const encoderCalibration = { ...calibration, features: CALIBRATION_FEATURES.map(([name]) => name) };
      await fs.writeFile(path.join(dir, CALIBRATION_FILE), JSON.stringify(encoderCalibration));
      await expect(DecoderStudent.load(dir, { task: massive.task, threads: 1 })).rejects.toThrow(/calibration\.json is not a supertiny-calibration\/1 file over the features log_neg_mean_log_prob/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  test('loadStudent gives this decoder for a folder without a family', async () => {
    const loaded = await loadStudent(built.fp32, { task: massive.task, threads: 1 });
    try {
      expect(loaded).toBeInstanceOf(DecoderStudent);
      expect(loaded.family).toBe('decoder');
      expect((await loaded.predict(dev[0].utterance)).call).toEqual(constrained[0].call);
    } finally {
      await loaded.release();
    }
  });

  test('decoding stops at maxNewTokens', async () => {
    const prediction = await student.predict(dev[0].utterance, { constrained: false, maxNewTokens: 2 });
    expect(prediction.tokenIds).toHaveLength(2);
    expect(prediction.stopReason).toBe('max_new_tokens');
  });

  test('the constraint allows every schema-valid gold answer of the dev utterances', () => {
    const grammar = new CallGrammar(massive.task, 'spans');
    const gold = dev.map((e) => ({ e, call: massiveGoldCall(e) })).filter(({ call }) => massive.task.validateCall(call).ok);
    expect(gold.length).toBeGreaterThan(90);
    for (const { e, call } of gold) {
      const prefix = grammar.start(e.utterance);
      const text = new TextEncoder().encode(printCall(call));
      expect(prefix.accepts(text)).toBe(true);
      prefix.advance(text);
      expect(prefix.complete).toBe(true);
    }
  });
});

describe('int8 student', () => {
  test('loads and decodes schema-valid calls, from a smaller file', async () => {
    const int8 = await DecoderStudent.load(built.int8, { task: massive.task, threads: 1 });
    try {
      const predictions = await int8.predictBatch(utterances().slice(0, 20), { batchSize: 10 });
      for (const p of predictions) expect(p.call).toBeDefined();
      const [fp32Bytes, int8Bytes] = await Promise.all([built.fp32, built.int8].map(async (d) => (await fs.stat(path.join(d, 'model.onnx'))).size));
      expect(int8Bytes).toBeLessThan(fp32Bytes);
    } finally {
      await int8.release();
    }
  });
});

describe('loading errors', () => {
  let broken: string;
  beforeEach(async () => {
    broken = await fs.mkdtemp(path.join(os.tmpdir(), 'student-broken-'));
    await fs.cp(built.fp32, broken, { recursive: true });
  });
  afterEach(async () => {
    await fs.rm(broken, { recursive: true, force: true });
  });

  test('a missing folder or file is an error naming it', async () => {
    await expect(DecoderStudent.load(path.join(broken, 'nope'))).rejects.toThrow(/folder not found/);
    await fs.rm(path.join(broken, 'tokenizer.json'));
    await expect(DecoderStudent.load(broken)).rejects.toMatchObject({ kind: 'missing_file', file: path.join(broken, 'tokenizer.json') });
    await expect(DecoderStudent.load(built.fp32, { modelFile: 'model.int4.onnx' })).rejects.toThrow(/no model\.int4\.onnx/);
  });

  test('an I/O description that does not match the graph names the mismatched tensors', async () => {
    const ioFile = path.join(broken, 'onnx_io.json');
    const io = JSON.parse(await fs.readFile(ioFile, 'utf8'));
    await fs.writeFile(ioFile, JSON.stringify({ ...io, num_layers: io.num_layers + 1 }));
    const error = await DecoderStudent.load(broken).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StudentModelError);
    expect((error as Student.StudentModelError).kind).toBe('io_mismatch');
    expect((error as Error).message).toContain(`missing inputs past_key_values.${io.num_layers}.key`);

    await fs.writeFile(ioFile, JSON.stringify({ ...io, num_kv_heads: io.num_kv_heads + 1 }));
    await expect(DecoderStudent.load(broken)).rejects.toThrow(/past_key_values\.0\.key has shape/);
  });

  test('constrained decoding without a task is a request error', async () => {
    const plain = await DecoderStudent.load(built.fp32, { threads: 1 });
    try {
      await expect(plain.predict('hello', { constrained: true })).rejects.toBeInstanceOf(StudentRequestError);
      expect((await plain.predict('hello')).text).toEqual(expect.any(String));
    } finally {
      await plain.release();
    }
  });
});
