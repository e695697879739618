// Teacher-stage benchmark against the TEACHER SIMULATOR (a stand-in for a large LLM, not a real one):
//   1. throughput of the teacher client (n samples per input, route + final call) at several concurrencies;
//   2. label accuracy on MASSIVE: single samples vs rejection-sampled (voted) labels, and the keep rate.
// The simulator runs as its own process (runtime/teacher-simulator/main.ts) so client and server do not
// share an event loop.
//
//   npx tsx scripts/bench-teacher.ts [--train-limit N] [--samples 5] [--concurrency 1,8,32,64]
//     [--latency-ms 0,200] [--throughput-inputs N] [--accuracy-concurrency 64] [--judge] [--out FILE]
import { ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  applyJudge,
  buildStats,
  calibrateJudge,
  createJudge,
  createTeacherClient,
  judgeCalibrationItems,
  PrototypeStats,
  reviewAll,
  TeacherResult,
} from '../activities/prototype';
import { readEnv } from '../config/env';
import { createLogger } from '../config/logger';
import { Call } from '../tasks/call-format';
import { loadMassiveTask, massiveGoldCall, MassiveExample } from '../tasks/massive';

const log = createLogger('bench-teacher');
const PRICES = { inputPerMillionTokens: 2.5, outputPerMillionTokens: 10 };

interface SimulatorProcess {
  url: string;
  child: ChildProcess;
  stats(): Promise<{ completions: number; chatRequests: number }>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

async function startSimulatorProcess(args: string[]): Promise<SimulatorProcess> {
  const root = readEnv().projectRoot;
  const tsxCli = path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
  const child = spawn(process.execPath, [tsxCli, path.join(root, 'runtime', 'teacher-simulator', 'main.ts'), '--port', '0', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SUPERTINY_LOG_LEVEL: 'warn' },
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const line = buffer.split('\n').find((l) => l.startsWith('http'));
      if (line) resolve(line.trim());
    });
    child.once('exit', (code) => reject(new Error(`teacher simulator exited with ${code} before listening`)));
  });
  const call = async (method: string, route: string) => (await fetch(`${url}/simulator/${route}`, { method })).json();
  return {
    url,
    child,
    stats: () => call('GET', 'stats') as Promise<{ completions: number; chatRequests: number }>,
    reset: async () => void (await call('POST', 'reset')),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const list = (text: string) => text.split(',').map((s) => Number(s.trim()));
const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

interface ThroughputRow {
  latencyMs: number;
  concurrency: number;
  inputs: number;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  samplesPerSecond: number;
  inputsPerSecond: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'train-limit': { type: 'string' },
      samples: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1,8,32,64' },
      'latency-ms': { type: 'string', default: '0,200' },
      'throughput-inputs': { type: 'string', default: '' },
      'accuracy-concurrency': { type: 'string', default: '64' },
      temperature: { type: 'string', default: '0.7' },
      'skip-throughput': { type: 'boolean', default: false },
      'skip-accuracy': { type: 'boolean', default: false },
      judge: { type: 'boolean', default: false },
      seed: { type: 'string', default: '0' },
      out: { type: 'string' },
    },
  });
  const samples = Number(values.samples);
  const temperature = Number(values.temperature);
  const { task, examples } = await loadMassiveTask();
  const split = (s: string) => examples.filter((e) => e.split === s);
  const inputsOf = (exs: MassiveExample[]) => exs.map((e) => ({ id: e.id, text: e.utterance }));
  const goldOf = (exs: MassiveExample[]) => new Map<string, Call>(exs.map((e) => [e.id, massiveGoldCall(e)]));
  const report: Record<string, unknown> = {
    note: 'Measured against the teacher SIMULATOR (runtime/teacher-simulator), not a real LLM.',
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    samplesPerInput: samples,
    temperature,
  };

  if (!values['skip-throughput']) {
    const rows: ThroughputRow[] = [];
    for (const latencyMs of list(values['latency-ms'])) {
      const sim = await startSimulatorProcess(['--seed', values.seed, '--latency-ms', String(latencyMs)]);
      try {
        for (const concurrency of list(values.concurrency)) {
          // Enough inputs to keep every slot busy for a few rounds.
          const count = values['throughput-inputs'] ? Number(values['throughput-inputs']) : latencyMs > 0 ? Math.max(8, concurrency * 4) : 150;
          const inputs = inputsOf(split('train').slice(0, count));
          const client = createTeacherClient(task, { baseURL: sim.url, model: 'teacher-simulator', concurrency, temperature, seed: 1000 + concurrency });
          await sim.reset();
          const started = process.hrtime.bigint();
          await client.labelAll(inputs, samples);
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          const { completions } = await sim.stats();
          const row: ThroughputRow = {
            latencyMs,
            concurrency,
            inputs: inputs.length,
            requests: completions,
            seconds: round(seconds, 2),
            requestsPerSecond: round(completions / seconds, 1),
            samplesPerSecond: round((inputs.length * samples) / seconds, 1),
            inputsPerSecond: round(inputs.length / seconds, 1),
          };
          rows.push(row);
          log.info('throughput', { ...row });
        }
      } finally {
        await sim.stop();
      }
    }
    report.throughput = rows;
  }

  if (!values['skip-accuracy']) {
    const sim = await startSimulatorProcess(['--seed', values.seed]);
    try {
      const concurrency = Number(values['accuracy-concurrency']);
      const teacher = createTeacherClient(task, { baseURL: sim.url, model: 'teacher-simulator', concurrency, temperature, prices: PRICES });
      const summarize = (stats: PrototypeStats) => ({
        inputs: stats.inputs,
        keepRate: round(stats.acceptanceRate),
        singleSampleExactMatch: round(stats.labelAccuracy!.singleSample.exactMatch),
        acceptedExactMatch: round(stats.labelAccuracy!.accepted.exactMatch),
        accepted: stats.decisions.accepted,
        rejected: { vote: stats.decisions.rejectedByVote, verifier: stats.decisions.rejectedByVerifier, noValidSamples: stats.decisions.noValidSamples, judge: stats.decisions.rejectedByJudge },
        samples: { malformed: stats.samples.malformed, rejectedBySchema: stats.samples.rejectedBySchema, rejectedByVerifier: stats.samples.rejectedByVerifier },
      });

      const dev = split('dev');
      const devStarted = Date.now();
      const devResults = await teacher.labelAll(inputsOf(dev), samples);
      log.info('labelled dev', { inputs: dev.length, seconds: (Date.now() - devStarted) / 1000 });
      const devGold = goldOf(dev);
      report.dev = Object.fromEntries([0.6, 0.8].map((t) => [`voteThreshold ${t}`, summarize(buildStats({ results: devResults, decisions: reviewAll(task, devResults, { voteThreshold: t }), goldById: devGold }))]));

      const train = values['train-limit'] ? split('train').slice(0, Number(values['train-limit'])) : split('train');
      const started = Date.now();
      let done = 0;
      const trainResults: TeacherResult[] = await teacher.labelAll(inputsOf(train), samples, () => {
        if (++done % 2000 === 0) log.info('labelling train', { done, of: train.length, seconds: (Date.now() - started) / 1000 });
      });
      const seconds = (Date.now() - started) / 1000;
      const trainGold = goldOf(train);
      const byThreshold: Record<string, unknown> = {};
      let main: PrototypeStats | undefined;
      for (const t of [0.6, 0.8, 1.0]) {
        const stats = buildStats({ results: trainResults, decisions: reviewAll(task, trainResults, { voteThreshold: t }), goldById: trainGold });
        byThreshold[`voteThreshold ${t}`] = summarize(stats);
        if (t === 0.8) main = stats;
      }
      report.train = {
        inputs: train.length,
        seconds: round(seconds, 1),
        requests: main!.requests.teacher,
        tokens: main!.tokens,
        estimatedCostUsd: { ...PRICES, teacher: round(main!.costUsd.teacher, 2) },
        ...byThreshold,
      };

      if (values.judge) {
        const judge = createJudge(task, { baseURL: sim.url, model: 'teacher-simulator', concurrency, prices: PRICES });
        const calibrationSet = devResults.slice(0, 200);
        const calibration = await calibrateJudge(judge, judgeCalibrationItems(task, calibrationSet, devGold));
        const decisions = reviewAll(task, trainResults, { voteThreshold: 0.6 });
        const judged = await applyJudge(decisions, judge, calibration, { minAgreement: 0.8 });
        const stats = buildStats({ results: trainResults, decisions: judged.decisions, judge: { stats: judge.stats(), report: judged.report }, goldById: trainGold });
        report.trainWithJudge = {
          voteThreshold: 0.6,
          calibration: { ...calibration, agreement: round(calibration.agreement) },
          used: judged.report.used,
          ...summarize(stats),
          acceptedByVoteExactMatch: round(stats.labelAccuracy!.acceptedByVote.exactMatch),
          judgeCostUsd: round(stats.costUsd.judge, 2),
        };
      }
    } finally {
      await sim.stop();
    }
  }

  const text = JSON.stringify(report, null, 2);
  process.stdout.write(`${text}\n`);
  if (values.out) await fs.writeFile(values.out, `${text}\n`);
}

main().catch((err) => {
  log.error((err as Error).stack ?? String(err));
  process.exit(1);
});
