// The cascade on the report split: the served student answers, and an input whose confidence is below a
// threshold (or that has no call) goes to the teacher, as `supertiny serve --cascade-threshold` does.
// Exact match and the teacher's share at each threshold make the curve; the chosen threshold keeps exact
// match within `tolerance` of the teacher's at the lowest teacher share.
import { type Call } from '../../tasks/call-format';
import { compactCallFormat, type CallFormat } from '../../tasks/define';
import { isExactMatch } from '../../tasks/metrics';
import { html, type Html } from './html';

/** How the cascade reads a gold call and decides that an answer is right: the task's call format and metrics. */
export interface CascadeScoring {
  parse: CallFormat['parse'];
  exactMatch(gold: Call, prediction: Call | undefined): boolean;
}

const COMPACT_SCORING: CascadeScoring = { parse: compactCallFormat.parse, exactMatch: isExactMatch };

export interface CascadeInput {
  gold: string;
  /** The student's call and confidence (0 without a call). */
  student: { call?: Call; confidence: number };
  teacher: { call?: Call };
}

export interface CascadePoint {
  /** Inputs whose confidence is below this (and inputs without a student call) go to the teacher. */
  threshold: number;
  teacher_share: number;
  exact_match: number;
}

export interface CascadeReport {
  /** Which student row of the report answered (e.g. student_int8). */
  student: string;
  student_exact_match: number;
  teacher_exact_match: number;
  /** Largest loss of exact match against the teacher the chosen threshold may have. */
  tolerance: number;
  points: CascadePoint[];
  /** The threshold (at most 1) with the lowest teacher share within `tolerance` of the teacher; null when none is. */
  chosen: CascadePoint | null;
  /** Each confidence the student offers, beside the oracle: its choice at `tolerance` and its curve by teacher share. */
  candidates?: CascadeCandidate[];
  /** The served model's calibration (fitted on dev), when it has one. */
  calibration?: { examples: number; exactMatch: number; eceRaw: number; eceCalibrated: number };
}

export interface CascadeCandidate {
  name: string;
  chosen: CascadePoint | null;
  /** Exact match when the least confident 0%, 5%, ..., 100% of inputs go to the teacher. */
  by_share: { teacher_share: number; exact_match: number }[];
  /** Expected calibration error on the report split (10 bins); null for a confidence that is not a probability. */
  ece: number | null;
}

/** Exact match when the least confident share of inputs (those without a call first) goes to the teacher, share by share. */
export function shareCurve(inputs: readonly CascadeInput[], scoring: CascadeScoring = COMPACT_SCORING, steps = 20): CascadeCandidate['by_share'] {
  const rows = inputs
    .map((input, index) => {
      const parsed = scoring.parse(input.gold);
      if (!parsed.ok) throw new Error(`gold ${JSON.stringify(input.gold)} does not parse: ${parsed.error}`);
      return { index, confidence: input.student.call ? input.student.confidence : -1, student: scoring.exactMatch(parsed.call, input.student.call), teacher: scoring.exactMatch(parsed.call, input.teacher.call) };
    })
    .sort((a, b) => a.confidence - b.confidence || a.index - b.index);
  const n = rows.length;
  return Array.from({ length: steps + 1 }, (_, k) => {
    const escalated = Math.round((k / steps) * n);
    const exact = rows.reduce((sum, r, i) => sum + ((i < escalated ? r.teacher : r.student) ? 1 : 0), 0);
    return { teacher_share: n === 0 ? 0 : escalated / n, exact_match: n === 0 ? 0 : exact / n };
  });
}

const GRID = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1];

export function cascadeCurve(student: string, inputs: readonly CascadeInput[], tolerance = 0.01, scoring: CascadeScoring = COMPACT_SCORING): CascadeReport {
  const n = inputs.length;
  const rows = inputs.map((input) => {
    const parsed = scoring.parse(input.gold);
    if (!parsed.ok) throw new Error(`gold ${JSON.stringify(input.gold)} does not parse: ${parsed.error}`);
    // Without a call the server always asks the teacher: such an input counts as confidence -1.
    const confidence = input.student.call ? input.student.confidence : -1;
    return { confidence, student: scoring.exactMatch(parsed.call, input.student.call), teacher: scoring.exactMatch(parsed.call, input.teacher.call) };
  });
  const mean = (count: number) => (n === 0 ? 0 : count / n);
  const at = (threshold: number): CascadePoint => {
    let escalated = 0;
    let exact = 0;
    for (const r of rows) {
      const toTeacher = r.confidence < threshold;
      if (toTeacher) escalated++;
      if (toTeacher ? r.teacher : r.student) exact++;
    }
    return { threshold, teacher_share: mean(escalated), exact_match: mean(exact) };
  };
  const teacherExact = mean(rows.filter((r) => r.teacher).length);
  // Every distinct confidence is a threshold at which the mix changes; the grid makes the plotted curve.
  const candidates = [...new Set([...GRID, ...rows.map((r) => r.confidence).filter((c) => c > 0 && c <= 1)])].sort((a, b) => a - b);
  let chosen: CascadePoint | null = null;
  for (const threshold of candidates) {
    const point = at(threshold);
    if (point.exact_match >= teacherExact - tolerance - 1e-12 && (!chosen || point.teacher_share < chosen.teacher_share)) chosen = point;
  }
  return {
    student,
    student_exact_match: mean(rows.filter((r) => r.student).length),
    teacher_exact_match: teacherExact,
    tolerance,
    points: GRID.map(at),
    chosen,
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

const CANDIDATE_COLORS = ['#3f8f6b', '#c08a2b', '#4a6fa5', '#b5523b'];

/** The report's cascade section: the curve (exact match against teacher share) and the chosen threshold. */
export function cascadeHtml(cascade: CascadeReport): Html {
  const W = 460, H = 300, L = 60, R = 20, T = 30, B = 50;
  const sx = (v: number) => L + v * (W - L - R);
  const ys = cascade.points.map((p) => p.exact_match).concat(cascade.teacher_exact_match, cascade.student_exact_match);
  const [lo, hi] = [Math.max(0, Math.floor(Math.min(...ys) * 10) / 10), Math.min(1, Math.ceil(Math.max(...ys) * 10) / 10 || 1)];
  const sy = (v: number) => T + (1 - (v - lo) / Math.max(hi - lo, 0.1)) * (H - T - B);
  const line = cascade.points.map((p) => `${sx(p.teacher_share).toFixed(1)},${sy(p.exact_match).toFixed(1)}`).join(' ');
  const chosen = cascade.chosen;
  const rows = cascade.points
    .filter((p, i) => i % 2 === 0 || p.threshold >= 0.95)
    .map((p) => html`<tr><td>${p.threshold}</td><td>${pct(p.teacher_share)}</td><td>${pct(p.exact_match)}</td></tr>`);
  return html`<h2>Cascade: ${cascade.student} with the teacher</h2>
<p>An input goes to the teacher when the student's confidence is below the threshold (or it has no call), as
<code>supertiny serve --cascade-threshold</code> does. Student alone ${pct(cascade.student_exact_match)} exact match, teacher alone
${pct(cascade.teacher_exact_match)}. ${
    chosen
      ? html`<strong>Chosen threshold ${chosen.threshold.toPrecision(3)}</strong>: ${pct(chosen.exact_match)} exact match (within ${pct(cascade.tolerance)} of the teacher) with ${pct(chosen.teacher_share)} of requests sent to the teacher.`
      : html`No threshold keeps exact match within ${pct(cascade.tolerance)} of the teacher.`
  }</p>
<div class="charts"><figure><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="cascade curve">
  <text x="${W / 2}" y="18" text-anchor="middle" class="t">Exact match against the teacher's share</text>
  <line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" class="ax"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" class="ax"/>
  ${[0, 0.25, 0.5, 0.75, 1].map((v) => html`<text x="${sx(v)}" y="${H - B + 16}" text-anchor="middle" class="tk">${v * 100}%</text>`)}
  ${[lo, (lo + hi) / 2, hi].map((v) => html`<text x="${L - 6}" y="${sy(v) + 4}" text-anchor="end" class="tk">${pct(v)}</text><line x1="${L}" x2="${W - R}" y1="${sy(v)}" y2="${sy(v)}" class="grid"/>`)}
  <line x1="${L}" x2="${W - R}" y1="${sy(cascade.teacher_exact_match)}" y2="${sy(cascade.teacher_exact_match)}" stroke="#b5523b" stroke-dasharray="4 3"><title>teacher alone</title></line>
  <polyline points="${line}" fill="none" stroke="#7a4fa0" stroke-width="2"/>
  ${(cascade.candidates ?? []).map(
    (c, i) =>
      html`<polyline points="${c.by_share.map((p) => `${sx(p.teacher_share).toFixed(1)},${sy(p.exact_match).toFixed(1)}`).join(' ')}" fill="none" stroke="${CANDIDATE_COLORS[i % CANDIDATE_COLORS.length]}" stroke-width="1.5" stroke-dasharray="${c.name === 'oracle' ? '2 2' : '6 2'}"><title>${c.name}</title></polyline>`,
  )}
  ${chosen && html`<circle cx="${sx(chosen.teacher_share)}" cy="${sy(chosen.exact_match)}" r="6" fill="#3f8f6b"><title>chosen: ${chosen.threshold.toPrecision(3)}</title></circle>`}
  <text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle" class="tk">share of requests sent to the teacher</text>
  <text x="14" y="${(T + H - B) / 2}" text-anchor="middle" class="tk" transform="rotate(-90 14 ${(T + H - B) / 2})">exact match</text>
</svg></figure>
<table style="width:auto"><thead><tr><th>threshold</th><th>to teacher</th><th>exact match</th></tr></thead><tbody>${rows}</tbody></table></div>
${
    cascade.candidates &&
    html`<h3>Which confidence ranks the student's errors</h3>
<p>The share of requests each confidence must send to the teacher to stay within ${pct(cascade.tolerance)} of it; the oracle knows which answers are wrong (the best any confidence can do with this student).${
      cascade.calibration &&
      html` The served confidence is a logistic regression of exact match on the encoder's signals (intent probability, margin and entropy; the tag path's weakest, mean and margin; value heads; length), fitted on ${cascade.calibration.examples} dev answers: expected calibration error on dev ${cascade.calibration.eceRaw.toFixed(3)} raw, ${cascade.calibration.eceCalibrated.toFixed(3)} calibrated.`
    }</p>
<table style="width:auto"><thead><tr><th>confidence</th><th>to teacher at ${pct(cascade.tolerance)}</th><th>exact match there</th><th>ECE (this split)</th></tr></thead><tbody>${cascade.candidates.map(
      (c, i) =>
        html`<tr><td style="text-align:left"><span style="color:${CANDIDATE_COLORS[i % CANDIDATE_COLORS.length]}">■</span> ${c.name}</td><td>${c.chosen ? pct(c.chosen.teacher_share) : '–'}</td><td>${c.chosen ? pct(c.chosen.exact_match) : '–'}</td><td>${c.ece === null ? '–' : c.ece.toFixed(3)}</td></tr>`,
    )}</tbody></table>`
  }
`;
}

export const renderCascadeHtml = (cascade: CascadeReport): string => cascadeHtml(cascade).toString();
