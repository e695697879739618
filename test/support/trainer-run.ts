// Test students built by the real trainer CLI, cached under the OS temp folder by a hash of what built them
// (the build's settings and the trainer's source), so that a suite pays for a build once per trainer version.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { codeVersions } from '../../activities/output-keys';
import { readEnv } from '../../config/env';
import type { MassiveExample } from '../../tasks/massive';

const run = promisify(execFile);
const env = readEnv();
const trainerRoot = path.join(env.projectRoot, 'trainer');

/** Runs one trainer command with a config file in `dir` and returns the outputs of its `done` event. */
export async function trainerCommand(command: string, dir: string, config: object): Promise<Record<string, string>> {
  const configFile = path.join(dir, `${command}.json`);
  await fs.writeFile(configFile, JSON.stringify(config));
  let stdout: string;
  try {
    ({ stdout } = await run(env.python, ['-m', 'supertiny_trainer', command, '--config', configFile, '--run-dir', path.join(dir, command)], {
      cwd: env.projectRoot,
      env: { ...process.env, PYTHONPATH: trainerRoot },
      maxBuffer: 64 * 1024 * 1024,
    }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`trainer ${command} failed: ${e.stdout?.slice(-2000)}\n${e.stderr?.slice(-2000)}`);
  }
  const done = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((e) => e.event === 'done');
  if (!done) throw new Error(`trainer ${command} printed no done event:\n${stdout.slice(-2000)}`);
  return done.outputs;
}

/** The model folder of a command's outputs (its "model" output is the folder or the file in it). */
export async function modelFolder(outputs: Record<string, string>): Promise<string> {
  return (await fs.stat(outputs.model)).isDirectory() ? outputs.model : path.dirname(outputs.model);
}

/** One OpenAI chat fine-tuning line per example: the user utterance and the gold call as a tool call. */
export function sftLine(example: MassiveExample): string {
  const args = Object.fromEntries(example.slots.map((s) => [s.type, s.value]));
  return JSON.stringify({
    messages: [
      { role: 'user', content: example.utterance },
      { role: 'assistant', tool_calls: [{ id: 'call_0', type: 'function', function: { name: example.intent, arguments: JSON.stringify(args) } }] },
    ],
  });
}

/**
 * What `build` returns, built once into a staging folder and kept in `<tmp>/<cacheName>/<hash>` (renamed in
 * whole, so that a killed build leaves no half cache). `build` gets the staging folder and returns a
 * JSON-able result whose paths are inside it; they are rewritten to the cached folder.
 */
export async function cachedBuild<T>(cacheName: string, settings: object, build: (staging: string) => Promise<T>): Promise<T> {
  const cacheRoot = path.join(os.tmpdir(), cacheName);
  const hash = createHash('sha256').update(JSON.stringify(settings)).update((await codeVersions(env.projectRoot)).trainer).digest('hex').slice(0, 16);
  const dir = path.join(cacheRoot, hash);
  const manifest = path.join(dir, 'built.json');
  const cached = await fs.readFile(manifest, 'utf8').catch(() => undefined);
  if (cached) return JSON.parse(cached) as T;
  await fs.mkdir(cacheRoot, { recursive: true });
  const staging = await fs.mkdtemp(path.join(cacheRoot, 'build-'));
  const built = JSON.parse(JSON.stringify(await build(staging)).split(JSON.stringify(staging).slice(1, -1)).join(JSON.stringify(dir).slice(1, -1))) as T;
  await fs.writeFile(path.join(staging, 'built.json'), JSON.stringify(built));
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(staging, dir);
  return built;
}

/** Settings of a random-init decoder: a few seconds to build; its answers are noise, its shapes real. */
export const TINY_DECODER = {
  version: 1,
  examples: 400,
  tokenizer: { vocab_size: 512 },
  init: { hidden_size: 32, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 64, max_position_embeddings: 64 },
};

/** An exported random-init decoder folder (tokenizer, init, export), for tests of serving rather than answers. */
export async function tinyDecoder(train: readonly MassiveExample[]): Promise<{ folder: string; maxPositionEmbeddings: number }> {
  return cachedBuild('supertiny-tiny-decoder', TINY_DECODER, async (staging) => {
    const data = path.join(staging, 'sft.jsonl');
    const single = train.filter((e) => new Set(e.slots.map((s) => s.type)).size === e.slots.length).slice(0, TINY_DECODER.examples);
    await fs.writeFile(data, single.map(sftLine).join('\n') + '\n');
    const tokenizer = await trainerCommand('tokenizer', staging, { data, ...TINY_DECODER.tokenizer });
    const init = await trainerCommand('init', staging, { tokenizer: tokenizer.tokenizer, ...TINY_DECODER.init });
    const folder = await modelFolder(await trainerCommand('export', staging, { model: init.model, num_threads: 1 }));
    return { folder, maxPositionEmbeddings: TINY_DECODER.init.max_position_embeddings };
  });
}
