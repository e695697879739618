// A supertiny worker in a child process (`node --import tsx workers/main.ts`), so a test can SIGKILL it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { SupertinyEnv } from '../../config/env';

export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves when the worker logs that it polls its task queues. */
  ready: Promise<void>;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startWorkerProcess(env: SupertinyEnv, extraEnv: Record<string, string> = {}): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(env.projectRoot, 'workers', 'main.ts')], {
    cwd: env.projectRoot,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.temporalAddress,
      SUPERTINY_TASK_QUEUE: env.taskQueue,
      SUPERTINY_DATA_DIR: env.dataDir,
      SUPERTINY_WORKER_ROLE: 'all',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('worker polling')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`worker exited (${code ?? signal}) before it was ready:\n${log.slice(-3000)}`)));
  });
  ready.catch(() => undefined);
  return {
    child,
    ready,
    output: () => log,
    kill: (signal = 'SIGKILL') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}
