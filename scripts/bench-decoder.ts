// A decoder student's quality and single-request latency in TypeScript on a task from files (the request router
// by default), one request at a time as `supertiny serve` answers, tokenization and constrained decoding included:
//   npx tsx scripts/bench-decoder.ts --task-dir DIR --model DIR [--model DIR2 ...] [--split dev] [--n 200] [--threads 1]
//     [--max-new-tokens 64] [--no-fast-forward] [--no-draft] [--draft-tokens 4] [--compare] [--predictions DIR]
// DIR holds functions.json and data.jsonl (split field train/dev/test). Prints, per model: exact match, each argument's
// accuracy (an argument absent from both the gold and the answer counts as right), schema validity, p50/p95 per
// call, output tokens and forward passes per call, and the bytes of the graph. --no-fast-forward decodes the
// grammar-forced tokens one pass each, for comparison; --no-draft feeds no draft (DecodeOptions.draft); --compare
// decodes every example a second time without a draft and counts the answers that differ (none should, but for
// the numerics of a pass of several tokens). --predictions DIR writes each model's answers, one JSON line per example
// ({input, gold, prediction, exact}), to DIR/<n>-<model folder's name>.jsonl, for paired comparisons of two models.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadTaskFromFiles } from '../tasks/from-files';
import { type Call, normalizeSlotValue } from '../tasks/call-format';
import { DecoderStudent } from '../runtime/student';

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function argumentValues(call: Call | undefined): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (const { key, value } of call?.args ?? []) values.set(key, [...(values.get(key) ?? []), normalizeSlotValue(value)].sort());
  return values;
}

async function main() {
  const { values } = parseArgs({
    options: {
      'task-dir': { type: 'string', default: '/work/exp/router/F' },
      model: { type: 'string', multiple: true },
      split: { type: 'string', default: 'dev' },
      n: { type: 'string', default: '200' },
      threads: { type: 'string', default: '1' },
      warmup: { type: 'string', default: '5' },
      'max-new-tokens': { type: 'string', default: '64' },
      'no-fast-forward': { type: 'boolean', default: false },
      'no-draft': { type: 'boolean', default: false },
      'draft-tokens': { type: 'string', default: '4' },
      compare: { type: 'boolean', default: false },
      predictions: { type: 'string' },
    },
  });
  const folders = values.model ?? [];
  if (folders.length === 0) throw new Error('usage: bench-decoder.ts --task-dir DIR --model DIR [--model DIR ...] [--split dev] [--n 200] [--threads 1]');
  const dir = values['task-dir']!;
  const task = await loadTaskFromFiles({ functions: path.join(dir, 'functions.json'), data: path.join(dir, 'data.jsonl') });
  const split = values.split === 'test' ? 'test' : 'dev';
  const examples = (await task.dataset.load(split)).slice(0, Number(values.n));
  const threads = Number(values.threads);
  const decoding = {
    maxNewTokens: Number(values['max-new-tokens']),
    fastForward: !values['no-fast-forward'],
    draft: !values['no-draft'],
    draftTokens: Number(values['draft-tokens']),
  };
  const keys = [...new Set(examples.flatMap((e) => e.gold!.args.map((a) => a.key)))].sort();
  console.log(
    `${examples.length} ${split} examples of ${dir}, ${threads} intra-op thread(s), one request at a time, fast-forward ${decoding.fastForward ? 'on' : 'off'},` +
      ` draft ${decoding.draft ? `of at most ${decoding.draftTokens} tokens` : 'off'}`,
  );
  if (values.predictions) await fs.mkdir(values.predictions, { recursive: true });
  for (const [index, folder] of folders.entries()) {
    const model = await DecoderStudent.load(folder, { task, threads });
    for (const e of examples.slice(0, Number(values.warmup))) await model.predict(e.input, decoding);
    const latencies: number[] = [];
    let tokens = 0;
    let passes = 0;
    let drafted = 0;
    let accepted = 0;
    let differing = 0;
    const predictions = [];
    const lines: string[] = [];
    const rightByKey = new Map(keys.map((k) => [k, 0]));
    for (const e of examples) {
      const p = await model.predict(e.input, decoding);
      latencies.push(p.latencyMs);
      tokens += p.tokenIds.length;
      passes += p.forwardPasses;
      drafted += p.draftedTokens;
      accepted += p.acceptedDraftTokens;
      if (values.compare) {
        const plain = await model.predict(e.input, { ...decoding, draft: false });
        if (plain.text !== p.text) {
          differing++;
          console.log(`  differs without a draft: ${JSON.stringify(e.input)}\n    draft:    ${p.text}\n    no draft: ${plain.text}`);
        }
      }
      const scored = { gold: e.gold!, prediction: p.call, schemaValid: p.call !== undefined };
      predictions.push(scored);
      if (values.predictions) lines.push(JSON.stringify({ input: e.input, gold: e.gold, prediction: p.call ?? null, exact: task.metrics([scored]).exactMatch === 1 }));
      const [gold, answer] = [argumentValues(e.gold), argumentValues(p.call)];
      for (const k of keys) if (JSON.stringify(gold.get(k) ?? []) === JSON.stringify(answer.get(k) ?? [])) rightByKey.set(k, rightByKey.get(k)! + 1);
    }
    await model.release();
    latencies.sort((a, b) => a - b);
    const metrics = task.metrics(predictions);
    const bytes = (await fs.stat(model.modelFile)).size;
    const perKey = keys.map((k) => `${k} ${pct(rightByKey.get(k)! / examples.length)}`).join('  ');
    console.log(`\n${folder} (${(bytes / 1e6).toFixed(1)} MB)`);
    console.log(`  exact ${pct(metrics.exactMatch)}  schema-valid ${pct(metrics.schemaValidRate)}  ${perKey}`);
    console.log(
      `  p50 ${percentile(latencies, 50).toFixed(0)} ms  p95 ${percentile(latencies, 95).toFixed(0)} ms  ${(tokens / examples.length).toFixed(1)} output tokens` +
        ` and ${(passes / examples.length).toFixed(1)} forward passes per call;` +
        ` ${(drafted / examples.length).toFixed(1)} draft tokens fed per call, ${(accepted / examples.length).toFixed(1)} confirmed`,
    );
    if (values.predictions) {
      const file = path.join(values.predictions, `${index + 1}-${path.basename(path.resolve(folder))}.jsonl`);
      await fs.writeFile(file, lines.join('\n') + '\n');
      console.log(`  answers: ${file}`);
    }
    if (values.compare) console.log(`  ${differing} of ${examples.length} answers differ from decoding without a draft`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
