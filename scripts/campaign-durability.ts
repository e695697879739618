// Durability campaign: a small pipeline against the teacher SIMULATOR with latency and faults, run once
// uninterrupted (the reference) and once with N SIGKILLs of its worker at random moments and one restart
// of the Temporal server. It passes when the interrupted run completes with the reference's artifacts and
// report (quality, not timings) and the teacher answered no request more often than in the reference.
//   npx tsx scripts/campaign-durability.ts [--kills 20] [--seed 1] [--latency-ms 300] [--rate-500 0.05]
//     [--rate-429 0.05] [--min-gap-s 3] [--max-gap-s 12] [--train 300] [--heartbeat-s 5] [--out FILE]
//     [--no-idempotency]  (the simulator ignores Idempotency-Key, as an endpoint without it does: a SIGKILL
//                          between a paid answer and its caching then pays that answer again)
// Everything runs on 127.0.0.1 (a private dev server per run on free ports, the simulator as its own process).
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { onLocalServer, readEnv, type SupertinyEnv } from '../config/env';
import { freePort, startDevServer, type DevServer } from '../cli/dev-server';
import { connectClient, pipelineProgress, startPipeline } from '../client';
import type { PipelineResult } from '../activities/types';
import type { PipelineConfigInput } from '../config/pipeline';
import { startWorkerProcess, type WorkerProcess } from '../test/support/worker-process';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '20' },
    seed: { type: 'string', default: '1' },
    'latency-ms': { type: 'string', default: '300' },
    'rate-500': { type: 'string', default: '0.05' },
    'rate-429': { type: 'string', default: '0.05' },
    'min-gap-s': { type: 'string', default: '3' },
    'max-gap-s': { type: 'string', default: '12' },
    train: { type: 'string', default: '300' },
    out: { type: 'string' },
    'heartbeat-s': { type: 'string', default: '5' },
    'no-idempotency': { type: 'boolean', default: false },
  },
});
const kills = Number(values.kills);
let rng = Number(values.seed) * 2654435761;
const random = () => {
  rng = (rng * 1103515245 + 12345) % 2147483648;
  return rng / 2147483648;
};

const config: PipelineConfigInput = {
  name: 'durability-campaign',
  task: { trainLimit: Number(values.train), devLimit: 100, testLimit: 100 },
  teacher: { samples: 3, batchSize: 100, concurrency: 4, maxRetries: 8 },
  transfer: {
    steps: ['sft'],
    student: { family: 'decoder', hiddenSize: 64, layers: 2, heads: 2, kvHeads: 1, intermediateSize: 128, vocabSize: 400 },
    epochs: 2,
    batchSize: 16,
    checkpointEvery: 10,
  },
  compress: { steps: ['int8'] },
  evaluate: { latencySamples: 20 },
  // A killed worker is noticed after this long; the default 30 s would make 20 kills take most of an hour.
  timeouts: { heartbeatSeconds: Number(values['heartbeat-s']) },
};

interface SimulatorProcess {
  url: string;
  stats(): Promise<{
    answeredByContentHash: Record<string, number>;
    receivedByContentHash: Record<string, number>;
    chatRequests: number;
    injected429: number;
    injected500: number;
    abandoned: number;
    replayed: number;
  }>;
  stop(): Promise<void>;
}

async function startSimulatorProcess(env: SupertinyEnv): Promise<SimulatorProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(env.projectRoot, 'runtime', 'teacher-simulator', 'main.ts'), '--port', String(port), '--seed', '7',
      '--latency-ms', values['latency-ms']!, '--rate-500', values['rate-500']!, '--rate-429', values['rate-429']!, '--retry-after-ms', '1000',
      ...(values['no-idempotency'] ? ['--no-idempotency'] : [])],
    { cwd: env.projectRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const line = chunk.toString().trim();
      if (line.startsWith('http')) resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`the teacher simulator exited (${code})`)));
  });
  return {
    url,
    stats: async () => (await (await fetch(`${url}/simulator/stats`)).json()) as Awaited<ReturnType<SimulatorProcess["stats"]>>,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const STAGE_ORDER = ['prototype', 'transfer', 'compress', 'evaluate'];

/** Kills per stage: the slow teacher stage and training get more; every stage gets at least one. */
function stageQuota(kills: number): number[] {
  const weights = [0.3, 0.35, 0.2, 0.15];
  const quota = weights.map((w) => Math.max(1, Math.floor(w * kills)));
  quota[1] += kills - quota.reduce((a, b) => a + b, 0);
  return quota;
}

/** The stage kill k waits for; when the run is already past it, the kill lands in the current stage. */
function stageOfKill(quota: number[], k: number): number {
  let budget = 0;
  for (let stage = 0; stage < quota.length; stage++) {
    budget += quota[stage];
    if (k <= budget) return stage;
  }
  return quota.length - 1;
}

/** What must not depend on crashes: artifact hashes and every quality number of the report. */
function comparable(result: PipelineResult, report: Record<string, any>) {
  const quality = Object.fromEntries(
    Object.entries(report.models ?? {}).map(([name, m]: [string, any]) => [
      name,
      Object.fromEntries(Object.entries(m).filter(([k]) => !/latency|throughput|note/.test(k))),
    ]),
  );
  return {
    sft: result.prototype?.sft.sha256,
    student: result.transfer?.student.sha256,
    onnx: result.compress?.onnx.sha256,
    int8: result.compress?.int8?.sha256,
    gates: result.compress?.gates,
    quality,
  };
}

async function run(label: string, killCount: number) {
  const base = readEnv();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `campaign-${label}-`));
  let env: SupertinyEnv = { ...onLocalServer(base, `127.0.0.1:${await freePort()}`), dataDir, uiPort: await freePort(), taskQueue: `campaign-${label}` };
  let server: DevServer = await startDevServer(env, { headless: true });
  const simulator = await startSimulatorProcess(env);
  const workerEnv = { SUPERTINY_SIMULATOR_URL: simulator.url };
  let worker: WorkerProcess = startWorkerProcess(env, workerEnv);
  await worker.ready;
  const client = await connectClient(env);
  const handle = await startPipeline(client, config, { taskQueue: env.taskQueue, workflowId: `campaign-${label}-${Date.now()}` });
  const started = Date.now();
  const events: { kill: number; atS: number; stage: string; step: string }[] = [];
  let restartedServerAt: number | undefined;
  let finished = false;
  const result = handle.result().finally(() => (finished = true));
  result.catch(() => undefined);

  // Kills are spread over the stages (a share each, in order); a stage that ends early passes its
  // remaining kills on to the next. Within a stage they come at random gaps.
  const quota = stageQuota(killCount);
  for (let k = 1; k <= killCount && !finished; k++) {
    const gap = Number(values['min-gap-s']) + random() * (Number(values['max-gap-s']) - Number(values['min-gap-s']));
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, gap * 1000))]);
    if (finished) break;
    let progress = await pipelineProgress(handle).catch(() => undefined);
    // Wait for the stage whose turn it is (kills spent in earlier stages count against them).
    while (!finished && progress && STAGE_ORDER.indexOf(progress.stage) < stageOfKill(quota, k)) {
      await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, 500))]);
      progress = await pipelineProgress(handle).catch(() => undefined);
    }
    if (finished) break;
    await worker.kill('SIGKILL');
    events.push({ kill: k, atS: Math.round((Date.now() - started) / 1000), stage: progress?.stage ?? '?', step: progress?.step ?? '?' });
    process.stderr.write(`[${label}] SIGKILL ${k}/${killCount} at ${events[events.length - 1].atS} s in ${progress?.stage}/${progress?.step}\n`);
    if (k === Math.ceil(killCount / 2)) {
      // The Temporal server goes down too, and comes back on the same address with the same SQLite state.
      await server.stop();
      server = await startDevServer(env, { headless: true });
      restartedServerAt = Math.round((Date.now() - started) / 1000);
      process.stderr.write(`[${label}] Temporal server restarted at ${restartedServerAt} s\n`);
    }
    worker = startWorkerProcess(env, workerEnv);
    await worker.ready;
  }
  const outcome = await result;
  const seconds = Math.round((Date.now() - started) / 1000);
  const report = JSON.parse(await fs.readFile(outcome.evaluate!.reportPath, 'utf8'));
  const stats = await simulator.stats();
  await worker.kill('SIGTERM');
  await simulator.stop();
  await server.stop();
  env = { ...env };
  return {
    label,
    seconds,
    kills: events,
    restartedServerAt,
    comparable: comparable(outcome, report),
    answered: stats.answeredByContentHash,
    received: stats.receivedByContentHash,
    faults: { injected429: stats.injected429, injected500: stats.injected500, abandoned: stats.abandoned, replayedUnbilled: stats.replayed, chatRequests: stats.chatRequests },
    dataDir,
  };
}

async function main() {
  const reference = await run('reference', 0);
  process.stderr.write(`reference: ${reference.seconds} s\n`);
  const campaign = await run('campaign', kills);
  const extraHashes = Object.entries(campaign.answered)
    .filter(([hash, n]) => n > (reference.answered[hash] ?? 0))
    .map(([hash, n]) => ({ hash: hash.slice(0, 12), answered: n, reference: reference.answered[hash] ?? 0, received: campaign.received[hash] }));
  const extra = extraHashes.reduce((sum, e) => sum + e.answered - e.reference, 0);
  if (extraHashes.length) process.stderr.write(`answered more often than in the reference: ${JSON.stringify(extraHashes)}\n`);
  const identical = JSON.stringify(campaign.comparable) === JSON.stringify(reference.comparable);
  const summary = {
    kills: campaign.kills.length,
    killsByStage: campaign.kills.reduce<Record<string, number>>((m, e) => ((m[e.stage] = (m[e.stage] ?? 0) + 1), m), {}),
    serverRestartAtS: campaign.restartedServerAt,
    completed: true,
    identicalToReference: identical,
    extraTeacherAnswers: extra,
    idempotencyKeysHonoured: !values['no-idempotency'],
    referenceSeconds: reference.seconds,
    campaignSeconds: campaign.seconds,
    faults: campaign.faults,
    referenceFaults: reference.faults,
  };
  if (!identical) process.stderr.write(`DIFFERENT:\nreference ${JSON.stringify(reference.comparable)}\ncampaign  ${JSON.stringify(campaign.comparable)}\n`);
  if (values.out) await fs.writeFile(values.out, JSON.stringify({ summary, kills: campaign.kills, reference: reference.comparable, campaign: campaign.comparable }, null, 2));
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  process.exitCode = identical && extra === 0 ? 0 : 1;
}

main().catch((err) => {
  process.stderr.write(`campaign failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
