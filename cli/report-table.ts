// Prints report.json's model comparison as a plain table on stdout.
import { promises as fs } from 'node:fs';
import type { ModelReport as ModelRow, PipelineReport } from '../activities/evaluate/report';

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const num = (x: number | null) => (x === null || x === undefined ? '-' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : String(x));

export function formatReportTable(models: Record<string, ModelRow>): string {
  const header = ['model', 'intent acc', 'slot F1', 'exact match', 'schema ok', 'p50 ms', 'p95 ms', 'params', 'bytes'];
  const rows = Object.entries(models).map(([name, m]) => [
    name,
    pct(m.intent_acc),
    pct(m.slot_f1),
    pct(m.exact_match),
    pct(m.schema_valid),
    m.latency_ms_p50.toFixed(2),
    m.latency_ms_p95.toFixed(2),
    num(m.params),
    num(m.bytes),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/** The cascade's headline: the share of requests sent to the teacher to stay within the tolerance of it. */
export function formatCascadeLine(cascade: PipelineReport['cascade']): string {
  if (!cascade) return '';
  const within = `within ${(cascade.tolerance * 100).toFixed(0)} point of the teacher's exact match (${pct(cascade.teacher_exact_match)})`;
  const oracle = cascade.candidates?.find((c) => c.name === 'oracle')?.chosen;
  return cascade.chosen
    ? `cascade: ${cascade.student} sends ${pct(cascade.chosen.teacher_share)} of requests to the teacher to stay ${within}, at confidence threshold ${cascade.chosen.threshold.toPrecision(3)}${oracle ? ` (a perfect confidence: ${pct(oracle.teacher_share)})` : ''}\n`
    : `cascade: no confidence threshold keeps ${cascade.student} ${within}\n`;
}

export async function printReportTable(reportPath: string): Promise<void> {
  const report = JSON.parse(await fs.readFile(reportPath, 'utf8')) as Pick<PipelineReport, 'models' | 'dataset' | 'cascade'>;
  process.stdout.write(`\n${report.dataset.split} split:\n` + formatReportTable(report.models as Record<string, ModelRow>) + formatCascadeLine(report.cascade));
}
