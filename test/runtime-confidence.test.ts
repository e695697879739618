// The encoder's calibrated confidence: a logistic regression of exact match on the decoder's signals, fitted on
// dev, read from calibration.json in the model folder. Pure logic here; the runtime tests load real folders.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CALIBRATION_FEATURES,
  CALIBRATION_FILE,
  calibratedConfidence,
  expectedCalibrationError,
  fitCalibration,
  fitLogistic,
  logisticProbability,
  rawConfidence,
  readCalibration,
  type EncoderSignals,
  calibratedDecoderConfidence,
  DECODER_CALIBRATION_FEATURES,
  DECODER_SIGNAL_FEATURES,
  type DecoderSignals,
  fitDecoderCalibration,
  rawDecoderConfidence,
} from '../runtime/student/confidence';
import { cascadeCurve, shareCurve } from '../activities/evaluate/cascade';

/** A seeded generator, so the synthetic answers are the same on every run. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function signals(over: Partial<EncoderSignals> = {}): EncoderSignals {
  return { intentProbability: 0.9, intentMargin: 0.8, intentEntropy: 0.3, leastTag: 0.9, meanLogTag: -0.05, leastTagMargin: 0.8, leastSpanTag: 0.9, leastOutsideTag: 0.95, leastValue: 1, tokens: 8, arguments: 1, ...over };
}

/**
 * Answers whose correctness depends on a weak span tag far more than on the intent: the raw confidence (intent
 * times least tag) sees part of it, a fitted calibration should rank errors better.
 */
function synthetic(n: number, seed: number) {
  const rand = random(seed);
  return Array.from({ length: n }, () => {
    const span = 0.3 + 0.7 * rand();
    const intent = 0.5 + 0.5 * rand();
    const outside = 0.6 + 0.4 * rand();
    const s = signals({ intentProbability: intent, intentMargin: intent - (1 - intent) / 2, leastSpanTag: span, leastOutsideTag: outside, leastTag: Math.min(span, outside) });
    const p = 1 / (1 + Math.exp(-(12 * (span - 0.65) + 2 * (intent - 0.75))));
    return { signals: s, correct: rand() < p };
  });
}

describe('fitCalibration', () => {
  const train = synthetic(2000, 1);
  const unseen = synthetic(2000, 2);
  const calibration = fitCalibration(train, 'dev');

  test('is deterministic: the same answers give the same weights', () => {
    expect(fitCalibration(train, 'dev')).toEqual(calibration);
    expect(calibration.features).toEqual(CALIBRATION_FEATURES.map(([name]) => name));
    expect(calibration.fitted).toMatchObject({ split: 'dev', examples: 2000 });
  });

  test('is calibrated on unseen answers, and ranks errors better than the raw confidence', () => {
    const calibrated = unseen.map((r) => ({ confidence: calibratedConfidence(calibration, r.signals), correct: r.correct }));
    const raw = unseen.map((r) => ({ confidence: rawConfidence(r.signals), correct: r.correct }));
    expect(expectedCalibrationError(calibrated)).toBeLessThan(0.05);
    expect(expectedCalibrationError(calibrated)).toBeLessThan(expectedCalibrationError(raw));
    // Accuracy of the most confident half: higher when the confidence ranks errors well.
    const topHalf = (points: { confidence: number; correct: boolean }[]) =>
      [...points].sort((a, b) => b.confidence - a.confidence).slice(0, points.length / 2).filter((p) => p.correct).length / (points.length / 2);
    expect(topHalf(calibrated)).toBeGreaterThan(topHalf(raw) + 0.03);
  });

  test('fitLogistic recovers the weights of a known logistic model (what the calibration and bench-cascade fit)', () => {
    // y ~ sigmoid(0.5 + 2 x0 - 1 x1) with x0, x1 standard normal: the fit's standardised weights come back near 2 and -1.
    const rand = random(7);
    const normal = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
    const X = Array.from({ length: 4000 }, () => [normal(), normal()]);
    const y = X.map(([a, b]) => rand() < 1 / (1 + Math.exp(-(0.5 + 2 * a - b))));
    const fit = fitLogistic(X, y, 0);
    expect(fit.weights[0] / fit.scale[0]).toBeCloseTo(2, 0);
    expect(fit.weights[1] / fit.scale[1]).toBeCloseTo(-1, 0);
    expect(logisticProbability(fit, [3, 0])).toBeGreaterThan(0.99);
    expect(logisticProbability(fit, [-3, 0])).toBeLessThan(0.01);
  });

  test('refuses too few answers, or answers all right or all wrong', () => {
    expect(() => fitCalibration(train.slice(0, 5), 'dev')).toThrow(/at least 20 scored answers, got 5/);
    expect(() => fitCalibration(train.map((r) => ({ ...r, correct: true })), 'dev')).toThrow(/needs right and wrong answers, got 2000 right of 2000/);
  });
});

/**
 * Decoder answers whose correctness depends on the weakest token the model chose (a count or a span's end), which
 * the raw geometric mean over every token (most of them forced and near-certain) dilutes.
 */
function syntheticDecoder(n: number, seed: number) {
  const rand = random(seed);
  return Array.from({ length: n }, () => {
    const tokens = 10 + Math.floor(20 * rand());
    const leastChosen = -3 * rand() ** 2;
    const others = -0.2 * rand();
    const s: DecoderSignals = {
      meanLogProb: (leastChosen + (tokens - 1) * others) / tokens,
      leastLogProb: Math.min(leastChosen, others),
      leastChosenLogProb: leastChosen,
      leastChosenMargin: 4 + 2 * leastChosen,
      chosenTokens: 4,
      tokens,
      promptTokens: 12,
      arguments: 3,
    };
    return { signals: s, correct: rand() < 1 / (1 + Math.exp(-(3 + 3 * leastChosen))) };
  });
}

describe('fitDecoderCalibration', () => {
  const calibration = fitDecoderCalibration(syntheticDecoder(2000, 11), 'dev');
  const unseen = syntheticDecoder(2000, 12);

  test("reads the raw confidence alone: on unseen answers it is calibrated, and it keeps the raw confidence's order", () => {
    expect(calibration.features).toEqual(DECODER_CALIBRATION_FEATURES.map(([name]) => name));
    expect(calibration.features).toEqual(['log_neg_mean_log_prob']);
    const calibrated = unseen.map((r) => ({ confidence: calibratedDecoderConfidence(calibration, r.signals), correct: r.correct }));
    const raw = unseen.map((r) => ({ confidence: rawDecoderConfidence(r.signals), correct: r.correct }));
    // One logistic curve over one signal: near, not at, the bins' accuracies (0.074 here), and far closer than the raw.
    expect(expectedCalibrationError(calibrated)).toBeLessThan(0.1);
    expect(expectedCalibrationError(calibrated)).toBeLessThan(expectedCalibrationError(raw) - 0.1);
    // The same order: the cascade sends the same requests first, now at a threshold that is a probability.
    const order = unseen.map((_, i) => i).sort((a, b) => raw[a].confidence - raw[b].confidence);
    for (let k = 1; k < order.length; k++) expect(calibrated[order[k]].confidence).toBeGreaterThanOrEqual(calibrated[order[k - 1]].confidence);
    // Every signal together ranks these errors (made to hinge on the weakest chosen token) better: what bench-cascade compares.
    const fit = fitLogistic(
      syntheticDecoder(2000, 11).map((r) => DECODER_SIGNAL_FEATURES.map(([, f]) => f(r.signals))),
      syntheticDecoder(2000, 11).map((r) => r.correct),
    );
    const all = unseen.map((r) => ({ confidence: logisticProbability(fit, DECODER_SIGNAL_FEATURES.map(([, f]) => f(r.signals))), correct: r.correct }));
    const topHalf = (points: { confidence: number; correct: boolean }[]) =>
      [...points].sort((a, b) => b.confidence - a.confidence).slice(0, points.length / 2).filter((p) => p.correct).length / (points.length / 2);
    expect(topHalf(all)).toBeGreaterThan(topHalf(raw) + 0.03);
  });

  test("a folder's calibration is read for its own family only", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'calibration-decoder-'));
    try {
      await fs.writeFile(path.join(dir, CALIBRATION_FILE), JSON.stringify(calibration));
      expect(await readCalibration(dir, 'decoder')).toEqual(calibration);
      await expect(readCalibration(dir)).rejects.toThrow(/over the features log_intent_probability/);
      await fs.writeFile(path.join(dir, CALIBRATION_FILE), JSON.stringify(fitCalibration(synthetic(200, 5), 'dev')));
      await expect(readCalibration(dir, 'decoder')).rejects.toThrow(/over the features log_neg_mean_log_prob$/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('expectedCalibrationError', () => {
  test('is 0 for a confidence that is its bin\'s accuracy, and the gap otherwise', () => {
    const points = [...Array(10)].map((_, i) => ({ confidence: 0.75, correct: i < 7 }));
    // 7 of 10 right at confidence 0.75: a gap of 0.05.
    expect(expectedCalibrationError(points)).toBeCloseTo(0.05, 10);
    expect(expectedCalibrationError([{ confidence: 1, correct: true }, { confidence: 0, correct: false }])).toBe(0);
  });
});

describe('readCalibration', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'calibration-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('a folder without calibration.json has none; a written one reads back', async () => {
    expect(await readCalibration(dir)).toBeUndefined();
    const calibration = fitCalibration(synthetic(200, 3), 'dev');
    await fs.writeFile(path.join(dir, CALIBRATION_FILE), JSON.stringify(calibration));
    expect(await readCalibration(dir)).toEqual(calibration);
  });

  test.each([
    ['not JSON', '{', /calibration\.json is not valid JSON/],
    ['another format', JSON.stringify({ format: 'other/1' }), /is not a supertiny-calibration\/1 file over the features log_intent_probability/],
    ['a weight missing', null, /is not a supertiny-calibration\/1 file/],
  ])('a calibration.json that is %s fails naming the file', async (_name, text, message) => {
    const calibration = fitCalibration(synthetic(200, 4), 'dev');
    const content = text ?? JSON.stringify({ ...calibration, weights: calibration.weights.slice(1) });
    await fs.writeFile(path.join(dir, CALIBRATION_FILE), content);
    await expect(readCalibration(dir)).rejects.toThrow(message);
  });
});

describe('shareCurve', () => {
  test('sends the least confident inputs (those without a call first) to the teacher, share by share', () => {
    const call = { name: 'f', args: [] };
    const inputs = [
      { gold: 'f()', student: { call, confidence: 0.9 }, teacher: { call } }, // right
      { gold: 'f()', student: { call: { name: 'g', args: [] }, confidence: 0.2 }, teacher: { call } }, // wrong, least sure
      { gold: 'f()', student: { confidence: 0 }, teacher: { call } }, // no call
      { gold: 'f()', student: { call, confidence: 0.5 }, teacher: { call: undefined } }, // right; the teacher is wrong
    ];
    const curve = shareCurve(inputs, undefined, 4);
    expect(curve.map((p) => [p.teacher_share, p.exact_match])).toEqual([
      [0, 0.5],
      [0.25, 0.75],
      [0.5, 1],
      [0.75, 0.75],
      [1, 0.75],
    ]);
    // The threshold search agrees: the cheapest point within 1 point of the teacher (75%) sends half.
    expect(cascadeCurve('s', inputs).chosen?.teacher_share).toBe(0.25);
  });
});
