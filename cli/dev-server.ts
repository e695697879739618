// The local Temporal server: `temporal server start-dev` with its SQLite file in the data folder, so
// workflow state survives a restart. Reuses a server that already answers on the address.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import type { SupertinyEnv } from '../config/env';
import { createLogger } from '../config/logger';
import { SEARCH_ATTRIBUTES } from '../workflows/messages';

const log = createLogger('server');

export interface DevServer {
  address: string;
  uiUrl: string;
  /** True when this process started the server (and stop() will end it). */
  owned: boolean;
  stop(): Promise<void>;
}

export async function serverAnswers(address: string): Promise<boolean> {
  try {
    const connection = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await connection.workflowService.getSystemInfo({});
      return true;
    } finally {
      await connection.close();
    }
  } catch {
    return false;
  }
}

export async function startDevServer(env: SupertinyEnv, options: { headless?: boolean; timeoutMs?: number } = {}): Promise<DevServer> {
  const [host, portText] = env.temporalAddress.split(':');
  const uiUrl = `http://${host === '0.0.0.0' ? 'localhost' : host}:${env.uiPort}`;
  if (await serverAnswers(env.temporalAddress)) {
    log.info(`reusing the Temporal server already answering on ${env.temporalAddress}`);
    return { address: env.temporalAddress, uiUrl, owned: false, stop: async () => undefined };
  }
  if (!existsSync(env.temporalCli)) {
    throw new Error(`Temporal CLI not found at ${env.temporalCli}; run "npm run setup" (or set TEMPORAL_CLI)`);
  }
  mkdirSync(env.dataDir, { recursive: true });
  const dbFile = path.join(env.dataDir, 'temporal.sqlite');
  const logFile = path.join(env.dataDir, 'temporal-server.log');
  const args = [
    'server', 'start-dev',
    '--db-filename', dbFile,
    '--ip', host,
    '--port', portText,
    '--namespace', env.namespace,
    '--log-level', 'warn',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ...(options.headless ? ['--headless'] : ['--ui-port', String(env.uiPort)]),
  ];
  const out = openSync(logFile, 'a');
  const child: ChildProcess = spawn(env.temporalCli, args, { stdio: ['ignore', out, out] });
  let exited = false;
  child.on('exit', () => (exited = true));

  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (!(await serverAnswers(env.temporalAddress))) {
    if (exited) throw new Error(`temporal server start-dev exited early (code ${child.exitCode}); see ${logFile}`);
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`Temporal server did not answer on ${env.temporalAddress} within ${options.timeoutMs ?? 60_000} ms; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  log.info(`Temporal server on ${env.temporalAddress}, state in ${dbFile}${options.headless ? '' : `, UI at ${uiUrl}`}`);

  return {
    address: env.temporalAddress,
    uiUrl,
    owned: true,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(force);
          log.info('Temporal server stopped');
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
