// The refresh under drift (issue 23): a student trained on half of MASSIVE's scenarios (the other scenarios'
// intents seen once each, so the task's schema has every function), deployed, then refreshed from traffic that
// comes from all scenarios. Prints the deployed and the refreshed student's exact match on the frozen test split
// and on the fresh slice of traffic, the cascade's teacher share on the fresh slice before and after, the
// teacher spend and the refresh's wall time. Everything on 127.0.0.1: a private dev server, the teacher
// SIMULATOR (on all of MASSIVE), in-process workers.
//   npx tsx scripts/bench-refresh.ts [--train 1500] [--traffic 1500] [--test 600] [--epochs 3] [--out FILE]
import { CAPTURE_FORMAT } from '../runtime/serve/capture';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { onLocalServer, readEnv, type SupertinyEnv } from '../config/env';
import { freePort, startDevServer } from '../cli/dev-server';
import { connectClient, startPipeline, startRefresh } from '../client';
import { createWorkers } from '../workers/worker';
import { installTemporalRuntime } from '../workers/runtime-logger';
import { startTeacherSimulator } from '../runtime/teacher-simulator';
import { initDeployment } from '../runtime/deployments';
import type { PipelineConfigInput } from '../config/pipeline';
import type { RefreshReport } from '../activities/refresh/report';

const { values } = parseArgs({
  options: {
    train: { type: 'string', default: '1500' },
    traffic: { type: 'string', default: '1500' },
    test: { type: 'string', default: '600' },
    epochs: { type: 'string', default: '3' },
    out: { type: 'string' },
  },
});

interface MassiveRow {
  id: string;
  partition: string;
  scenario: string;
  intent: string;
  utt: string;
}

async function main() {
  installTemporalRuntime();
  const base = readEnv();
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-refresh-'));
  const dataRoot = path.join(root, 'data-root');
  await fs.mkdir(path.join(dataRoot, 'traffic'), { recursive: true });
  const simulator = await startTeacherSimulator();
  const env: SupertinyEnv = {
    ...onLocalServer(base, `127.0.0.1:${await freePort()}`),
    dataDir: path.join(root, 'data'),
    uiPort: await freePort(),
    taskQueue: 'bench-refresh',
    dataRoots: [dataRoot],
    simulatorUrl: simulator.url,
  };
  const server = await startDevServer(env, { headless: true });
  const workers = await createWorkers(env);
  const running = workers.run();
  try {
    // The drifted task: train holds half of the scenarios (plus one utterance of every other intent, so that the
    // schema, which MASSIVE derives from train, has all of them); dev and test are MASSIVE's.
    const rows = (await fs.readFile(env.massivePath, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as MassiveRow);
    const scenarios = [...new Set(rows.map((r) => r.scenario))].sort();
    const seen = new Set(scenarios.filter((_, i) => i % 2 === 0));
    const train = rows.filter((r) => r.partition === 'train');
    const token = new Map<string, MassiveRow>();
    for (const r of train) if (!seen.has(r.scenario) && !token.has(r.intent)) token.set(r.intent, r);
    // The file is grouped by scenario: a hash order spreads both the student's data and the traffic over them.
    const mixed = (r: MassiveRow) => createHash('sha256').update(r.id).digest('hex');
    const inScenario = train.filter((r) => seen.has(r.scenario)).sort((a, b) => mixed(a).localeCompare(mixed(b))).slice(0, Number(values.train));
    const used = new Set([...token.values(), ...inScenario].map((r) => r.id));
    const drifted = [...token.values(), ...inScenario, ...rows.filter((r) => r.partition !== 'train')];
    const dataPath = path.join(dataRoot, 'massive-drifted.jsonl');
    await fs.writeFile(dataPath, drifted.map((r) => JSON.stringify(r)).join('\n') + '\n');
    // Traffic from every scenario: train utterances the student never saw, as serve --capture writes them.
    // (another hash order than the student's data: with the same one, its leftovers would be the high-hash rows of its scenarios)
    const shuffled = (r: MassiveRow) => createHash('sha256').update(`traffic:${r.id}`).digest('hex');
    const traffic = train.filter((r) => !used.has(r.id)).sort((a, b) => shuffled(a).localeCompare(shuffled(b))).slice(0, Number(values.traffic));
    const capture = path.join(dataRoot, 'traffic', 'capture.jsonl');
    await fs.writeFile(
      capture,
      traffic.map((r, i) => JSON.stringify({ format: CAPTURE_FORMAT, id: `req-${i}`, time: new Date(Date.UTC(2026, 11, 1, 0, 0, i)).toISOString(), input: r.utt, student_confidence: 0.5, cascaded: false, model_version: 'v1' })).join('\n') + '\n',
    );

    const config: PipelineConfigInput = {
      name: 'drift',
      task: { dataPath, testLimit: Number(values.test), devLimit: 300 },
      teacher: { samples: 3, batchSize: 100, concurrency: 8 },
      transfer: { steps: ['sft'], student: { family: 'encoder' }, epochs: Number(values.epochs) },
      compress: { steps: ['int8'] },
      evaluate: { latencySamples: 20 },
    };
    const client = await connectClient(env);
    const t0 = Date.now();
    const pipeline = await (await startPipeline(client, config, { taskQueue: env.taskQueue, workflowId: 'drift-pipeline' })).result();
    const pipelineSeconds = (Date.now() - t0) / 1000;
    const deployment = path.join(env.dataDir, 'deployments', 'drift');
    await initDeployment(deployment, pipeline.evaluate!.studentPath!, { trainedModel: pipeline.transfer!.student, family: 'encoder' });
    const t1 = Date.now();
    const refresh = await (await startRefresh(client, { deployment, traffic: capture, config }, { taskQueue: env.taskQueue, workflowId: 'drift-refresh' })).result();
    const refreshSeconds = (Date.now() - t1) / 1000;
    const report = JSON.parse(await fs.readFile(refresh.reportPath, 'utf8')) as RefreshReport;
    const pipelineReport = JSON.parse(await fs.readFile(pipeline.evaluate!.reportPath, 'utf8'));
    const summary = {
      scenarios: { seen: [...seen], total: scenarios.length },
      deployedTrain: used.size,
      trafficFromSeenScenarios: traffic.filter((r) => seen.has(r.scenario)).length,
      pipeline: { seconds: pipelineSeconds, test_exact_match_int8: pipelineReport.models.student_int8?.exact_match, cascade_share_on_test: pipelineReport.cascade?.chosen?.teacher_share ?? null },
      refresh: { seconds: refreshSeconds, report_wall_seconds: report.wall_seconds, promoted: refresh.promoted, reason: refresh.reason },
      traffic: report.traffic,
      cost: report.cost,
      start: report.start,
      frozen: report.frozen,
      fresh: report.fresh,
    };
    const text = JSON.stringify(summary, null, 2);
    process.stdout.write(`${text}\n`);
    if (values.out) await fs.writeFile(values.out, text + '\n');
  } finally {
    workers.shutdown();
    await running;
    await server.stop();
    await simulator.close();
    await fs.rm(root, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
