// The refresh's report: what traffic came in, what the teacher was paid for it, how the candidate compares
// with the deployed student on the frozen split and the fresh slice, and whether it was promoted and why.
import type { GateDecision } from '../types';
import type { PromotionDecision } from '../../workflows/refresh-decision';
import type { TrafficCounts } from './traffic';
import { html, pageStart } from '../evaluate/html';

export interface ModelOnSplit {
  exact_match: number;
  intent_acc?: number;
  /** The cascade's share of requests sent to the teacher to stay within 1 point of it (fresh slice only; null: no threshold is). */
  teacher_share?: number | null;
  /** Exact match of the cascade when the least confident 20% and 50% of requests go to the teacher (fresh slice only). */
  cascade_at_20pct?: number;
  cascade_at_50pct?: number;
}

export interface RefreshReport {
  refresh: string;
  pipeline: string;
  deployment: { path: string; deployed_version: string; candidate_version: string | null; serving_after: string };
  /** Where the candidate's training started: the deployed student's trained weights, or the base. */
  start: { from: 'deployed' | 'base'; note: string };
  traffic: TrafficCounts & { source: string; train: number; fresh: number; labelsFromCapture?: number; fresh_with_reference: number; fresh_without_agreement: number; accepted_for_training: number };
  cost: {
    teacher_usd: number;
    teacher_paid_requests: number;
    traffic_labelling: { teacher_requests: number; paid_now: number; paid_now_usd: number; without_paying: number };
  };
  frozen: { split: string; examples: number; deployed: ModelOnSplit; candidate: ModelOnSplit };
  fresh: { examples: number; deployed: ModelOnSplit; candidate: ModelOnSplit };
  gates: GateDecision[];
  decision: PromotionDecision & { promoted: boolean; refused?: string };
  wall_seconds: number;
  createdAt: string;
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)}%`);
const delta = (a: number, b: number) => {
  const d = (b - a) * 100;
  return `${d >= 0 ? '+' : ''}${d.toFixed(1)}`;
};

export function renderRefreshHtml(r: RefreshReport): string {
  const t = r.traffic;
  const c = r.cost.traffic_labelling;
  const row = (name: string, split: { deployed: ModelOnSplit; candidate: ModelOnSplit }, examples: number) =>
    html`<tr><th scope="row">${name} (${examples})</th><td>${pct(split.deployed.exact_match)}</td><td>${pct(split.candidate.exact_match)}</td><td>${delta(split.deployed.exact_match, split.candidate.exact_match)}</td></tr>`;
  return html`${pageStart(`supertiny refresh: ${r.pipeline}`, '.yes{color:#2f7a52}.no{color:#a3412b}', 900)}
<h1>supertiny refresh: ${r.pipeline}</h1>
<p class="sub">${r.refresh} · deployment ${r.deployment.path} · ${r.createdAt} · ${r.wall_seconds.toFixed(0)} s</p>
<p class="${r.decision.promoted ? 'yes' : 'no'}"><strong>${r.decision.promoted ? `Promoted ${r.deployment.candidate_version}` : `Kept ${r.deployment.deployed_version}`}</strong>: ${r.decision.refused ?? r.decision.reason}</p>
<h2>Traffic</h2>
<p>${t.lines} lines in ${t.files} file(s) (${t.captured} captured requests, ${t.cascaded} of them cascaded to the teacher; ${t.dataFileLines} data-file lines):
${t.unique} distinct inputs, ${t.newExamples} new to the deployed student's training data, ${t.inFrozenSplits} left out as part of the frozen splits.
${t.train} went to training (${t.accepted_for_training} accepted by the teacher's vote), ${t.fresh} to the fresh slice (${t.fresh_with_reference} with an agreed teacher label).</p>
<p>Teacher: ${c.teacher_requests} requests behind the traffic's labels, ${c.paid_now} paid by this refresh ($${c.paid_now_usd.toFixed(4)}), ${c.without_paying} answered without paying (request cache, or labels made before); ${t.labelsFromCapture ?? 0} inputs labelled by the teacher's answer that serve captured when its cascade asked (not paid again).
The whole refresh paid $${r.cost.teacher_usd.toFixed(4)} for ${r.cost.teacher_paid_requests} requests.</p>
<h2>Deployed against candidate</h2>
<p>Training started ${r.start.note}.</p>
<table><thead><tr><th>exact match</th><th>deployed</th><th>candidate</th><th>points</th></tr></thead><tbody>
${row(`frozen ${r.frozen.split} split`, r.frozen, r.frozen.examples)}
${row('fresh traffic (teacher labels)', r.fresh, r.fresh.examples)}
<tr><th scope="row">cascade's teacher share on fresh traffic</th><td>${pct(r.fresh.deployed.teacher_share)}</td><td>${pct(r.fresh.candidate.teacher_share)}</td><td></td></tr>
<tr><th scope="row">fresh exact match, least confident 20% to the teacher</th><td>${pct(r.fresh.deployed.cascade_at_20pct)}</td><td>${pct(r.fresh.candidate.cascade_at_20pct)}</td><td></td></tr>
<tr><th scope="row">fresh exact match, least confident 50% to the teacher</th><td>${pct(r.fresh.deployed.cascade_at_50pct)}</td><td>${pct(r.fresh.candidate.cascade_at_50pct)}</td><td></td></tr>
</tbody></table>
<p><small>Rule: promote when the candidate's frozen exact match is at least the deployed model's minus ${r.decision.rule.frozenTolerancePoints} points, and its fresh exact match is more than ${r.decision.rule.freshMinGainPoints} points above the deployed model's.
The cascade's teacher share is the share of requests it must send to the teacher to stay within 1 point of it.</small></p>
<h2>Compression gates</h2>
<ul>${r.gates.map((g) => html`<li>${g.step}: ${g.kept ? 'kept' : 'rolled back'} (${g.reason})</li>`)}</ul>
</body></html>
`.toString();
}
