// The report's "estimate against the run": what `supertiny plan` would have said of this config (config/estimate.ts),
// beside what the run took. The estimate is made here from the config and the split sizes the run used, so the
// report needs nothing from the workflow that the evaluation does not already receive.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Prices } from '../../config/endpoints';
import { estimateRun, type SplitSizes } from '../../config/estimate';
import type { PipelineConfig } from '../../config/pipeline';
import { html, type Html } from './html';

/** What the run took, as far as the evaluation activity can see it; null where it cannot. */
export interface RunActuals {
  /** Paid teacher requests and dollars of the whole pipeline (its spend ledger). */
  teacherRequests: number;
  teacherUsd: number;
  labellingUsd: number;
  /** The evaluation's teacher traffic (report split, n = 1). */
  evaluationRequests: number;
  evaluationPromptTokens: number;
  evaluationCompletionTokens: number;
  /** The transfer steps as the trainer measured them (compute_cpu_s, compute_wall_s, peak_memory_bytes). */
  trainingCpuSeconds: number;
  trainingWallSeconds: number;
  trainerPeakMemoryBytes: number | null;
  evaluationWallSeconds: number;
  /** From the pipeline's first paid teacher request to its last before the evaluation; null when it paid for none. */
  labellingWallSeconds: number | null;
  /** From the pipeline's first paid teacher request to the report; null when it paid for none. */
  runWallSeconds: number | null;
  /** The data folder's bytes when the report was written (every run that shares the folder). */
  dataFolderBytes: number | null;
}

export interface EstimateVsActualRow {
  what: string;
  unit: 'requests' | 'tokens' | 'usd' | 'seconds' | 'bytes';
  estimate: number;
  actual: number | null;
}

export interface EstimateVsActualReport {
  free_cores: number;
  rows: EstimateVsActualRow[];
  notes: string[];
}

export function estimateVsActual(input: { config: PipelineConfig; splits: SplitSizes; prices: Prices; simulated: boolean; actual: RunActuals }): EstimateVsActualReport {
  const { actual } = input;
  const estimate = estimateRun(input);
  const of = (stage: string, field: 'teacherRequests' | 'promptTokens' | 'completionTokens' | 'usd' | 'cpuSeconds' | 'wallSeconds', steps?: (step: string) => boolean) =>
    estimate.steps.filter((s) => s.stage === stage && (!steps || steps(s.step))).reduce((sum, s) => sum + s[field], 0);
  // The trainer's compute_cpu_s and compute_wall_s cover its training, not fetching the base or scoring on dev.
  const trainingStep = (step: string) => step !== 'base' && step !== 'score';
  return {
    free_cores: estimate.freeCores,
    rows: [
      { what: 'teacher requests (all stages)', unit: 'requests', estimate: estimate.total.teacherRequests, actual: actual.teacherRequests },
      { what: 'teacher dollars (all stages)', unit: 'usd', estimate: estimate.total.usd, actual: actual.teacherUsd },
      { what: 'labelling dollars', unit: 'usd', estimate: of('prototype', 'usd'), actual: actual.labellingUsd },
      { what: 'evaluation teacher requests', unit: 'requests', estimate: of('evaluate', 'teacherRequests'), actual: actual.evaluationRequests },
      { what: 'evaluation prompt tokens', unit: 'tokens', estimate: of('evaluate', 'promptTokens'), actual: actual.evaluationPromptTokens },
      { what: 'evaluation completion tokens', unit: 'tokens', estimate: of('evaluate', 'completionTokens'), actual: actual.evaluationCompletionTokens },
      { what: 'training CPU time (transfer steps)', unit: 'seconds', estimate: of('transfer', 'cpuSeconds', trainingStep), actual: actual.trainingCpuSeconds },
      { what: 'training wall time (transfer steps)', unit: 'seconds', estimate: of('transfer', 'wallSeconds', trainingStep), actual: actual.trainingWallSeconds },
      { what: 'labelling wall time', unit: 'seconds', estimate: of('prototype', 'wallSeconds'), actual: actual.labellingWallSeconds },
      {
        what: 'transfer and compression wall time',
        unit: 'seconds',
        estimate: of('transfer', 'wallSeconds') + of('compress', 'wallSeconds'),
        actual: actual.runWallSeconds === null || actual.labellingWallSeconds === null ? null : actual.runWallSeconds - actual.labellingWallSeconds - actual.evaluationWallSeconds,
      },
      { what: 'evaluation wall time', unit: 'seconds', estimate: of('evaluate', 'wallSeconds'), actual: actual.evaluationWallSeconds },
      { what: 'run wall time (first teacher request to report)', unit: 'seconds', estimate: estimate.total.wallSeconds, actual: actual.runWallSeconds },
      { what: 'trainer peak memory', unit: 'bytes', estimate: estimate.total.peakMemoryBytes, actual: actual.trainerPeakMemoryBytes },
      { what: 'data folder', unit: 'bytes', estimate: estimate.total.diskBytes, actual: actual.dataFolderBytes },
    ],
    notes: [
      ...estimate.notes,
      'the data folder is measured whole: in a folder that earlier runs used too, it is more than this run added',
      "wall times from the spend ledger's first and last paid labelling request, the trainer's own measure and the evaluation's clock; transfer and compression are what remains of the run",
    ],
  };
}

/**
 * When the pipeline's paid teacher requests began, and the last one reserved before `before` (the evaluation's
 * start): the labelling's span, from its spend ledger (append-only, in time order). Null when it paid for none
 * (every answer came from the request cache).
 */
export async function labellingSpan(ledgerFile: string, before: Date): Promise<{ first: Date; last: Date } | null> {
  const text = await fs.readFile(ledgerFile, 'utf8').catch(() => '');
  let first: Date | undefined;
  let last: Date | undefined;
  for (const line of text.split('\n')) {
    if (!line.includes('"reserve"')) continue;
    let at: Date;
    try {
      at = new Date((JSON.parse(line) as { at: string }).at);
    } catch {
      continue; // a line torn by a crash mid-write
    }
    if (at >= before) break;
    first ??= at;
    last = at;
  }
  return first && last ? { first, last } : null;
}

/** Bytes of every file under `dir`; null when it cannot be read. */
export async function folderTreeBytes(dir: string): Promise<number | null> {
  try {
    let total = 0;
    for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
    }
    return total;
  } catch {
    return null;
  }
}

function formatted(unit: EstimateVsActualRow['unit'], x: number): string {
  if (unit === 'usd') return `$${x.toFixed(x < 1 ? 3 : 2)}`;
  if (unit === 'bytes') return x >= 1e9 ? `${(x / 1e9).toFixed(2)} GB` : `${(x / 1e6).toFixed(0)} MB`;
  if (unit === 'seconds') return x >= 60 ? `${Math.floor(x / 60)} min ${Math.round(x % 60)} s` : `${x.toFixed(0)} s`;
  return Math.round(x).toLocaleString('en-US');
}

/** The estimate's distance from the actual, signed: "+12%". */
export function estimateError(row: EstimateVsActualRow): string {
  if (row.actual === null || row.actual === 0) return '–';
  const ratio = row.estimate / row.actual - 1;
  return `${ratio >= 0 ? '+' : ''}${(ratio * 100).toFixed(0)}%`;
}

export function estimateVsActualHtml(report: EstimateVsActualReport): Html {
  return html`<h2>The plan's estimate against the run</h2>
<p>What <code>supertiny plan</code> estimates for this config (times for this machine at ${report.free_cores} free cores), beside what the run took.</p>
<table><thead><tr><th>what</th><th>estimate</th><th>actual</th><th>estimate off by</th></tr></thead><tbody>${report.rows.map(
    (r) => html`<tr><th scope="row">${r.what}</th><td>${formatted(r.unit, r.estimate)}</td><td>${r.actual === null ? '–' : formatted(r.unit, r.actual)}</td><td>${estimateError(r)}</td></tr>`,
  )}</tbody></table>
<ul>${report.notes.map((n) => html`<li><small>${n}</small></li>`)}</ul>`;
}
