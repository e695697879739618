// report.json and report.html: the model comparison a user reads first.
import { type CascadeReport, cascadeHtml } from './cascade';
import { type CostReport, costHtml } from './cost';
import { type EstimateVsActualReport, estimateVsActualHtml } from './estimate-vs-actual';
import { html, pageStart, type Html } from './html';
import type { GateDecision } from '../types';
import { QUANTIZATION_NAMES, type Quantization } from '../../config/pipeline';

export interface ModelReport {
  intent_acc: number;
  slot_f1: number;
  exact_match: number;
  schema_valid: number;
  latency_ms_p50: number;
  latency_ms_p95: number;
  /** Single requests per second, sequential. */
  throughput_rps: number;
  params: number | null;
  bytes: number | null;
  /** How latency was measured (runtime, batch size, threads). */
  latency_note: string;
}

export type ModelName = 'teacher' | 'student' | 'student_onnx' | `student_${Quantization}`;

export interface PipelineReport {
  pipeline: string;
  dataset: { name: string; path: string | null; split: string; examples: number };
  config: unknown;
  /** Present when the config named no student family: the family chosen from the task's schema, and why. */
  student_family?: { family: string; chosen_from: string; reason: string };
  /** The encoder student's pretrained base: a registry base (name, upstream title, license, source) or the config's folder. */
  student_base?: { name: string; title: string; license: string; source: string };
  models: Partial<Record<ModelName, ModelReport>>;
  gates: GateDecision[];
  /** Dev quality of the PyTorch student after each transfer step. */
  transfer: { step: string; dev_exact_match: number | null; dev_intent_acc: number | null }[];
  prototype: Record<string, number>;
  /** The served student with the teacher behind it, by confidence threshold. */
  cascade?: CascadeReport;
  /** Dollars per 1M requests of the teacher, the student and the cascade; the one-off spend; break-even. */
  cost?: CostReport;
  /** What `supertiny plan` estimates for this config, beside what the run took (teacher, time, memory, disk). */
  estimate?: EstimateVsActualReport;
  /** Each model's predictions file on the report split, beside report.json (JSONL {id, input, gold, prediction, correct}). */
  predictions?: Partial<Record<ModelName, string>>;
  createdAt: string;
}

// The quantized students' colours in QUANTIZATIONS' order, the last one again for any further scheme.
const QUANTIZED_COLORS = ['#7a4fa0', '#c08a2b', '#5b8c99'];
const LABELS = {
  teacher: 'Teacher (API)',
  student: 'Student (PyTorch)',
  student_onnx: 'Student (ONNX fp32)',
  ...Object.fromEntries(QUANTIZATION_NAMES.map((q) => [`student_${q}`, `Student (ONNX ${q})`])),
} as Record<ModelName, string>;
const COLORS = {
  teacher: '#b5523b',
  student: '#4a6fa5',
  student_onnx: '#3f8f6b',
  ...Object.fromEntries(QUANTIZATION_NAMES.map((q, i) => [`student_${q}`, QUANTIZED_COLORS[Math.min(i, QUANTIZED_COLORS.length - 1)]])),
} as Record<ModelName, string>;

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const human = (x: number | null, unit = '') =>
  x === null ? '–' : x >= 1e9 ? `${(x / 1e9).toFixed(2)} G${unit}` : x >= 1e6 ? `${(x / 1e6).toFixed(2)} M${unit}` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k${unit}` : `${x} ${unit}`;

/** A log-x scatter of exact match against a cost (latency or bytes), as inline SVG. */
function scatter(report: PipelineReport, title: string, xLabel: string, x: (m: ModelReport) => number | null): Html {
  const points = (Object.entries(report.models) as [ModelName, ModelReport][])
    .map(([name, m]) => ({ name, x: x(m), y: m.exact_match }))
    .filter((p): p is { name: ModelName; x: number; y: number } => p.x !== null && p.x > 0);
  const W = 460, H = 300, L = 60, R = 36, T = 30, B = 50;
  if (points.length === 0) return html`<figure><figcaption>${title}: no data</figcaption></figure>`;
  const lx = points.map((p) => Math.log10(p.x));
  const [minX, maxX] = [Math.floor(Math.min(...lx)), Math.ceil(Math.max(...lx) + 1e-9)];
  const span = Math.max(maxX - minX, 1);
  const sx = (v: number) => L + ((Math.log10(v) - minX) / span) * (W - L - R);
  const sy = (v: number) => T + (1 - v) * (H - T - B);
  const ticks = Array.from({ length: span + 1 }, (_, i) => minX + i);
  return html`<figure>
<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${title}">
  <text x="${W / 2}" y="18" text-anchor="middle" class="t">${title}</text>
  <line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" class="ax"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" class="ax"/>
  ${ticks.map((t) => html`<text x="${sx(10 ** t)}" y="${H - B + 16}" text-anchor="middle" class="tk">${human(10 ** t)}</text>`)}
  ${[0, 0.25, 0.5, 0.75, 1].map((v) => html`<text x="${L - 6}" y="${sy(v) + 4}" text-anchor="end" class="tk">${v * 100}%</text><line x1="${L}" x2="${W - R}" y1="${sy(v)}" y2="${sy(v)}" class="grid"/>`)}
  <text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle" class="tk">${xLabel} (log scale)</text>
  <text x="14" y="${(T + H - B) / 2}" text-anchor="middle" class="tk" transform="rotate(-90 14 ${(T + H - B) / 2})">exact match</text>
  ${points.map((p, i) => {
    // A label that would run past the plot's right edge (about 6 px a character) goes to its point's left.
    const left = sx(p.x) + 9 + LABELS[p.name].length * 6 > W;
    return html`<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="6" fill="${COLORS[p.name]}"><title>${LABELS[p.name]}: ${pct(p.y)}</title></circle><text x="${sx(p.x) + (left ? -9 : 9)}" y="${sy(p.y) + (i % 2 ? 18 : -8)}"${left && html` text-anchor="end"`} class="lbl">${LABELS[p.name]}</text>
  `;
  })}
</svg></figure>`;
}

const REPORT_CSS = `table{width:100%}
.dot{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.5em}
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}svg{background:#fbfcfd;border:1px solid #e3e6ec;border-radius:6px}
.t{font-weight:600;font-size:13px}.tk{font-size:11px;fill:#5b6475}.lbl{font-size:11px}.ax{stroke:#8a93a3}.grid{stroke:#eef0f4}
small{color:#5b6475}`;

export function renderReportHtml(report: PipelineReport): string {
  // The teacher simulator answers on loopback: it is named as such, and its timings are marked simulated.
  const simulated = (name: ModelName) => name === 'teacher' && report.cost?.teacher.simulated === true;
  const ms = (name: ModelName, value: number) => (simulated(name) ? html`<small title="the teacher SIMULATOR on loopback, not an LLM">${value.toFixed(2)} (sim.)</small>` : value.toFixed(2));
  const rows = (Object.entries(report.models) as [ModelName, ModelReport][]).map(
    ([name, m]) => html`<tr><th scope="row"><span class="dot" style="background:${COLORS[name]}"></span>${simulated(name) ? 'Teacher SIMULATOR' : LABELS[name]}</th>
<td>${pct(m.intent_acc)}</td><td>${pct(m.slot_f1)}</td><td>${pct(m.exact_match)}</td><td>${pct(m.schema_valid)}</td>
<td>${ms(name, m.latency_ms_p50)}</td><td>${ms(name, m.latency_ms_p95)}</td><td>${simulated(name) ? html`<small>–</small>` : m.throughput_rps.toFixed(0)}</td><td>${human(m.params)}</td><td>${human(m.bytes, 'B')}</td></tr>
`,
  );
  const gates = report.gates.map((g) => {
    const gain = g.bytesBefore !== undefined && g.bytesAfter !== undefined ? `; size ${human(g.bytesBefore, 'B')} → ${human(g.bytesAfter, 'B')}` : '';
    const reference = g.exactMatchUncompressed !== undefined ? ` (uncompressed ${pct(g.exactMatchUncompressed)})` : '';
    return html`<li><strong>${g.step}</strong>: dev exact match ${pct(g.exactMatchBefore)} → ${pct(g.exactMatchAfter)}${reference}${gain}; ${g.kept ? 'kept' : html`<em>rolled back</em>`} (${g.reason})</li>`;
  });
  const notes = (Object.entries(report.models) as [ModelName, ModelReport][]).map(([n, m]) => html`<li>${LABELS[n]}: ${m.latency_note}</li>`);
  const predictions = (Object.entries(report.predictions ?? {}) as [ModelName, string][]).map(
    ([name, file]) => html`<li><a href="${encodeURIComponent(file)}">${LABELS[name]}</a></li>`,
  );
  return html`${pageStart(`supertiny report: ${report.pipeline}`, REPORT_CSS)}
<h1>supertiny: ${report.pipeline}</h1>
<p class="sub">${report.dataset.name}, ${report.dataset.split} split, ${report.dataset.examples} utterances · ${report.createdAt}</p>
<table><thead><tr><th>model</th><th>intent acc</th><th>slot F1</th><th>exact match</th><th>schema valid</th><th>p50 ms</th><th>p95 ms</th><th>req/s</th><th>params</th><th>bytes</th></tr></thead>
<tbody>${rows}</tbody></table>
<div class="charts">${scatter(report, 'Quality against latency', 'p50 latency, ms', (m) =>
    // The teacher simulator answers on loopback: its latency is not an LLM's, so it stays off the chart.
    m === report.models.teacher && report.cost?.teacher.simulated ? null : m.latency_ms_p50,
  )}${scatter(report, 'Quality against size', 'bytes on disk', (m) => m.bytes)}</div>
${report.cascade && cascadeHtml(report.cascade)}${report.cost && costHtml(report.cost)}${report.estimate && estimateVsActualHtml(report.estimate)}
${
    report.student_family &&
    html`<p class="student-family">Student family <strong>${report.student_family.family}</strong>, chosen automatically from the ${report.student_family.chosen_from} (the config names none): ${report.student_family.reason}.</p>`
  }
${
    report.student_base &&
    html`<p class="student-base">Student base <strong>${report.student_base.name}</strong>: ${report.student_base.title}, license ${report.student_base.license} (${report.student_base.source}).</p>`
  }
<h2>Transfer steps (dev split, PyTorch student)</h2><ul>${
    report.transfer.length > 0
      ? report.transfer.map(
          (t) => html`<li><strong>${t.step}</strong>: exact match ${t.dev_exact_match === null ? '–' : pct(t.dev_exact_match)}, intent accuracy ${t.dev_intent_acc === null ? '–' : pct(t.dev_intent_acc)}</li>`,
        )
      : html`<li>no steps</li>`
  }</ul>
<h2>Compression gates (dev split)</h2><ul>${gates.length > 0 ? gates : html`<li>no compression steps</li>`}</ul>
<h2>How it was measured</h2><ul>${notes}</ul>
${
    predictions.length > 0 &&
    html`<h2>Predictions</h2><p>Each model's answers on the ${report.dataset.split} split (JSONL: id, input, gold, prediction, correct); <code>supertiny score</code> scores any such file with the task's metrics.</p><ul>${predictions}</ul>`
  }
<p><small>Generated by supertiny. The teacher row is the configured teacher endpoint; when that is the teacher simulator its quality and latency are those of a simulator, not of a real LLM.</small></p>
</body></html>
`.toString();
}
