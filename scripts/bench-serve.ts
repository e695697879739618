// Load test of `supertiny serve` on 127.0.0.1: autocannon at several concurrencies, bounded in time, per
// ONNX file of a student folder, against the in-process single-request latency of the same file.
//   npx tsx scripts/bench-serve.ts --model DIR [--model-file model.onnx --model-file model.int8.onnx]
//     [--duration 10] [--concurrency 1,8,32] [--threads 1] [--inference-thread worker|main] [--batch-wait-ms 0]
//     [--max-batch 32] [--n 300]
// The server runs as its own process (`supertiny serve`); the load generator shares the machine with it.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { readEnv } from '../config/env';
import { loadStudent } from '../runtime/student';
import { loadMassiveTask } from '../tasks/massive';

/** The part of autocannon's API used here (it ships no types). */
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon: Autocannon = require('autocannon');

const MODEL_NAME = 'bench-student';

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Single requests in process, tokenization included: the floor the served p50 is compared with. */
async function inProcessLatency(folder: string, modelFile: string, threads: number, inputs: readonly string[]) {
  const { task } = await loadMassiveTask();
  const student = await loadStudent(folder, { task, modelFile, threads });
  try {
    for (const input of inputs.slice(0, 20)) await student.predict(input);
    const latencies: number[] = [];
    const answered: string[] = [];
    for (const input of inputs) {
      const p = await student.predict(input);
      latencies.push(p.latencyMs);
      if (p.call) answered.push(input);
    }
    latencies.sort((a, b) => a - b);
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), answered };
  } finally {
    await student.release();
  }
}

interface ServerProcess {
  url: string;
  stop(): Promise<number | null>;
}

async function startServer(folder: string, modelFile: string, flags: string[]): Promise<ServerProcess> {
  const env = readEnv();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(env.projectRoot, 'cli', 'main.ts'), 'serve', '--model', folder, '--model-file', modelFile, '--model-name', MODEL_NAME, '--port', '0', ...flags], {
    cwd: env.projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /serving at (http:\S+)/.exec(output);
      if (match) resolve(match[1]);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`supertiny serve exited (${code}):\n${output}`)));
  });
  return {
    url,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

const bodyOf = (input: string) => JSON.stringify({ model: MODEL_NAME, messages: [{ role: 'user', content: input }] });

/** Sequential requests over one keep-alive connection, timed here with sub-millisecond resolution (autocannon's is 1 ms). */
async function sequentialLatency(url: string, inputs: readonly string[]) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL(`${url}/chat/completions`);
  const post = (body: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(target, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(res.statusCode) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  for (const input of inputs.slice(0, 20)) await post(bodyOf(input));
  const latencies: number[] = [];
  for (const input of inputs) {
    const started = performance.now();
    await post(bodyOf(input));
    latencies.push(performance.now() - started);
  }
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function batchStats(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url.replace(/\/v1$/, '')}/metrics`)).text();
  const value = (name: string) => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').find((l) => l.startsWith(name + ' ')) ?? '')?.[2] ?? 0);
  return { sum: value('supertiny_batch_size_sum'), count: value('supertiny_batch_size_count') };
}

async function main() {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      'model-file': { type: 'string', multiple: true },
      duration: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '1,8,32' },
      threads: { type: 'string', default: '1' },
      'inference-thread': { type: 'string', default: 'worker' },
      'batch-wait-ms': { type: 'string', default: '0' },
      'max-batch': { type: 'string', default: '32' },
      n: { type: 'string', default: '300' },
    },
  });
  if (!values.model) throw new Error('usage: bench-serve.ts --model DIR [--model-file F ...] [--duration 10] [--concurrency 1,8,32] [--threads 1]');
  const folder = path.resolve(values.model);
  const files = values['model-file'] ?? ['model.onnx'];
  const duration = Number(values.duration);
  const concurrencies = values.concurrency!.split(',').map(Number);
  const threads = Number(values.threads);
  const { task } = await loadMassiveTask();
  const utterances = (await task.dataset.load('dev')).slice(0, Number(values.n)).map((e) => e.utterance);
  const serverFlags = ['--threads', String(threads), '--inference-thread', values['inference-thread']!, '--batch-wait-ms', values['batch-wait-ms']!, '--max-batch', values['max-batch']!];
  console.log(`${folder}: ${utterances.length} MASSIVE dev utterances, ${threads} intra-op thread(s), ${duration} s per point, server flags ${serverFlags.join(' ')}`);

  for (const file of files) {
    const single = await inProcessLatency(folder, file, threads, utterances);
    // Only inputs the student answers with a call: the others are 422s, which autocannon does not time.
    const inputs = single.answered;
    console.log(`\n${file}: in-process single request p50 ${single.p50.toFixed(2)} ms, p99 ${single.p99.toFixed(2)} ms; ${inputs.length}/${utterances.length} inputs answered with a call`);
    const server = await startServer(folder, file, serverFlags);
    try {
      const sequential = await sequentialLatency(server.url, inputs);
      console.log(`  served, one keep-alive connection, sequential: p50 ${sequential.p50.toFixed(2)} ms, p99 ${sequential.p99.toFixed(2)} ms (p50 overhead over in-process ${(sequential.p50 - single.p50).toFixed(2)} ms)`);
      console.log('  | concurrency | requests/s | p50 ms | p99 ms | mean batch | non-2xx | errors |');
      for (const connections of concurrencies) {
        let next = 0;
        const before = await batchStats(server.url);
        const result = await autocannon({
          url: `${server.url}/chat/completions`,
          connections,
          duration,
          requests: [
            {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              setupRequest: (request: Record<string, unknown>) => ({ ...request, body: bodyOf(inputs[next++ % inputs.length]) }),
            },
          ],
        });
        const after = await batchStats(server.url);
        const meanBatch = (after.sum - before.sum) / Math.max(1, after.count - before.count);
        console.log(
          `  | ${connections} | ${result.requests.average.toFixed(1)} | ${result.latency.p50} | ${result.latency.p99} | ${meanBatch.toFixed(2)} | ${result.non2xx} | ${result.errors + result.timeouts} |`,
        );
      }
    } finally {
      const code = await server.stop();
      if (code !== 0) console.log(`  (the server exited with ${code} on SIGTERM)`);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
