// The simulator's error model. Each utterance gets a fixed profile (seeded by the utterance): a mass on the
// correct answer and on a few plausible wrong ones (neighbouring intent, dropped / extra / mis-spanned
// slot, paraphrased value), so that a hard utterance is wrong the same way across samples, as with a
// real LLM. A request samples from the profile at its temperature (mass^(1/T), argmax at T=0) and
// may then break the output's format (malformed arguments JSON, unknown function) at a rate that grows
// with temperature.
import { z } from 'zod';
import { Call, CallArgument } from '../../tasks/call-format';
import { spanOffsets } from '../../tasks/spans';
import { AnnotationIndex, KnownAnswer } from './annotations';
import { SeededRandom } from './random';

export const ANSWER_ERROR_KINDS = ['neighbour_intent', 'dropped_slot', 'extra_slot', 'misspanned_slot', 'paraphrased_value'] as const;
export type AnswerErrorKind = (typeof ANSWER_ERROR_KINDS)[number];
export type AnswerKind = 'correct' | AnswerErrorKind;

const range = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]);

export const ErrorModelConfigSchema = z.object({
  /** Difficulty tiers: the share of utterances in each and the range of their wrong-answer mass. */
  tiers: z.array(z.object({ share: z.number().min(0), errorMass: range })).min(1),
  /** Relative frequency of each kind of wrong answer. */
  kindWeights: z.record(z.enum(ANSWER_ERROR_KINDS), z.number().min(0)),
  /** Share of utterances whose routing is confusable, and the mass on the confusable scenario. */
  confusableRouteShare: z.number().min(0).max(1),
  confusableRouteMass: range,
  /** Mass on the confusable scenario for every other utterance. */
  routeNoiseMass: range,
  /** Per-sample format errors, as rates at temperature 0.7 (they scale with 0.25 + T). */
  malformedArgumentsRate: z.number().min(0).max(1),
  unknownFunctionRate: z.number().min(0).max(1),
  /** The judge role: P(says correct | correct) and P(says incorrect | incorrect). */
  judgeTruePositiveRate: z.number().min(0).max(1),
  judgeTrueNegativeRate: z.number().min(0).max(1),
});
export type ErrorModelConfig = z.infer<typeof ErrorModelConfigSchema>;

/** Tuned so that one sample at temperature 0.7 exact-matches about 87% of MASSIVE dev (see scripts/bench-teacher.ts). */
export const DEFAULT_ERROR_MODEL: ErrorModelConfig = {
  tiers: [
    { share: 0.72, errorMass: [0, 0.06] },
    { share: 0.24, errorMass: [0.1, 0.5] },
    { share: 0.04, errorMass: [0.5, 0.9] },
  ],
  kindWeights: { neighbour_intent: 3, dropped_slot: 2, extra_slot: 1.5, misspanned_slot: 2, paraphrased_value: 1 },
  confusableRouteShare: 0.03,
  confusableRouteMass: [0.2, 0.6],
  routeNoiseMass: [0, 0.02],
  malformedArgumentsRate: 0.012,
  unknownFunctionRate: 0.005,
  judgeTruePositiveRate: 0.96,
  judgeTrueNegativeRate: 0.85,
};

export interface Candidate<T> {
  value: T;
  mass: number;
}

export interface AnswerCandidate extends Candidate<Call> {
  kind: AnswerKind;
}

export interface UtteranceProfile {
  routes: Candidate<string>[];
  answers: AnswerCandidate[];
}

/** Scales a rate given at temperature 0.7 to temperature T. */
export function rateAtTemperature(rate: number, temperature: number): number {
  return Math.min(0.5, (rate * (0.25 + temperature)) / 0.95);
}

/** Probabilities of the candidates at a temperature: mass^(1/T), normalised; argmax (first on ties) at T≈0. */
export function temperatureDistribution(masses: readonly number[], temperature: number): number[] {
  if (temperature <= 0.01) {
    const best = masses.indexOf(Math.max(...masses));
    return masses.map((_, i) => (i === best ? 1 : 0));
  }
  const powered = masses.map((m) => (m > 0 ? Math.pow(m, 1 / temperature) : 0));
  const total = powered.reduce((a, b) => a + b, 0);
  return powered.map((p) => p / total);
}

const NUMBER_WORDS: Record<string, number> = {
  zero: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, eleven: 11, twelve: 12,
  thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19, twenty: 20, thirty: 30,
  forty: 40, fifty: 50,
};
const ADJACENT_WORDS_LIKELY_SWEPT_IN = new Set(['at', 'the', 'for', 'on', 'in', 'to', 'my', 'a', 'this', 'next', 'of']);

/** How an LLM "normalises" a span: number words to digits, otherwise Title Case. Undefined if unchanged. */
export function paraphraseValue(value: string): string | undefined {
  const words = value.split(' ');
  const out: string[] = [];
  let changed = false;
  for (let i = 0; i < words.length; i++) {
    const n = NUMBER_WORDS[words[i]];
    if (n === undefined) {
      out.push(words[i]);
      continue;
    }
    const next = NUMBER_WORDS[words[i + 1]];
    if (n >= 20 && n % 10 === 0 && next !== undefined && next < 10) {
      out.push(String(n + next));
      i++;
    } else out.push(String(n));
    changed = true;
  }
  if (changed) return out.join(' ');
  const titled = words.map((w) => (w ? w[0].toUpperCase() + w.slice(1) : w)).join(' ');
  return titled !== value ? titled : undefined;
}

interface Token {
  text: string;
  start: number;
  end: number;
}

function tokensOf(text: string): Token[] {
  return [...text.matchAll(/\S+/g)].map((m) => ({ text: m[0], start: m.index!, end: m.index! + m[0].length }));
}

/** Character ranges of the call's slot values in the utterance (first unused occurrence each). */
function slotRanges(utterance: string, args: readonly CallArgument[]): ({ start: number; end: number } | undefined)[] {
  const used = new Set<number>();
  return args.map((a) => {
    const at = spanOffsets(utterance, a.value).find((o) => !used.has(o));
    if (at === undefined) return undefined;
    used.add(at);
    return { start: at, end: at + a.value.length };
  });
}

function withArgs(call: Call, args: CallArgument[]): Call {
  return { name: call.name, args };
}

/** Builds the wrong answer of one kind for this utterance, or undefined when that kind does not apply. */
function wrongAnswer(kind: AnswerErrorKind, answer: KnownAnswer, index: AnnotationIndex, rng: SeededRandom): Call | undefined {
  const { gold, utterance, group } = answer;
  const { parametersOf, functionsByGroup } = index.knowledge;
  const params = parametersOf[gold.name] ?? [];
  switch (kind) {
    case 'neighbour_intent': {
      const others = (functionsByGroup[group] ?? []).filter((i) => i !== gold.name);
      if (others.length === 0) return undefined;
      const nearest = index.nearestTrain(utterance, (ex) => ex.group === group && ex.gold.name !== gold.name)[0];
      const intent = nearest && rng.next() < 0.8 ? nearest.gold.name : rng.pick(others);
      const allowed = new Set(parametersOf[intent]);
      return { name: intent, args: gold.args.filter((a) => allowed.has(a.key)) };
    }
    case 'dropped_slot': {
      if (gold.args.length === 0) return undefined;
      const drop = rng.int(gold.args.length);
      return withArgs(gold, gold.args.filter((_, i) => i !== drop));
    }
    case 'extra_slot': {
      if (params.length === 0) return undefined;
      const ranges = slotRanges(utterance, gold.args);
      const free = tokensOf(utterance).filter(
        (t) => !ADJACENT_WORDS_LIKELY_SWEPT_IN.has(t.text) && t.text.length > 2 && !ranges.some((r) => r && t.start < r.end && t.end > r.start),
      );
      if (free.length === 0) return undefined;
      const unused = params.filter((p) => !gold.args.some((a) => a.key === p));
      const token = rng.pick(free);
      return withArgs(gold, [...gold.args, { key: rng.pick(unused.length > 0 ? unused : params), value: token.text }]);
    }
    case 'misspanned_slot': {
      if (gold.args.length === 0) return undefined;
      const which = rng.int(gold.args.length);
      const ranges = slotRanges(utterance, gold.args);
      const range = ranges[which];
      if (!range) return undefined;
      const tokens = tokensOf(utterance);
      const covered = (t: Token) => ranges.some((r) => r && t.start < r.end && t.end > r.start);
      const before = [...tokens].reverse().find((t) => t.end <= range.start);
      const after = tokens.find((t) => t.start >= range.end);
      const options: string[] = [];
      if (before && !covered(before)) options.push(utterance.slice(before.start, range.end));
      if (after && !covered(after)) options.push(utterance.slice(range.start, after.end));
      const words = gold.args[which].value.split(' ');
      if (words.length > 1) options.push(words.slice(0, -1).join(' '), words.slice(1).join(' '));
      if (options.length === 0) return undefined;
      // Sweeping in a preposition or article is the most common span error.
      const preferred = options.filter((o) => ADJACENT_WORDS_LIKELY_SWEPT_IN.has(o.split(' ')[0]));
      const value = rng.pick(preferred.length > 0 && rng.next() < 0.6 ? preferred : options);
      return withArgs(gold, gold.args.map((a, i) => (i === which ? { key: a.key, value } : a)));
    }
    case 'paraphrased_value': {
      const candidates = gold.args.map((a, i) => ({ i, value: paraphraseValue(a.value) })).filter((c) => c.value !== undefined);
      if (candidates.length === 0) return undefined;
      const { i: which, value } = rng.pick(candidates);
      return withArgs(gold, gold.args.map((a, i) => (i === which ? { key: a.key, value: value! } : a)));
    }
  }
}

/** The fixed, seeded profile of one utterance. */
export function utteranceProfile(answer: KnownAnswer, index: AnnotationIndex, config: ErrorModelConfig, seed: string | number): UtteranceProfile {
  const rng = new SeededRandom(seed, 'profile', answer.utterance);
  const tier = config.tiers[rng.weighted(config.tiers.map((t) => t.share))];
  const errorMass = rng.between(...tier.errorMass);

  const available = ANSWER_ERROR_KINDS.map((kind) => ({ kind, call: wrongAnswer(kind, answer, index, rng) })).filter(
    (c): c is { kind: AnswerErrorKind; call: Call } => c.call !== undefined,
  );
  const answers: AnswerCandidate[] = [{ value: answer.gold, mass: 1, kind: 'correct' }];
  if (available.length > 0 && errorMass > 0) {
    // One dominant wrong belief, and up to two minor ones.
    const order: typeof available = [];
    const pool = [...available];
    while (pool.length > 0 && order.length < 3) order.push(pool.splice(rng.weighted(pool.map((c) => config.kindWeights[c.kind] ?? 0.0001)), 1)[0]);
    const dominantShare = order.length === 1 ? 1 : rng.between(0.6, 0.9);
    answers[0].mass = 1 - errorMass;
    order.forEach((c, i) => {
      const mass = errorMass * (i === 0 ? dominantShare : (1 - dominantShare) / (order.length - 1));
      answers.push({ value: c.call, mass, kind: c.kind });
    });
  }

  const confusable = index.nearestTrain(answer.utterance, (ex) => ex.group !== answer.group)[0]?.group;
  const routeMass = rng.next() < config.confusableRouteShare ? rng.between(...config.confusableRouteMass) : rng.between(...config.routeNoiseMass);
  const routes: Candidate<string>[] = [{ value: answer.group, mass: 1 - (confusable ? routeMass : 0) }];
  if (confusable) routes.push({ value: confusable, mass: routeMass });
  return { routes, answers };
}

/** Draws one candidate at a temperature; returns it with the distribution it was drawn from. */
export function sampleCandidate<C extends Candidate<unknown>>(
  candidates: readonly C[],
  temperature: number,
  rng: SeededRandom,
): { chosen: C; probability: number; distribution: number[] } {
  const distribution = temperatureDistribution(candidates.map((c) => c.mass), temperature);
  const i = rng.weighted(distribution);
  return { chosen: candidates[i], probability: distribution[i], distribution };
}
