// The local Temporal server: `temporal server start-dev` with its SQLite file in the data folder, so
// workflow state survives a restart. Reuses a server that already answers on the address, except for the
// demo, which never shares one.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import type { SupertinyEnv } from '../config/env';
import { createLogger } from '../config/logger';
import { waitFor } from '../runtime/wait-for';
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

/** A TCP port nothing listens on now (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export interface DevServerOptions {
  headless?: boolean;
  timeoutMs?: number;
  /**
   * "reuse" (npm run server/dev): a server already answering on the address is used as it is.
   * "own" (the demo): never share one; when the address is taken, start a private server (in-memory
   * state) on free ports, so another run's worker cannot pick up this run's workflows or stop its server.
   */
  share?: 'reuse' | 'own';
}

export async function startDevServer(env: SupertinyEnv, options: DevServerOptions = {}): Promise<DevServer> {
  let [host, portText] = env.temporalAddress.split(':');
  let uiPort = env.uiPort;
  let dbFile: string | undefined = path.join(env.dataDir, 'temporal.sqlite');
  if (await serverAnswers(env.temporalAddress)) {
    if (options.share !== 'own') {
      log.info(`reusing the Temporal server already answering on ${env.temporalAddress}`);
      const uiUrl = `http://${host === '0.0.0.0' ? 'localhost' : host}:${env.uiPort}`;
      return { address: env.temporalAddress, uiUrl, owned: false, stop: async () => undefined };
    }
    host = '127.0.0.1';
    portText = String(await freePort(host));
    uiPort = await freePort(host);
    dbFile = undefined;
    log.info(`another Temporal server answers on ${env.temporalAddress}: starting a private one on ${host}:${portText}`);
  }
  const address = `${host}:${portText}`;
  const uiUrl = `http://${host === '0.0.0.0' ? 'localhost' : host}:${uiPort}`;
  if (!existsSync(env.temporalCli)) {
    throw new Error(`Temporal CLI not found at ${env.temporalCli}; run "npm run setup" (or set TEMPORAL_CLI)`);
  }
  mkdirSync(env.dataDir, { recursive: true });
  const logFile = path.join(env.dataDir, 'temporal-server.log');
  const args = [
    'server', 'start-dev',
    ...(dbFile ? ['--db-filename', dbFile] : []),
    '--ip', host,
    '--port', portText,
    '--namespace', env.namespace,
    '--log-level', 'warn',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ...(options.headless ? ['--headless'] : ['--ui-port', String(uiPort)]),
  ];
  const out = openSync(logFile, 'a');
  const child: ChildProcess = spawn(env.temporalCli, args, { stdio: ['ignore', out, out] });
  let exited = false;
  child.on('exit', () => (exited = true));

  const answering = async () => {
    if (await serverAnswers(address)) return true;
    if (exited) throw new Error(`temporal server start-dev exited early (code ${child.exitCode}); see ${logFile}`);
    return false;
  };
  try {
    await waitFor(`the Temporal server to answer on ${address} (see ${logFile})`, answering, { timeoutMs: options.timeoutMs ?? 60_000, intervalMs: 250 });
  } catch (err) {
    child.kill('SIGTERM'); // one that never answered is not left running (one that exited is gone already)
    throw err;
  }
  log.info(`Temporal server on ${address}, state ${dbFile ? `in ${dbFile}` : 'in memory'}${options.headless ? '' : `, UI at ${uiUrl}`}`);

  return {
    address,
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
