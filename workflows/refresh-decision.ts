// The promotion rule of a refresh, as a pure function (workflow-safe): the candidate replaces the deployed
// student only when it is not worse on the frozen split (exact match within a tolerance) AND better on the
// fresh slice of traffic (exact match against the teacher's labels).

export interface SplitScore {
  exactMatch: number;
  count: number;
}

export interface PromotionRule {
  /** Points of frozen exact match the candidate may lose against the deployed model (negative: it must gain that much). */
  frozenTolerancePoints: number;
  /** Points of fresh exact match the candidate must gain, strictly more than this (0: any gain). */
  freshMinGainPoints: number;
}

export interface PromotionDecision {
  promote: boolean;
  /** One sentence per condition, then the verdict. */
  reason: string;
  frozen: { deployed: number; candidate: number; deltaPoints: number; required: number; passed: boolean; count: number };
  fresh: { deployed: number; candidate: number; deltaPoints: number; passed: boolean; count: number };
  rule: PromotionRule;
}

const points = (x: number) => `${(x * 100).toFixed(2)}%`;
const signed = (p: number) => `${p >= 0 ? '+' : ''}${p.toFixed(2)}`;

/** Float noise of exact-match fractions must not decide a tie. */
const EPSILON_POINTS = 1e-9;

export function decidePromotion(
  scores: { frozen: { deployed: SplitScore; candidate: SplitScore }; fresh: { deployed: SplitScore; candidate: SplitScore } },
  rule: PromotionRule,
): PromotionDecision {
  const { frozen, fresh } = scores;
  const frozenDelta = (frozen.candidate.exactMatch - frozen.deployed.exactMatch) * 100;
  const required = frozen.deployed.exactMatch - rule.frozenTolerancePoints / 100;
  const frozenPassed = frozenDelta >= -rule.frozenTolerancePoints - EPSILON_POINTS;
  const freshDelta = (fresh.candidate.exactMatch - fresh.deployed.exactMatch) * 100;
  const freshPassed = fresh.deployed.count > 0 && freshDelta > rule.freshMinGainPoints + EPSILON_POINTS;
  const frozenText = `frozen split (${frozen.candidate.count} examples): candidate ${points(frozen.candidate.exactMatch)} vs deployed ${points(frozen.deployed.exactMatch)} (${signed(frozenDelta)} points; needs at least ${points(Math.max(0, required))}, the deployed model's minus ${rule.frozenTolerancePoints} points)`;
  const freshText =
    fresh.deployed.count === 0
      ? 'fresh slice: empty (no traffic input fell into it, or the teacher agreed on none), so the candidate cannot show it is better'
      : `fresh slice (${fresh.candidate.count} examples, teacher labels as reference): candidate ${points(fresh.candidate.exactMatch)} vs deployed ${points(fresh.deployed.exactMatch)} (${signed(freshDelta)} points; needs more than ${signed(rule.freshMinGainPoints)})`;
  const promote = frozenPassed && freshPassed;
  const failed = [!frozenPassed ? 'worse on the frozen split' : '', !freshPassed ? 'not better on the fresh slice' : ''].filter(Boolean).join(' and ');
  const verdict = promote ? 'promoted: not worse on the frozen split and better on the fresh slice' : `kept the deployed version: the candidate is ${failed}`;
  return {
    promote,
    reason: `${verdict}. ${frozenText}; ${freshText}.`,
    frozen: { deployed: frozen.deployed.exactMatch, candidate: frozen.candidate.exactMatch, deltaPoints: frozenDelta, required, passed: frozenPassed, count: frozen.candidate.count },
    fresh: { deployed: fresh.deployed.exactMatch, candidate: fresh.candidate.exactMatch, deltaPoints: freshDelta, passed: freshPassed, count: fresh.candidate.count },
    rule,
  };
}
