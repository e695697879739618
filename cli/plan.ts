// `supertiny plan [--config FILE] [--json] [--free-cores N]`: the run a config asks for, resolved the way the
// worker resolves it (the student family from the task's schema, the task's files and split sizes, the teacher
// endpoint and its prices), with an estimate of what it will cost (config/estimate.ts). Starts nothing: no
// Temporal server, no worker, no teacher simulator, no request; it reads the config, the task's files and the
// endpoints file.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { resolvePlan } from '../activities/config-check';
import { createTaskResources } from '../activities/task-resources';
import { ArtifactStore } from '../artifacts/store';
import { loadTeacherEndpoints } from '../config/endpoints';
import type { SupertinyEnv } from '../config/env';
import { estimateRun, FREE_CORES, type RunEstimate, type SplitSizes, type StepEstimate } from '../config/estimate';
import { InvalidConfigError, studentFamilyGiven, type PipelineConfig } from '../config/pipeline';
import { DEFAULT_ENCODER_BASE } from '../config/encoder-bases';
import type { PipelinePlan } from '../config/plan';
import { readConfigFile } from './config-file';

export const PLAN_USAGE =
  'usage: supertiny plan [--config FILE] [--json] [--free-cores N]\n' +
  '  prints the resolved run and its estimate without starting anything; no --config plans the embedded default\n' +
  `  --free-cores  cores the run will get on this machine (default ${FREE_CORES}: nothing else running; 0.65 beside other work)`;

export class PlanUsageError extends Error {
  constructor(message: string) {
    super(`${message}\n${PLAN_USAGE}`);
    this.name = 'PlanUsageError';
  }
}

export interface RunPlan {
  name: string;
  /** The config file, or "the embedded default". */
  source: string;
  /** What the pipeline's first activity would return: the resolved config and, per activity, the part it reads. */
  plan: PipelinePlan;
  student: { family: string; base?: string; why: string };
  task: { name: string; displayName: string; data: string | null; splits: SplitSizes };
  teacher: { endpoint: string; model: string; simulated: boolean; prices: { inputPerMTok: number; outputPerMTok: number } };
  estimate: RunEstimate;
}

/** Rows of a split after the config's limit. */
async function splitSize(load: () => Promise<unknown[]>, limit: number | undefined): Promise<number> {
  const rows = await load();
  return limit ? Math.min(rows.length, limit) : rows.length;
}

/** An InvalidConfigError as one line per field, each naming the file: "FILE: field: problem". */
function withSource(err: unknown, source: string): unknown {
  if (!(err instanceof InvalidConfigError)) return err;
  return new Error(err.issues.map((i) => `${source}: ${i.path || '(root)'}: ${i.message}`).join('\n'));
}

export async function planRun(args: string[], env: SupertinyEnv): Promise<RunPlan> {
  let values: { config?: string; json?: boolean; 'free-cores'?: string };
  try {
    ({ values } = parseArgs({ args, options: { config: { type: 'string' }, json: { type: 'boolean' }, 'free-cores': { type: 'string' } }, strict: true }));
  } catch (err) {
    throw new PlanUsageError((err as Error).message);
  }
  const freeCores = values['free-cores'] === undefined ? FREE_CORES : Number(values['free-cores']);
  if (!(freeCores > 0 && freeCores <= 1024)) throw new PlanUsageError(`--free-cores must be a number of cores above 0, not "${values['free-cores']}"`);
  const source = values.config ?? 'the embedded default';
  const raw: unknown = values.config ? await readConfigFile(values.config).catch((err: unknown) => Promise.reject(withSource(err, source))) : {};

  // A plan pays nothing and sends nothing: an endpoint's key need not be set to price its requests.
  const endpoints = await loadTeacherEndpoints(env.teacherEndpointsFile, (name) => env.secret(name) ?? 'not-needed-to-plan');
  const resources = createTaskResources({ env, store: new ArtifactStore(path.join(env.dataDir, 'artifacts')), endpoints });
  try {
    // The worker's own resolution (the pipeline's first activity), so the plan shown is the plan that would run.
    const plan = await resolvePlan(raw, env, resources);
    const { config, studentFamily } = plan;
    const endpoint = resources.checkTeacher(config);
    const { task, files } = await resources.loadTask(config);
    const limits = config.task;
    const splits: SplitSizes = {
      train: await splitSize(() => task.dataset.load('train'), limits.trainLimit),
      dev: await splitSize(() => task.dataset.load('dev'), limits.devLimit),
      test: await splitSize(() => task.dataset.load('test'), limits.testLimit),
    };
    const student = config.transfer.student;
    const why = studentFamily
      ? `chosen from the task's schema (the config names none): ${studentFamily.reason}`
      : studentFamilyGiven(raw)
        ? 'named by the config'
        : 'the default family';
    return {
      name: config.name,
      source,
      plan,
      student: {
        family: student.family,
        ...studentBase(student),
        why,
      },
      task: { name: config.task.name, displayName: task.displayName, data: files.data ?? null, splits },
      teacher: { endpoint: endpoint.name, model: config.teacher.model, simulated: endpoint.simulated, prices: endpoint.prices },
      estimate: estimateRun({ config, splits, prices: endpoint.prices, simulated: endpoint.simulated, freeCores }),
    };
  } catch (err) {
    throw withSource(err, source);
  } finally {
    await resources.close();
  }
}

/** The student's base as the plan shows it: a registry name or a folder (none for a decoder from its shape). */
function studentBase(student: PipelineConfig['transfer']['student']): { base?: string } {
  if (student.family === 'encoder') return { base: student.baseModelPath ?? student.base ?? DEFAULT_ENCODER_BASE };
  const base = student.base ?? student.baseModelPath;
  return base !== undefined ? { base } : {};
}

export function wantsJson(args: readonly string[]): boolean {
  return args.includes('--json');
}

const count = (x: number) => Math.round(x).toLocaleString('en-US');
const usd = (x: number) => `$${x < 1 ? x.toFixed(3) : x.toFixed(2)}`;
const bytes = (x: number) => (x === 0 ? '-' : x >= 1e9 ? `${(x / 1e9).toFixed(2)} GB` : `${(x / 1e6).toFixed(0)} MB`);

/** "9 min 5 s", "42 s", "1 h 3 min". */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

export function planText(plan: RunPlan): string {
  const { estimate } = plan;
  const config = plan.plan.config;
  const t = config.teacher;
  const tr = config.transfer;
  const stepSettings = (step: string) =>
    step === 'sft' || step === 'kd'
      ? `${step}: ${tr.epochs} epochs, learning rate ${tr.learningRate}, batch ${tr.batchSize}`
      : step === 'dpo'
        ? `dpo: ${tr.dpoEpochs} epochs, learning rate ${tr.dpoLearningRate}`
        : `grpo: ${tr.grpoEpochs} epochs, ${tr.grpoGenerations} generations, learning rate ${tr.grpoLearningRate}`;
  const splits = plan.task.splits;
  const lines = [
    `plan for "${plan.name}" (${plan.source}): nothing was started`,
    `task      ${plan.task.name} (${plan.task.displayName})${plan.task.data ? `, ${plan.task.data}` : ''}: train ${count(splits.train)}, dev ${count(splits.dev)}, test ${count(splits.test)}`,
    `student   ${plan.student.family}${plan.student.base ? ` (${plan.student.base})` : ''}: ${plan.student.why}`,
    `teacher   ${plan.teacher.endpoint} / ${plan.teacher.model}${plan.teacher.simulated ? ' (the built-in SIMULATOR)' : ''}, $${plan.teacher.prices.inputPerMTok} / $${plan.teacher.prices.outputPerMTok} per M prompt / completion tokens; n = ${t.samples}, vote ${t.voteThreshold}, concurrency ${t.concurrency}, batches of ${t.batchSize}, budget ${usd(t.maxSpendUsd)}${t.judge.enabled ? `, judge ${t.judge.model}` : ''}`,
    `transfer  ${tr.steps.map(stepSettings).join('; ')}${tr.maxSteps ? `; at most ${tr.maxSteps} optimizer steps each` : ''}`,
    `compress  ${config.compress.steps.length > 0 ? config.compress.steps.join(', ') : 'none'}: each kept only within ${config.compress.toleranceExactMatch} point(s) of the uncompressed model's dev exact match`,
    `evaluate  ${config.evaluate.split} split, ${config.evaluate.latencySamples} latency samples`,
    '',
    'estimate',
  ];
  const row = (stage: string, step: string, s: Omit<StepEstimate, 'stage' | 'step' | 'measured' | 'basis'>, measured = true) => [
    stage,
    measured ? step : `${step}*`,
    s.teacherRequests ? count(s.teacherRequests) : '-',
    s.promptTokens ? count(s.promptTokens) : '-',
    s.completionTokens ? count(s.completionTokens) : '-',
    s.usd ? usd(s.usd) : '-',
    count(s.cpuSeconds),
    duration(s.wallSeconds),
    bytes(s.peakMemoryBytes),
    bytes(s.diskBytes),
  ];
  lines.push(
    table([
      ['stage', 'step', 'requests', 'prompt tok', 'completion tok', 'USD', 'CPU s', 'wall', 'peak mem', 'disk'],
      ...estimate.steps.map((s) => row(s.stage, s.step, s, s.measured)),
      row('total', '', estimate.total),
    ]),
  );
  if (estimate.steps.some((s) => !s.measured)) lines.push('* not measured on this machine: extrapolated (see --json, basis)');
  lines.push(`${count(estimate.acceptedInputs)} of ${count(splits.train)} train inputs expected to pass the vote (${estimate.teacherProfile} profile)`);
  if (estimate.total.usd > t.maxSpendUsd) lines.push(`warning: the estimated ${usd(estimate.total.usd)} is over teacher.maxSpendUsd (${usd(t.maxSpendUsd)}): the run would stop when it is reached`);
  lines.push(...estimate.notes.map((n) => `note: ${n}`));
  return lines.join('\n') + '\n';
}
