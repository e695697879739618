// The plan's estimate of a config against a finished run's data folder (BENCHMARKS.md, "The plan's estimate
// against the run"): paid requests and dollars from its report's spend, the trainer's own time and memory,
// each stage's span from the artifact store's recordedAt, and the data folder's bytes. Prints a markdown table.
//   npx tsx scripts/estimate-vs-run.ts --run DATA_DIR [--config FILE] [--free-cores N]
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { folderTreeBytes } from '../activities/evaluate/estimate-vs-actual';
import { planRun } from '../cli/plan';
import { readEnv } from '../config/env';

const { values } = parseArgs({ options: { run: { type: 'string' }, config: { type: 'string' }, 'free-cores': { type: 'string' } } });
if (!values.run) throw new Error('usage: npx tsx scripts/estimate-vs-run.ts --run DATA_DIR [--config FILE] [--free-cores N]');
const runDir = values.run;

async function main() {
  const planArgs = [...(values.config ? ['--config', values.config] : []), ...(values['free-cores'] ? ['--free-cores', values['free-cores']] : [])];
  const { estimate } = await planRun(planArgs, readEnv());
  const outputs = path.join(runDir, 'artifacts', 'outputs');
  // Each memoised output with when it was recorded; a scoreModel output is named by its runtime too.
  const outputsRecorded: { activity: string; at: number; value: Record<string, unknown> }[] = [];
  for (const name of await fs.readdir(outputs)) {
    const { recordedAt, value } = JSON.parse(await fs.readFile(path.join(outputs, name), 'utf8')) as { recordedAt: string; value: Record<string, unknown> };
    const [activity, variant] = name.split('-');
    outputsRecorded.push({ activity: activity === 'scoreModel' ? `${activity}-${variant}` : activity, at: Date.parse(recordedAt), value });
  }
  /** The latest output of the first of `activities` that has one (before `until`): it ends its part of the run. */
  const latest = (activities: string[], until = Infinity) => {
    for (const activity of activities) {
      const found = outputsRecorded.filter((o) => o.activity === activity && o.at < until).sort((a, b) => b.at - a.at)[0];
      if (found) return found;
    }
    throw new Error(`${runDir} has no output of ${activities.join(' or ')}`);
  };
  const recorded = { get: (activity: string) => latest([activity]) };
  const at = (activity: string) => latest([activity]).at / 1000;
  // Runs from before scoreModel: scoreStudentOnDev ended the transfer stage, evaluateModels the evaluation.
  const transferEnd = latest(['scoreModel-trainer', 'scoreStudentOnDev'], latest(['calibrateConfidence']).at).at / 1000;
  const reportAt = latest(['writeReport', 'evaluateModels']).at / 1000;
  const metrics = recorded.get('trainStudent')!.value.metrics as Record<string, number>;
  const reportFolder = (await fs.readdir(path.join(runDir, 'reports')))[0];
  const report = JSON.parse(await fs.readFile(path.join(runDir, 'reports', reportFolder, 'report.json'), 'utf8'));
  const spend = report.cost.teacher_spend as { paid_requests: number; spent_usd: number };

  const sum = (stage: string, field: 'cpuSeconds' | 'wallSeconds', training = false) =>
    estimate.steps.filter((s) => s.stage === stage && (!training || (s.step !== 'base' && s.step !== 'score'))).reduce((total, s) => total + s[field], 0);
  const seconds = (x: number) => `${Math.round(x).toLocaleString('en-US')} s`;
  const rows: [string, number, number, (x: number) => string][] = [
    ['teacher requests (paid)', estimate.total.teacherRequests, spend.paid_requests, (x) => Math.round(x).toLocaleString('en-US')],
    ['teacher dollars', estimate.total.usd, spend.spent_usd, (x) => `$${x.toFixed(3)}`],
    ['training CPU-s (sft)', sum('transfer', 'cpuSeconds', true), metrics.compute_cpu_s, (x) => Math.round(x).toLocaleString('en-US')],
    ['training wall (sft)', sum('transfer', 'wallSeconds', true), metrics.compute_wall_s, seconds],
    ['prototype (labelling) wall', sum('prototype', 'wallSeconds'), at('assembleDataset') - at('prepareTaskData'), seconds],
    ['transfer wall', sum('transfer', 'wallSeconds'), transferEnd - at('assembleDataset'), seconds],
    ['compress wall', sum('compress', 'wallSeconds'), at('calibrateConfidence') - transferEnd, seconds],
    ['evaluate wall', sum('evaluate', 'wallSeconds'), reportAt - at('calibrateConfidence'), seconds],
    ['run wall (prepare to report)', estimate.total.wallSeconds, reportAt - at('prepareTaskData'), seconds],
    ['trainer peak memory', estimate.total.peakMemoryBytes, metrics.peak_memory_bytes, (x) => `${(x / 1e9).toFixed(2)} GB`],
    ['data folder', estimate.total.diskBytes, (await folderTreeBytes(runDir)) ?? NaN, (x) => `${(x / 1e9).toFixed(2)} GB`],
  ];
  const lines = [`cores the trainer got: ${(metrics.compute_cpu_s / metrics.compute_wall_s).toFixed(2)}; the estimate assumes ${estimate.freeCores}`, '| | estimate | actual | off |', '|---|---|---|---|'];
  for (const [what, estimated, actual, format] of rows) {
    const off = (estimated / actual - 1) * 100;
    lines.push(`| ${what} | ${format(estimated)} | ${format(actual)} | ${off >= 0 ? '+' : ''}${off.toFixed(0)}% |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${(err as Error).message}\n`);
  process.exit(1);
});
