// The `supertiny` command line.
//   supertiny demo                      server + worker + the pipeline on the embedded default
//   supertiny server                    the local Temporal server (SQLite state, UI) until Ctrl-C
//   supertiny dev                       server + worker, for driving pipelines from the Temporal CLI
//   supertiny worker                    a worker against TEMPORAL_ADDRESS
//   supertiny start [--config FILE] [--wait]
//   supertiny plan [--config FILE] [--json]      the resolved run and its estimate; starts nothing (cli/plan.ts)
//   supertiny progress WORKFLOW_ID      supertiny cancel WORKFLOW_ID [REASON]
//   supertiny serve --model FOLDER      the student behind an OpenAI-compatible endpoint (see cli/serve.ts)
//   supertiny serve --deployment DIR    the version a deployment folder points at, followed as it moves
//   supertiny deploy --deployment DIR --model FOLDER | rollback --deployment DIR | deployment status --deployment DIR (cli/deployment.ts)
//   supertiny score --task T --predictions FILE   a predictions file scored with the task's metrics (cli/score.ts)
//   supertiny import-openai FILE --out DIR        OpenAI chat JSONL or capture files into a task from files (cli/import-openai.ts)
//   supertiny refresh --deployment DIR --config FILE --traffic PATH [--wait]   retrain from traffic, promote if better (cli/refresh.ts)
//   supertiny schedule create --every 7d --deployment DIR --config FILE --traffic PATH [--id NAME]
//   supertiny schedule pause|unpause|trigger|delete ID     supertiny schedule list
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { onLocalServer, readEnv } from '../config/env';
import { createLogger } from '../config/logger';
import type { PipelineConfigInput } from '../config/pipeline';
import { startDevServer, type DevServer } from './dev-server';
import { readConfigFile } from './config-file';
import { watchPipeline } from './watch';
import { connectClient, startPipeline, pipelineProgress, cancelPipeline } from '../client';
import { installTemporalRuntime } from '../workers/runtime-logger';
import { createWorkers } from '../workers/worker';
import { printReportTable } from './report-table';
import { causeChain } from './cause-chain';
import { SERVE_USAGE, startServe, wantsServeHelp } from './serve';
import { score } from './score';
import {
  DEPLOY_USAGE,
  deploy,
  DEPLOYMENT_STATUS_USAGE,
  deploymentStatus,
  DeploymentUsageError,
  formatDeploymentStatus,
  ROLLBACK_USAGE,
  rollbackDeployment,
  wantsHelp,
} from './deployment';
import { IMPORT_OPENAI_USAGE, importOpenAICommand, importSummaryText, wantsImportHelp } from './import-openai';
import { refreshCommand, scheduleCommand } from './refresh';
import { PLAN_USAGE, planRun, planText, wantsJson } from './plan';

const log = createLogger('cli');

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Resolves on Ctrl-C or SIGTERM. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/**
 * A long-running server's safety net (every request handler catches its own errors; this is not the fix):
 * a stray rejected promise is logged and serving goes on; an uncaught exception leaves the process in an
 * unknown state, so it resolves, and the caller finishes in-flight requests and exits 1 for a restart.
 */
function crashGuard(): Promise<'uncaughtException'> {
  process.on('unhandledRejection', (reason) => log.error('unhandled promise rejection (serving goes on)', { error: reason instanceof Error ? reason.stack : String(reason) }));
  return new Promise((resolve) => {
    process.on('uncaughtException', (err) => {
      log.error('uncaught exception: shutting down', { error: err.stack ?? err.message });
      resolve('uncaughtException');
    });
  });
}

/** No --config: say so, rather than silently running the whole default demo. */
function defaultConfig(): PipelineConfigInput {
  process.stderr.write('no --config given: running the embedded default pipeline (MASSIVE, the teacher simulator); see examples/pipeline.json\n');
  return {};
}

async function withServer<T>(run: (server: DevServer) => Promise<T>, share: 'reuse' | 'own' = 'reuse'): Promise<T> {
  const env = readEnv();
  const server = await startDevServer(env, { share });
  try {
    return await run(server);
  } finally {
    await server.stop();
  }
}

async function demo(args: string[]) {
  // Ctrl-C must cancel the pipeline first (which needs a running worker), then stop the worker:
  // take signal handling away from the Temporal runtime, which would stop the workers at once.
  installTemporalRuntime({ shutdownSignals: [] });
  const env = readEnv();
  const configFile = flag(args, '--config');
  const config = configFile ? await readConfigFile(configFile) : defaultConfig();
  const releaseDataDir = await lockDataDir(env.dataDir);
  // A queue of this data folder's own: a worker never runs a pipeline whose artifacts live elsewhere.
  const taskQueue = `${env.taskQueue}-demo-${createHash('sha256').update(env.dataDir).digest('hex').slice(0, 8)}`;
  await withServer(async (server) => {
    const runEnv = onLocalServer(env, server.address);
    const workers = await createWorkers(runEnv, { taskQueue });
    const running = workers.run();
    try {
      const client = await connectClient(runEnv);
      const handle = await startPipeline(client, config, { taskQueue });
      process.stdout.write(
        `pipeline ${handle.workflowId} started; watch it in the Temporal UI: ${server.uiUrl}/namespaces/${env.namespace}/workflows/${encodeURIComponent(handle.workflowId)}\n`,
      );
      const interrupted = untilSignal().then(async (sig) => {
        log.warn(`${sig}: cancelling the pipeline`);
        await cancelPipeline(handle, `demo interrupted by ${sig}`).catch(() => undefined);
      });
      void interrupted;
      await watchPipeline(client, handle);
      const result = await handle.result();
      if (result.status === 'cancelled') {
        process.stdout.write(`pipeline cancelled: ${result.cancelReason}\n`);
        process.exitCode = 130;
        return;
      }
      if (result.studentFamily) {
        process.stdout.write(`student family: ${result.studentFamily.family}, chosen from the task's schema (the config names none): ${result.studentFamily.reason}\n`);
      }
      if (result.evaluate) {
        await printReportTable(result.evaluate.reportPath);
        if (result.evaluate.studentPath) process.stdout.write(`student: ${result.evaluate.studentPath} (serve it: npm run serve -- --model ${result.evaluate.studentPath})\n`);
        process.stdout.write(`report: ${result.evaluate.reportPath}\n`);
      }
    } finally {
      workers.shutdown();
      await running;
    }
  }, 'own').finally(releaseDataDir);
}

/** One demo per data folder: two would write the same artifacts and run folders at once. */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  await fs.mkdir(dataDir, { recursive: true });
  const lock = path.join(dataDir, 'demo.lock');
  for (let tries = 0; tries < 2; tries++) {
    try {
      await fs.writeFile(lock, String(process.pid), { flag: 'wx' });
      return () => fs.rm(lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await fs.readFile(lock, 'utf8').catch(() => ''));
      const alive = Number.isInteger(pid) && pid > 0 && (() => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      })();
      if (alive) throw new Error(`another supertiny demo (pid ${pid}) is using the data folder ${dataDir}; set SUPERTINY_DATA_DIR to run a second one`);
      await fs.rm(lock, { force: true }); // left by a demo that was killed
    }
  }
  throw new Error(`cannot lock the data folder ${dataDir} (${lock})`);
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  if (!['demo', 'serve', 'score', 'deploy', 'rollback', 'deployment', 'import-openai', 'plan'].includes(command)) installTemporalRuntime();
  const env = readEnv();
  switch (command) {
    case 'demo':
      return demo(args);
    case 'server':
      return withServer(async (server) => {
        process.stdout.write(`Temporal server on ${server.address}; UI at ${server.uiUrl}. Ctrl-C stops it.\n`);
        await untilSignal();
      });
    case 'dev':
      return withServer(async (server) => {
        const workers = await createWorkers(onLocalServer(env, server.address));
        process.stdout.write(
          `Temporal server on ${server.address}, UI at ${server.uiUrl}, worker on task queue "${env.taskQueue}". Ctrl-C stops both.\n` +
            `Start a pipeline: .tools/bin/temporal workflow start --type distillationPipeline --task-queue ${env.taskQueue} --input-file examples/pipeline.json\n`,
        );
        const running = workers.run();
        await Promise.race([untilSignal(), running]);
        workers.shutdown();
        await running;
      });
    case 'worker': {
      const workers = await createWorkers(env, { role: env.workerRole });
      return workers.run();
    }
    case 'start': {
      const configFile = flag(args, '--config');
      const config = configFile ? await readConfigFile(configFile) : defaultConfig();
      const client = await connectClient(env);
      const handle = await startPipeline(client, config, { workflowId: flag(args, '--workflow-id') });
      process.stdout.write(`started ${handle.workflowId}\n`);
      if (args.includes('--wait')) {
        await watchPipeline(client, handle);
        process.stdout.write(JSON.stringify(await handle.result(), null, 2) + '\n');
      }
      return;
    }
    case 'serve': {
      if (wantsServeHelp(args)) return void process.stdout.write(`${SERVE_USAGE}\n`);
      const stop = untilSignal();
      const serving = await startServe(args, env);
      // The one line on stdout: where to point an OpenAI client (tests and scripts read it).
      process.stdout.write(`serving at ${serving.url}\n`);
      const reason = await Promise.race([stop, crashGuard()]);
      log.info(`${reason}: finishing in-flight requests, then exiting`);
      await serving.close();
      if (reason === 'uncaughtException') process.exitCode = 1;
      return;
    }
    case 'plan': {
      if (wantsHelp(args)) return void process.stdout.write(`${PLAN_USAGE}\n`);
      if (!args.includes('--config')) process.stderr.write('no --config given: planning the embedded default pipeline (MASSIVE, the teacher simulator)\n');
      const plan = await planRun(args, env);
      process.stdout.write(wantsJson(args) ? JSON.stringify(plan, null, 2) + '\n' : planText(plan));
      return;
    }
    case 'score':
      process.stdout.write(JSON.stringify(await score(args), null, 2) + '\n');
      return;
    case 'deploy': {
      if (wantsHelp(args)) return void process.stdout.write(`${DEPLOY_USAGE}\n`);
      const result = await deploy(args);
      const what =
        result.action === 'init'
          ? `started the deployment with version ${result.version}`
          : result.action === 'promote'
            ? `promoted version ${result.version} (was ${result.previous})`
            : `version ${result.version} is already the current one`;
      process.stdout.write(`${result.dir}: ${what} (task ${result.task}, ${result.family} student)\n`);
      return;
    }
    case 'rollback': {
      if (wantsHelp(args)) return void process.stdout.write(`${ROLLBACK_USAGE}\n`);
      const pointer = await rollbackDeployment(args);
      process.stdout.write(`rolled back from ${pointer.from} to ${pointer.version} (${pointer.reason})\n`);
      return;
    }
    case 'deployment': {
      const [sub, ...rest] = args;
      if (sub === undefined || sub === '--help' || sub === '-h' || (sub === 'status' && wantsHelp(rest))) return void process.stdout.write(`${DEPLOYMENT_STATUS_USAGE}\n`);
      if (sub !== 'status') throw new DeploymentUsageError(`unknown deployment command "${sub}"`, DEPLOYMENT_STATUS_USAGE);
      process.stdout.write(formatDeploymentStatus(await deploymentStatus(rest)));
      return;
    }
    case 'import-openai':
      if (wantsImportHelp(args)) return void process.stdout.write(`${IMPORT_OPENAI_USAGE}\n`);
      process.stdout.write(importSummaryText(await importOpenAICommand(args)));
      return;
    case 'refresh':
      return refreshCommand(args, env);
    case 'schedule':
      return scheduleCommand(args, env);
    case 'progress': {
      const client = await connectClient(env);
      process.stdout.write(JSON.stringify(await pipelineProgress(client.workflow.getHandle(args[0])), null, 2) + '\n');
      return;
    }
    case 'cancel': {
      const client = await connectClient(env);
      process.stdout.write(JSON.stringify(await cancelPipeline(client.workflow.getHandle(args[0]), args[1])) + '\n');
      return;
    }
    default:
      process.stderr.write(
        'usage: supertiny demo|server|dev|worker|start [--config FILE] [--wait]|plan [--config FILE] [--json]|progress ID|cancel ID [REASON]|serve --model FOLDER|serve --deployment DIR|\n' +
          '       deploy --deployment DIR --model FOLDER|rollback --deployment DIR [--reason TEXT]|deployment status --deployment DIR|score --task T --predictions FILE|import-openai FILE --out DIR\n' +
          '       supertiny refresh --deployment DIR --config FILE --traffic PATH [--wait]   (refresh --help)\n' +
          '       supertiny schedule create --every 7d --deployment DIR --config FILE --traffic PATH [--id NAME] | pause|unpause|trigger|delete ID | list   (schedule --help)\n',
      );
      process.exitCode = 2;
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err) => {
    // The last line is the root cause (e.g. the activity's InvalidConfig message), not "Workflow execution failed".
    const chain = causeChain(err);
    if (chain.length > 1) log.error(chain.slice(0, -1).join(' <- '));
    process.stderr.write(`error: ${chain[chain.length - 1]}\n`);
    process.exit(1);
  },
);
