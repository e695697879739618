// A student's confidence, made to rank its errors: the raw signals of an answer (the encoder's intent probability,
// margins, entropy, the tag path's weakest and mean probabilities, value heads; the decoder's token log-probabilities
// and margins), and a logistic regression over them fitted on the dev split's exact match (calibration.json in the
// model folder). The cascade sends a request to the teacher when this probability of being right is low; with a
// calibration it is a probability.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { StudentModelError } from './errors';

/** What one encoder answer tells of its own reliability (all computed from the one forward pass). */
export interface EncoderSignals {
  /** The chosen intent's probability. */
  intentProbability: number;
  /** Its lead over the second intent. */
  intentMargin: number;
  /** Entropy of the intent distribution, in nats. */
  intentEntropy: number;
  /** The lowest probability of any token's chosen tag (O included). */
  leastTag: number;
  /** The mean log-probability of the tokens' chosen tags. */
  meanLogTag: number;
  /** The smallest lead of a token's chosen tag over its best other tag (negative where the intent's tags overrule the model). */
  leastTagMargin: number;
  /** The lowest chosen-tag probability inside the call's spans (1 without spans). */
  leastSpanTag: number;
  /** The lowest chosen-tag probability of a token outside every span (1 when there is none). */
  leastOutsideTag: number;
  /** The lowest value head probability (1 without value heads). */
  leastValue: number;
  /** Input tokens (without [CLS]/[SEP]). */
  tokens: number;
  /** Arguments in the call. */
  arguments: number;
}

/** What one decoder answer tells of its own reliability, from the log-probabilities of its tokens as decoded. */
export interface DecoderSignals {
  /** Mean log-probability of the answer's tokens (chosen and forced, eos included) under the full softmax. */
  meanLogProb: number;
  /** The lowest of them (a token the grammar forced against the model's belief shows here). */
  leastLogProb: number;
  /** The lowest log-probability of a token the model chose (not forced by the grammar). */
  leastChosenLogProb: number;
  /** The smallest lead, in logits, of a chosen token over the best other token (negative where the grammar overruled the model). */
  leastChosenMargin: number;
  /** Tokens the model chose (the others were forced by the grammar), and tokens in all (eos included). */
  chosenTokens: number;
  tokens: number;
  /** Prompt tokens (the input with the template's special tokens). */
  promptTokens: number;
  /** Arguments in the call. */
  arguments: number;
}

const EPS = 1e-6;

/** The features the calibration reads, by name: log scales where a probability near 0 or 1 carries the signal. */
export const CALIBRATION_FEATURES: readonly [string, (s: EncoderSignals) => number][] = [
  ['log_intent_probability', (s) => Math.log(s.intentProbability + EPS)],
  ['log_intent_margin', (s) => Math.log(s.intentMargin + EPS)],
  ['intent_entropy', (s) => s.intentEntropy],
  ['log_least_tag', (s) => Math.log(s.leastTag + EPS)],
  ['mean_log_tag', (s) => s.meanLogTag],
  ['least_tag_margin', (s) => s.leastTagMargin],
  ['log_least_span_tag', (s) => Math.log(s.leastSpanTag + EPS)],
  ['log_least_outside_tag', (s) => Math.log(s.leastOutsideTag + EPS)],
  ['log_least_value', (s) => Math.log(s.leastValue + EPS)],
  ['log_tokens', (s) => Math.log(1 + s.tokens)],
  ['arguments', (s) => s.arguments],
];

/**
 * Every signal of a decoder answer, by name: what scripts/bench-cascade.ts compares. On the request router (BENCHMARKS.md,
 * "The request router pipeline end to end") a logistic regression over all of them, fitted on dev, ranked the errors
 * of one model better than the raw confidence and of another worse (teacher share at 1 point 58.9% against 61.2%,
 * and 63.1% against 57.9%), so the deployed calibration reads the raw confidence alone (DECODER_CALIBRATION_FEATURES).
 */
export const DECODER_SIGNAL_FEATURES: readonly [string, (s: DecoderSignals) => number][] = [
  ['mean_log_prob', (s) => s.meanLogProb],
  ['least_log_prob', (s) => s.leastLogProb],
  ['least_chosen_log_prob', (s) => s.leastChosenLogProb],
  ['least_chosen_margin', (s) => Math.max(-20, Math.min(20, s.leastChosenMargin))],
  ['log_chosen_tokens', (s) => Math.log(1 + s.chosenTokens)],
  ['log_tokens', (s) => Math.log(1 + s.tokens)],
  ['log_prompt_tokens', (s) => Math.log(1 + s.promptTokens)],
  ['arguments', (s) => s.arguments],
];

/**
 * The decoder's calibration reads its raw confidence alone (Platt scaling, on a log scale): a probability of being
 * right that sends the same requests to the teacher first as the raw confidence does.
 */
export const DECODER_CALIBRATION_FEATURES: readonly [string, (s: DecoderSignals) => number][] = [
  // On a log scale: a right answer's mean token log-probability is about -0.005, a wrong one's -0.05 (a logistic
  // curve over the log-probability itself left the router's test ECE at 0.19, against 0.32 raw).
  ['log_neg_mean_log_prob', (s) => Math.log(EPS - Math.min(0, s.meanLogProb))],
];

/** The decoder's confidence without a calibration: the geometric mean of its tokens' probabilities. */
export function rawDecoderConfidence(s: DecoderSignals): number {
  return Math.exp(s.meanLogProb);
}

export function isDecoderSignals(s: EncoderSignals | DecoderSignals): s is DecoderSignals {
  return 'meanLogProb' in s;
}

/** The confidence a student of either family gives without a calibration, and what it is. */
export function rawConfidenceOf(s: EncoderSignals | DecoderSignals): number {
  return isDecoderSignals(s) ? rawDecoderConfidence(s) : rawConfidence(s);
}

export const RAW_CONFIDENCE_NAMES = { encoder: 'raw: intent × least tag', decoder: 'raw: geometric mean of the token probabilities' } as const;

/** The confidence without a calibration: the intent's probability times the weakest tag or value choice. */
export function rawConfidence(s: EncoderSignals): number {
  return s.intentProbability * Math.min(1, s.leastTag, s.leastValue);
}

export const CALIBRATION_FILE = 'calibration.json';
export const CALIBRATION_FORMAT = 'supertiny-calibration/1';

export interface Calibration {
  format: typeof CALIBRATION_FORMAT;
  features: string[];
  mean: number[];
  scale: number[];
  weights: number[];
  bias: number;
  /** Where it was fitted: split, examples, the student's exact match there, the L2 strength. */
  fitted: { split: string; examples: number; exact_match: number; l2: number };
}

type Features<S> = readonly [string, (s: S) => number][];

export function featureVector(s: EncoderSignals): number[] {
  return CALIBRATION_FEATURES.map(([, f]) => f(s));
}

/** P(the answer is an exact match) under the calibration. */
export function calibratedConfidence(calibration: Calibration, s: EncoderSignals): number {
  return logisticProbability(calibration, featureVector(s));
}

/** P(the decoder's answer is an exact match) under a decoder calibration (fitDecoderCalibration). */
export function calibratedDecoderConfidence(calibration: Calibration, s: DecoderSignals): number {
  return logisticProbability(calibration, DECODER_CALIBRATION_FEATURES.map(([, f]) => f(s)));
}

/**
 * A logistic regression of exact match on the features, L2-regularised, fitted by Newton's method (the
 * problem is small and convex, so it converges in a few steps and the same data give the same weights).
 */
export function fitCalibration(rows: readonly { signals: EncoderSignals; correct: boolean }[], split: string, l2 = 1): Calibration {
  return fitOver(CALIBRATION_FEATURES, rows, split, l2);
}

/** As fitCalibration, over a decoder's signals (DECODER_CALIBRATION_FEATURES). */
export function fitDecoderCalibration(rows: readonly { signals: DecoderSignals; correct: boolean }[], split: string, l2 = 1): Calibration {
  return fitOver(DECODER_CALIBRATION_FEATURES, rows, split, l2);
}

function fitOver<S>(features: Features<S>, rows: readonly { signals: S; correct: boolean }[], split: string, l2: number): Calibration {
  if (rows.length < 20) throw new Error(`a calibration needs at least 20 scored answers, got ${rows.length}`);
  const positives = rows.filter((r) => r.correct).length;
  if (positives === 0 || positives === rows.length) throw new Error(`a calibration needs right and wrong answers, got ${positives} right of ${rows.length}`);
  const fit = fitLogistic(
    rows.map((r) => features.map(([, f]) => f(r.signals))),
    rows.map((r) => r.correct),
    l2,
  );
  return {
    format: CALIBRATION_FORMAT,
    features: features.map(([name]) => name),
    ...fit,
    fitted: { split, examples: rows.length, exact_match: positives / rows.length, l2 },
  };
}

/** A standardised logistic regression: the features' mean and scale, a weight per standardised feature, the bias. */
export interface LogisticFit {
  mean: number[];
  scale: number[];
  weights: number[];
  bias: number;
}

/** The probability a LogisticFit gives to a feature vector. */
export function logisticProbability(fit: LogisticFit, x: readonly number[]): number {
  let z = fit.bias;
  for (let i = 0; i < x.length; i++) z += (fit.weights[i] * (x[i] - fit.mean[i])) / fit.scale[i];
  return 1 / (1 + Math.exp(-z));
}

/** Fits P(y) = sigmoid(bias + w . standardised x) with an L2 penalty on w by Newton's method (deterministic). */
export function fitLogistic(X: readonly (readonly number[])[], labels: readonly boolean[], l2 = 1): LogisticFit {
  const d = X[0]?.length ?? 0;
  const mean = Array.from({ length: d }, (_, j) => X.reduce((a, x) => a + x[j], 0) / X.length);
  const scale = Array.from({ length: d }, (_, j) => Math.sqrt(X.reduce((a, x) => a + (x[j] - mean[j]) ** 2, 0) / X.length) || 1);
  const Z = X.map((x) => [1, ...x.map((v, j) => (v - mean[j]) / scale[j])]);
  const y = labels.map((c) => (c ? 1 : 0));
  const w = new Array<number>(d + 1).fill(0);
  for (let iteration = 0; iteration < 50; iteration++) {
    const gradient = new Array<number>(d + 1).fill(0);
    const hessian = Array.from({ length: d + 1 }, () => new Array<number>(d + 1).fill(0));
    for (let i = 0; i < Z.length; i++) {
      const p = 1 / (1 + Math.exp(-Z[i].reduce((a, z, j) => a + z * w[j], 0)));
      const weight = Math.max(p * (1 - p), 1e-9);
      for (let j = 0; j <= d; j++) {
        gradient[j] += (p - y[i]) * Z[i][j];
        for (let k = 0; k <= j; k++) hessian[j][k] += weight * Z[i][j] * Z[i][k];
      }
    }
    for (let j = 1; j <= d; j++) {
      gradient[j] += l2 * w[j];
      hessian[j][j] += l2;
    }
    for (let j = 0; j <= d; j++) for (let k = j + 1; k <= d; k++) hessian[j][k] = hessian[k][j];
    const step = solve(hessian, gradient);
    let moved = 0;
    for (let j = 0; j <= d; j++) {
      w[j] -= step[j];
      moved = Math.max(moved, Math.abs(step[j]));
    }
    if (moved < 1e-8) break;
  }
  return { mean, scale, weights: w.slice(1), bias: w[0] };
}

/** Gaussian elimination with partial pivoting: the Newton step of a small symmetric positive definite system. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[pivot][c])) pivot = r;
    [m[c], m[pivot]] = [m[pivot], m[c]];
    const diag = m[c][c] || 1e-12;
    for (let r = c + 1; r < n; r++) {
      const f = m[r][c] / diag;
      for (let k = c; k <= n; k++) m[r][k] -= f * m[c][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r][n];
    for (let k = r + 1; k < n; k++) s -= m[r][k] * x[k];
    x[r] = s / (m[r][r] || 1e-12);
  }
  return x;
}

/** Expected calibration error: the mean gap between confidence and accuracy over equal-width bins, weighted by count. */
export function expectedCalibrationError(points: readonly { confidence: number; correct: boolean }[], bins = 10): number {
  if (points.length === 0) return 0;
  const sums = Array.from({ length: bins }, () => ({ n: 0, confidence: 0, correct: 0 }));
  for (const p of points) {
    const bin = sums[Math.min(bins - 1, Math.max(0, Math.floor(p.confidence * bins)))];
    bin.n++;
    bin.confidence += p.confidence;
    bin.correct += p.correct ? 1 : 0;
  }
  return sums.reduce((a, b) => a + (b.n === 0 ? 0 : Math.abs(b.confidence - b.correct)), 0) / points.length;
}

/**
 * A folder's calibration, or undefined when it has none; a file of another format or shape, or over another
 * family's features, is an error.
 */
export async function readCalibration(folder: string, family: 'encoder' | 'decoder' = 'encoder'): Promise<Calibration | undefined> {
  const file = path.join(folder, CALIBRATION_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: Calibration;
  try {
    parsed = JSON.parse(text) as Calibration;
  } catch {
    throw new StudentModelError('io_mismatch', `${file} is not valid JSON`, file);
  }
  const names = (family === 'decoder' ? DECODER_CALIBRATION_FEATURES : CALIBRATION_FEATURES).map(([name]) => name);
  const d = names.length;
  const numbers = (v: unknown) => Array.isArray(v) && v.length === d && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (
    parsed.format !== CALIBRATION_FORMAT ||
    JSON.stringify(parsed.features) !== JSON.stringify(names) ||
    !numbers(parsed.mean) ||
    !numbers(parsed.scale) ||
    !numbers(parsed.weights) ||
    typeof parsed.bias !== 'number' ||
    !Number.isFinite(parsed.bias)
  ) {
    throw new StudentModelError('io_mismatch', `${file} is not a ${CALIBRATION_FORMAT} file over the features ${names.join(', ')}`, file);
  }
  return parsed;
}
