// Rejection sampling over the teacher's samples, and the dataset builders of the prototype stage.
// Library functions only: they take teacher results and return rows/objects; the activities around them
// do the batching, heartbeats and artifact storage.
//
// An input is accepted when its samples agree: each sample is parsed and validated against the task's
// schema, checked by the task's verifier, and the canonical compact text of what passes is voted on; the
// winner needs ceil(voteThreshold x samples requested) votes. An optional LLM judge then reviews the
// winners, once its agreement with gold labels has been measured (applyJudge takes that measurement).
import { z } from 'zod';
import { createLogger } from '../../config/logger';
import { Call, callArgumentsObject } from '../../tasks/call-format';
import type { FunctionToolDefinition, TaskExample, TaskSpec } from '../../tasks/define';
import { isExactMatch } from '../../tasks/metrics';
import type { Judge, JudgeCalibration, JudgeStats, JudgeVerdict } from './judge';
import { assistantToolCallMessage, RawToolCall, SAMPLE_OUTCOMES, SampleOutcome, TeacherResult, TeacherSample } from '../../runtime/teacher/teacher-client';

const log = createLogger('rejection-sampling');

export const RejectionSamplingConfigSchema = z.object({
  /** Share of the requested samples that must agree on the winner (0.8 with 5 samples = 4 votes). */
  voteThreshold: z.number().gt(0).max(1).default(0.8),
  /** Apply the task's verifier to each schema-valid sample before voting. */
  useVerifier: z.boolean().default(true),
});
export type RejectionSamplingConfig = z.input<typeof RejectionSamplingConfigSchema>;

export type RejectionReason = 'accepted' | 'no_valid_samples' | 'verifier' | 'vote' | 'judge';

export interface SampleReview {
  index: number;
  outcome: SampleOutcome;
  /** Canonical compact text of a schema-valid call. */
  canonical?: string;
  /** Verifier result of a schema-valid call (absent when the verifier was not applied). */
  verified?: boolean;
  verifierReason?: string;
  error?: string;
  /** The call the model made at the final step (also when malformed), for preference pairs. */
  finalToolCall?: RawToolCall;
}

export interface RejectionDecision {
  id: string;
  text: string;
  accepted: boolean;
  reason: RejectionReason;
  /** The most voted call among the samples that passed schema and verifier. */
  winner?: { call: Call; canonical: string; votes: number; offered: string[] };
  /** Vote counts per canonical call, most voted first. */
  votes: { canonical: string; count: number }[];
  requiredVotes: number;
  samplesRequested: number;
  samples: SampleReview[];
  judge?: JudgeVerdict;
}

function isFinalStep<E extends TaskExample>(task: TaskSpec<E>, sample: TeacherSample): boolean {
  return sample.offered.length > 0 && sample.offered.every((name) => name in task.functions);
}

/** Reviews one input's samples: schema, verifier, vote. */
export function reviewSamples<E extends TaskExample>(task: TaskSpec<E>, result: TeacherResult, config: RejectionSamplingConfig = {}): RejectionDecision {
  const { voteThreshold, useVerifier } = RejectionSamplingConfigSchema.parse(config);
  const requiredVotes = Math.max(1, Math.ceil(voteThreshold * result.samples.length - 1e-9));
  const tally = new Map<string, { count: number; sample: TeacherSample; call: Call }>();
  const samples: SampleReview[] = result.samples.map((sample) => {
    const review: SampleReview = { index: sample.index, outcome: sample.outcome };
    if (sample.error) review.error = sample.error;
    if (sample.lastToolCall && isFinalStep(task, sample)) review.finalToolCall = sample.lastToolCall;
    if (sample.outcome !== 'ok' || !sample.call) return review;
    // The client validated the call already; validate again so that stored results from elsewhere are safe.
    const validation = task.validateCall(sample.call);
    if (!validation.ok) {
      review.outcome = validation.kind;
      review.error = validation.errors.join('; ');
      return review;
    }
    const canonicalCall = task.canonicalize(sample.call, result.text);
    review.canonical = task.callFormat.print(canonicalCall);
    if (useVerifier) {
      const verdict = task.verify(canonicalCall, result.text);
      review.verified = verdict.ok;
      if (!verdict.ok) {
        review.verifierReason = verdict.reason;
        return review;
      }
    }
    const entry = tally.get(review.canonical);
    if (entry) entry.count++;
    else tally.set(review.canonical, { count: 1, sample, call: canonicalCall });
    return review;
  });

  const votes = [...tally].map(([canonical, { count }]) => ({ canonical, count })).sort((a, b) => b.count - a.count || (a.canonical < b.canonical ? -1 : 1));
  const decision: RejectionDecision = {
    id: result.id,
    text: result.text,
    accepted: false,
    reason: 'vote',
    votes,
    requiredVotes,
    samplesRequested: result.samples.length,
    samples,
  };
  if (votes.length === 0) {
    decision.reason = samples.some((s) => s.verified === false) ? 'verifier' : 'no_valid_samples';
    return decision;
  }
  const top = tally.get(votes[0].canonical)!;
  decision.winner = { call: top.call, canonical: votes[0].canonical, votes: top.count, offered: top.sample.offered };
  // A tie for first place is no agreement.
  const tied = votes.length > 1 && votes[1].count === votes[0].count;
  if (top.count >= requiredVotes && !tied) {
    decision.accepted = true;
    decision.reason = 'accepted';
  }
  return decision;
}

export function reviewAll<E extends TaskExample>(task: TaskSpec<E>, results: readonly TeacherResult[], config: RejectionSamplingConfig = {}): RejectionDecision[] {
  return results.map((r) => reviewSamples(task, r, config));
}

export interface JudgePassReport {
  /** False when the judge's measured agreement was below `minAgreement`: its verdicts were not used. */
  used: boolean;
  minAgreement: number;
  calibration: JudgeCalibration;
  judged: number;
  rejected: number;
  /** Verdicts that could not be obtained; those inputs keep their vote decision. */
  errors: number;
}

/**
 * Lets the judge review every accepted winner, rejecting those it calls incorrect. The calibration (from
 * calibrateJudge on labelled dev samples) is required and logged first; below `minAgreement` the
 * judge is not used at all.
 */
export async function applyJudge(
  decisions: readonly RejectionDecision[],
  judge: Judge<any>,
  calibration: JudgeCalibration,
  options: { minAgreement?: number } = {},
): Promise<{ decisions: RejectionDecision[]; report: JudgePassReport }> {
  const minAgreement = options.minAgreement ?? 0.85;
  const report: JudgePassReport = { used: false, minAgreement, calibration, judged: 0, rejected: 0, errors: 0 };
  log.info('judge calibration on labelled dev samples', { ...calibration, minAgreement });
  if (!(calibration.count > 0 && calibration.agreement >= minAgreement)) {
    log.warn('judge agreement below the minimum: its verdicts are not used', { agreement: calibration.agreement, minAgreement });
    return { decisions: decisions.map((d) => ({ ...d })), report: { ...report } };
  }
  report.used = true;
  const judged = await Promise.all(
    decisions.map(async (d): Promise<RejectionDecision> => {
      if (!d.accepted || !d.winner) return { ...d };
      const verdict = await judge.judge(d.text, d.winner.call);
      report.judged++;
      if (verdict.verdict === 'error') report.errors++;
      if (verdict.verdict === 'incorrect') {
        report.rejected++;
        return { ...d, judge: verdict, accepted: false, reason: 'judge' };
      }
      return { ...d, judge: verdict };
    }),
  );
  return { decisions: judged, report };
}

// ---- dataset builders -------------------------------------------------------------------------------

type AssistantMessage = ReturnType<typeof assistantToolCallMessage>;
type ChatMessage = { role: 'system' | 'user'; content: string } | AssistantMessage;

/** One call the teacher's valid samples voted for, as a tool call's function (arguments: JSON text). */
export interface SftVote {
  name: string;
  arguments: string;
  /** Votes for this call / all valid votes of the input (the shares of a row sum to 1). */
  share: number;
}

/** A line of sft.jsonl: OpenAI chat fine-tuning format with tool calls. */
export interface SftRow {
  messages: ChatMessage[];
  tools: FunctionToolDefinition[];
  /** The teacher's vote shares over its valid samples, most voted first: soft targets for the encoder student. */
  votes: SftVote[];
}

/** A line of preferences.jsonl: OpenAI preference fine-tuning (DPO) format. */
export interface PreferenceRow {
  input: { messages: ChatMessage[]; tools: FunctionToolDefinition[] };
  preferred_output: AssistantMessage[];
  non_preferred_output: AssistantMessage[];
}

/** A line of rejected.jsonl: why an input was not accepted, with what its samples said. */
export interface RejectedRow {
  id: string;
  text: string;
  reason: Exclude<RejectionReason, 'accepted'>;
  requiredVotes: number;
  votes: { canonical: string; count: number }[];
  samples: SampleReview[];
  judge?: JudgeVerdict;
}

function promptMessages<E extends TaskExample>(task: TaskSpec<E>, text: string): ChatMessage[] {
  return [
    { role: 'system', content: task.systemPrompt },
    { role: 'user', content: text },
  ];
}

/** Each voted canonical call with its share of the valid votes (the canonical text is parsed back). */
function voteShares<E extends TaskExample>(task: TaskSpec<E>, decision: RejectionDecision): SftVote[] {
  const total = decision.votes.reduce((n, v) => n + v.count, 0);
  return decision.votes.map(({ canonical, count }) => {
    const parsed = task.callFormat.parse(canonical);
    if (!parsed.ok) throw new Error(`task "${task.name}": the canonical call ${JSON.stringify(canonical)} of input ${decision.id} does not parse back: ${parsed.error}`);
    return { name: parsed.call.name, arguments: JSON.stringify(callArgumentsObject(parsed.call)), share: count / total };
  });
}

/**
 * One row per accepted input: [system, user, assistant tool call of the canonical winner]. `tools` holds
 * the functions offered at the step that produced the call (all functions would make every row large).
 * `votes` carries the teacher's agreement, which the encoder student learns as soft targets.
 */
export function buildSftRows<E extends TaskExample>(task: TaskSpec<E>, decisions: readonly RejectionDecision[]): SftRow[] {
  return decisions
    .filter((d) => d.accepted && d.winner)
    .map((d) => ({
      messages: [...promptMessages(task, d.text), assistantToolCallMessage(d.winner!.call)],
      tools: task.toolDefinitions(d.winner!.offered),
      votes: voteShares(task, d),
    }));
}

/**
 * Preference pairs for accepted inputs: the winner is preferred over a losing final-step answer of the same
 * input (valid but outvoted first, then schema or verifier failures, then malformed output).
 */
export function buildPreferenceRows<E extends TaskExample>(
  task: TaskSpec<E>,
  decisions: readonly RejectionDecision[],
  options: { maxPairsPerInput?: number } = {},
): PreferenceRow[] {
  const maxPairs = options.maxPairsPerInput ?? 1;
  const rank = (s: SampleReview) => (s.canonical && s.verified !== false ? 0 : s.canonical ? 1 : s.outcome === 'invalid_arguments' || s.outcome === 'unknown_function' ? 2 : 3);
  const rows: PreferenceRow[] = [];
  for (const d of decisions) {
    if (!d.accepted || !d.winner) continue;
    const voteOf = (s: SampleReview) => d.votes.find((v) => v.canonical === s.canonical)?.count ?? 0;
    const losers = d.samples
      .filter((s) => s.finalToolCall && s.canonical !== d.winner!.canonical)
      .sort((a, b) => rank(a) - rank(b) || voteOf(b) - voteOf(a) || a.index - b.index);
    const seen = new Set<string>();
    const input = { messages: promptMessages(task, d.text), tools: task.toolDefinitions(d.winner.offered) };
    for (const loser of losers) {
      const raw = loser.finalToolCall!;
      const key = `${raw.name}\u0000${raw.arguments}`;
      if (seen.has(key)) continue;
      seen.add(key);
      rows.push({ input, preferred_output: [assistantToolCallMessage(d.winner.call)], non_preferred_output: [assistantToolCallMessage(raw)] });
      if (seen.size >= maxPairs) break;
    }
  }
  return rows;
}

export function buildRejectedRows(decisions: readonly RejectionDecision[]): RejectedRow[] {
  return decisions
    .filter((d) => !d.accepted)
    .map((d) => ({
      id: d.id,
      text: d.text,
      reason: d.reason as RejectedRow['reason'],
      requiredVotes: d.requiredVotes,
      votes: d.votes,
      samples: d.samples,
      ...(d.judge ? { judge: d.judge } : {}),
    }));
}

// ---- stats.json -------------------------------------------------------------------------------------

export interface PrototypeStats {
  inputs: number;
  samples: {
    requested: number;
    /** Samples for which the model produced an answer (anything but HTTP errors, timeouts, empty choices). */
    answered: number;
    /** Unparseable output: malformed arguments JSON, or no tool call at all. */
    malformed: number;
    /** Parsed, but not a valid call of the schema: unknown function or bad arguments. */
    rejectedBySchema: number;
    rejectedByVerifier: number;
    /** Passed schema and verifier: these vote. */
    valid: number;
    outcomes: Record<SampleOutcome, number>;
  };
  decisions: {
    accepted: number;
    rejectedByVote: number;
    rejectedByVerifier: number;
    rejectedByJudge: number;
    noValidSamples: number;
  };
  /** accepted / inputs */
  acceptanceRate: number;
  requests: { teacher: number; judge: number; judgeCached: number };
  tokens: { prompt: number; completion: number; judgePrompt: number; judgeCompletion: number };
  costUsd: { teacher: number; judge: number; total: number };
  judge?: JudgePassReport;
  /** Exact match against gold, when gold labels were given (benchmarks, dev): never used for decisions. */
  labelAccuracy?: {
    labelledInputs: number;
    /** Every requested sample taken alone (a failed sample counts as wrong). */
    singleSample: { count: number; exactMatch: number };
    /** Winners accepted by the vote, before the judge. */
    acceptedByVote: { count: number; exactMatch: number };
    /** Finally accepted inputs. */
    accepted: { count: number; exactMatch: number };
  };
}

export interface PrototypeStatsInput {
  results: readonly TeacherResult[];
  decisions: readonly RejectionDecision[];
  judge?: { stats: JudgeStats; report: JudgePassReport };
  /** Gold calls by input id, for label accuracy only. */
  goldById?: ReadonlyMap<string, Call>;
}

export function buildStats(input: PrototypeStatsInput): PrototypeStats {
  const { results, decisions, judge, goldById } = input;
  const outcomes = Object.fromEntries(SAMPLE_OUTCOMES.map((o) => [o, 0])) as Record<SampleOutcome, number>;
  let rejectedByVerifier = 0;
  let valid = 0;
  for (const d of decisions) {
    for (const s of d.samples) {
      outcomes[s.outcome]++;
      if (s.verified === false) rejectedByVerifier++;
      else if (s.canonical) valid++;
    }
  }
  const requested = results.reduce((n, r) => n + r.samples.length, 0);
  const unanswered = outcomes.http_error + outcomes.timeout + outcomes.connection_error + outcomes.empty_choices;
  const count = (reason: RejectionReason) => decisions.filter((d) => d.reason === reason).length;
  const sum = (f: (r: TeacherResult) => number) => results.reduce((n, r) => n + f(r), 0);
  const teacherCost = sum((r) => r.usage.costUsd);
  const judgeCost = judge?.stats.costUsd ?? 0;

  const stats: PrototypeStats = {
    inputs: results.length,
    samples: {
      requested,
      answered: requested - unanswered,
      malformed: outcomes.malformed_arguments + outcomes.no_tool_call,
      rejectedBySchema: outcomes.unknown_function + outcomes.invalid_arguments,
      rejectedByVerifier,
      valid,
      outcomes,
    },
    decisions: {
      accepted: count('accepted'),
      rejectedByVote: count('vote'),
      rejectedByVerifier: count('verifier'),
      rejectedByJudge: count('judge'),
      noValidSamples: count('no_valid_samples'),
    },
    acceptanceRate: results.length === 0 ? NaN : count('accepted') / results.length,
    requests: {
      teacher: sum((r) => r.usage.requests),
      judge: judge ? judge.stats.httpRequests - judge.stats.retries + judge.stats.cacheHits : 0,
      judgeCached: judge?.stats.cacheHits ?? 0,
    },
    tokens: {
      prompt: sum((r) => r.usage.promptTokens),
      completion: sum((r) => r.usage.completionTokens),
      judgePrompt: judge?.stats.promptTokens ?? 0,
      judgeCompletion: judge?.stats.completionTokens ?? 0,
    },
    costUsd: { teacher: teacherCost, judge: judgeCost, total: teacherCost + judgeCost },
    ...(judge ? { judge: judge.report } : {}),
  };

  if (goldById && goldById.size > 0) {
    const byId = new Map(decisions.map((d) => [d.id, d]));
    const acc = { labelledInputs: 0, single: [0, 0], vote: [0, 0], final: [0, 0] };
    for (const r of results) {
      const gold = goldById.get(r.id);
      if (!gold) continue;
      acc.labelledInputs++;
      for (const s of r.samples) {
        acc.single[0]++;
        if (s.outcome === 'ok' && isExactMatch(gold, s.call)) acc.single[1]++;
      }
      const d = byId.get(r.id);
      if (!d?.winner) continue;
      const right = isExactMatch(gold, d.winner.call) ? 1 : 0;
      if (d.accepted || d.reason === 'judge') {
        acc.vote[0]++;
        acc.vote[1] += right;
      }
      if (d.accepted) {
        acc.final[0]++;
        acc.final[1] += right;
      }
    }
    const pair = ([n, hits]: number[]) => ({ count: n, exactMatch: n === 0 ? NaN : hits / n });
    stats.labelAccuracy = { labelledInputs: acc.labelledInputs, singleSample: pair(acc.single), acceptedByVote: pair(acc.vote), accepted: pair(acc.final) };
  }
  return stats;
}
