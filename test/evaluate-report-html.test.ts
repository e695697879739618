// report.html escapes every value it interpolates: a hostile pipeline name, gate, note, dataset or file name
// shows as text, never as markup.
import { cascadeCurve } from '../activities/evaluate/cascade';
import { costReport } from '../activities/evaluate/cost';
import { escapeHtml, html } from '../activities/evaluate/html';
import { renderReportHtml, type PipelineReport } from '../activities/evaluate/report';

const HOSTILE = `<script>alert("x")</script>' onmouseover='alert(1)" x="`;

describe('html', () => {
  test('escapes interpolated text and keeps markup built by html', () => {
    const item = html`<li>${HOSTILE}</li>`;
    expect(html`<ul>${[item, item]}</ul>`.toString()).toBe(`<ul><li>${escapeHtml(HOSTILE)}</li><li>${escapeHtml(HOSTILE)}</li></ul>`);
    expect(escapeHtml(HOSTILE)).not.toMatch(/[<>"']/);
  });

  test('renders null, undefined and false as nothing, and numbers as text', () => {
    expect(html`a${null}b${undefined}c${false}d${1.5}`.toString()).toBe('abcd1.5');
  });

  test('a plain string that looks like markup is escaped, not trusted', () => {
    expect(html`${'<b>bold</b>'}`.toString()).toBe('&lt;b&gt;bold&lt;/b&gt;');
  });
});

describe('report.html', () => {
  const model = { intent_acc: 0.9, slot_f1: 0.8, exact_match: 0.7, schema_valid: 1, latency_ms_p50: 2, latency_ms_p95: 3, throughput_rps: 100, params: 1e6, bytes: 1e6, latency_note: HOSTILE };
  const cascade = { ...cascadeCurve('student_int8', []), student: HOSTILE };
  const cost = costReport({
    teacher: { promptTokens: 1000, completionTokens: 100, requests: 10, prices: { inputPerMTok: 0.15, outputPerMTok: 0.6 }, simulated: false },
    student: { model: HOSTILE, cpuSeconds: 1, requests: 10, vcpuHourUsd: 0.045, how: HOSTILE },
    cascade: null,
    prototypeUsd: 1,
    training: { cpuSeconds: 1, gpuSeconds: 0, vcpuHourUsd: 0.045, gpuHourUsd: 3, note: HOSTILE },
  });
  const report: PipelineReport = {
    pipeline: HOSTILE,
    dataset: { name: HOSTILE, path: null, split: HOSTILE, examples: 2 },
    config: {},
    student_family: { family: HOSTILE, chosen_from: HOSTILE, reason: HOSTILE },
    models: { teacher: model, student_int8: model },
    // A report read back from disk is not re-checked: its gate step may be anything, and is escaped too.
    gates: [{ step: HOSTILE as never, exactMatchBefore: 0.7, exactMatchAfter: 0.6, kept: false, reason: HOSTILE }],
    transfer: [{ step: HOSTILE, dev_exact_match: 0.5, dev_intent_acc: null }],
    prototype: {},
    cascade,
    cost,
    predictions: { teacher: `${HOSTILE}.jsonl` },
    createdAt: HOSTILE,
  };
  const page = renderReportHtml(report);

  test('a hostile pipeline name, gate reason, note and file name appear escaped', () => {
    expect(page).not.toContain('<script');
    expect(page).not.toContain(`' onmouseover='`);
    expect(page).not.toContain(`" x="`);
    expect(page).toContain(`<title>supertiny report: ${escapeHtml(HOSTILE)}</title>`);
    expect(page).toContain(`<h1>supertiny: ${escapeHtml(HOSTILE)}</h1>`);
    expect(page).toContain(`(${escapeHtml(HOSTILE)})</li>`); // the gate's reason
    expect(page).toContain(`<li>Teacher (API): ${escapeHtml(HOSTILE)}</li>`); // the latency note
    expect(page).toContain(`<h2>Cascade: ${escapeHtml(HOSTILE)} with the teacher</h2>`);
    expect(page).toContain(`; training ${escapeHtml(HOSTILE)}).`); // the training note of the one-off spend
    expect(page).toContain(`<a href="${encodeURIComponent(`${HOSTILE}.jsonl`).replace(/'/g, '&#39;')}">Teacher (API)</a>`);
  });

  test('every hostile value shows up once per place it is used, as text', () => {
    // Title, heading, dataset name, split (subtitle and predictions), created at, the family (3), the transfer
    // step, the gate's step and reason, two latency notes, the cascade's student, the cost's student model
    // (table and bar), how it was measured, and the training note.
    expect(page.split(escapeHtml(HOSTILE)).length - 1).toBe(19);
  });
});
