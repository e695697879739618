// Latency and throughput of exported students (fp32 and int8, either family) on MASSIVE dev utterances.
//   npx tsx scripts/bench-runtime.ts --model DIR [--model DIR2 ...] [--n 200] [--split dev|test] [--threads 1] [--batch-size 32]
//     [--model-file model.onnx] [--no-task]
// Single-request latency includes tokenization. --no-task loads without the MASSIVE task (no quality
// numbers): for folders with other labels, e.g. test/fixtures/make-encoder-fixture.py's random-weight ones.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type Call, parseCall, printCall } from '../tasks/call-format';
import type { TaskSpec } from '../tasks/define';
import { loadMassiveTask, massiveGoldCall, type MassiveExample } from '../tasks/massive';
import { DecodeOptions, DecoderStudent, loadStudent, StudentPrediction, type StudentRuntime } from '../runtime/student';

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const fmt = (ms: number) => ms.toFixed(2).padStart(7);

async function singleRequests(model: DecoderStudent, inputs: readonly string[], options: DecodeOptions) {
  const latencies: number[] = [];
  const prefills: number[] = [];
  const predictions: StudentPrediction[] = [];
  let tokens = 0;
  const started = performance.now();
  for (const input of inputs) {
    const p = await model.predict(input, options);
    latencies.push(p.latencyMs);
    prefills.push(p.prefillMs);
    predictions.push(p);
    tokens += p.tokenIds.length + (p.stopReason === 'eos' ? 1 : 0);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  prefills.sort((a, b) => a - b);
  return { latencies, prefills, predictions, seconds, tokens };
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Any family: single requests (tokenization included), batches, and quality when the task is loaded. */
async function benchRuntime(model: StudentRuntime, inputs: readonly string[], dev: readonly MassiveExample[], task: TaskSpec<MassiveExample> | undefined, batchSize: number) {
  const latencies: number[] = [];
  const single: string[] = [];
  const calls: (Call | undefined)[] = [];
  const started = performance.now();
  for (const input of inputs) {
    const p = await model.predict(input);
    latencies.push(p.latencyMs);
    single.push(p.call ? printCall(p.call) : `error: ${p.errors?.join('; ')}`);
    calls.push(p.call);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const batchStarted = performance.now();
  const batched = await model.predictBatch(inputs, { batchSize });
  const batchSeconds = (performance.now() - batchStarted) / 1000;
  const sameAsBatch = batched.filter((p, i) => (p.call ? printCall(p.call) : `error: ${p.errors?.join('; ')}`) === single[i]).length;
  console.log(
    `  single: p50 ${fmt(percentile(latencies, 50))} ms  p95 ${fmt(percentile(latencies, 95))} ms  p99 ${fmt(percentile(latencies, 99))} ms` +
      `  ${(inputs.length / seconds).toFixed(1)} req/s   batch ${batchSize}: ${(inputs.length / batchSeconds).toFixed(1)} req/s   batch == single ${sameAsBatch}/${inputs.length}`,
  );
  if (task) {
    const metrics = task.metrics(dev.map((e, i) => ({ gold: massiveGoldCall(e), prediction: calls[i], schemaValid: calls[i] !== undefined })));
    console.log(`  schema-valid ${pct(metrics.schemaValidRate)}  intent ${pct(metrics.intentAccuracy)}  slot F1 ${pct(metrics.slotF1)}  exact ${pct(metrics.exactMatch)}`);
  }
  return single;
}

async function main() {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', multiple: true },
      n: { type: 'string', default: '200' },
      threads: { type: 'string', default: '1' },
      'batch-size': { type: 'string', default: '32' },
      warmup: { type: 'string', default: '10' },
      'model-file': { type: 'string', default: 'model.onnx' },
      'no-task': { type: 'boolean', default: false },
      split: { type: 'string', default: 'dev' },
    },
  });
  const folders = values.model ?? [];
  if (folders.length === 0) throw new Error('usage: bench-runtime.ts --model DIR [--model DIR ...] [--n 200] [--threads 1] [--batch-size 32]');
  const n = Number(values.n);
  const threads = Number(values.threads);
  const batchSize = Number(values['batch-size']);
  const { task } = await loadMassiveTask();
  const split = values.split === 'test' ? 'test' : 'dev';
  const dev = (await task.dataset.load(split)).slice(0, n);
  const inputs = dev.map((e) => e.utterance);
  console.log(`${inputs.length} MASSIVE ${split} utterances, ${threads} intra-op thread(s), batch size ${batchSize}`);

  const answers = new Map<string, string[]>();
  for (const folder of folders) {
    const loadStarted = performance.now();
    const model = await loadStudent(folder, { task: values['no-task'] ? undefined : task, threads, modelFile: values['model-file'] });
    const loadMs = performance.now() - loadStarted;
    const bytes = (await fs.stat(model.modelFile)).size;
    console.log(`\n${folder}  (${model.family}, ${(bytes / 1e6).toFixed(2)} MB ${path.basename(model.modelFile)}, loaded in ${loadMs.toFixed(0)} ms)`);
    for (const input of inputs.slice(0, Number(values.warmup))) await model.predict(input);
    if (!(model instanceof DecoderStudent)) {
      answers.set(`${folder}|true`, await benchRuntime(model, inputs, dev, values['no-task'] ? undefined : task, batchSize));
      await model.release();
      continue;
    }

    for (const constrained of [true, false]) {
      const label = constrained ? 'constrained  ' : 'unconstrained';
      const single = await singleRequests(model, inputs, { constrained });
      const batchStarted = performance.now();
      const batched = await model.predictBatch(inputs, { constrained, batchSize });
      const batchSeconds = (performance.now() - batchStarted) / 1000;
      const metrics = task.metrics(
        dev.map((e, i) => {
          const parsed = parseCall(single.predictions[i].text);
          return { gold: massiveGoldCall(e), prediction: parsed.ok ? parsed.call : undefined, schemaValid: single.predictions[i].call !== undefined };
        }),
      );
      const sameAsBatch = single.predictions.filter((p, i) => p.text === batched[i].text).length;
      const { latencies, prefills } = single;
      console.log(
        `  ${label} single: p50 ${fmt(percentile(latencies, 50))} ms  p95 ${fmt(percentile(latencies, 95))} ms  p99 ${fmt(percentile(latencies, 99))} ms` +
          `  (prefill p50 ${percentile(prefills, 50).toFixed(2)} ms)  ${(inputs.length / single.seconds).toFixed(1)} req/s` +
          `  ${(single.tokens / single.seconds).toFixed(0)} tok/s`,
      );
      console.log(
        `  ${label} batch ${batchSize}: ${(inputs.length / batchSeconds).toFixed(1)} req/s   batch == single ${sameAsBatch}/${inputs.length}` +
          `   schema-valid ${pct(metrics.schemaValidRate)}  intent ${pct(metrics.intentAccuracy)}  slot F1 ${pct(metrics.slotF1)}  exact ${pct(metrics.exactMatch)}`,
      );
      answers.set(`${folder}|${constrained}`, single.predictions.map((p) => p.text));
    }
    const differs = answers.get(`${folder}|true`)!.filter((t, i) => t !== answers.get(`${folder}|false`)![i]).length;
    console.log(`  constrained answer differs from unconstrained on ${differs}/${inputs.length}`);
    await model.release();
  }
  if (folders.length > 1) {
    for (const folder of folders.slice(1)) {
      const same = answers.get(`${folder}|true`)!.filter((t, i) => t === answers.get(`${folders[0]}|true`)![i]).length;
      console.log(`\nconstrained answers of ${folder} equal to ${folders[0]}: ${same}/${inputs.length}`);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
