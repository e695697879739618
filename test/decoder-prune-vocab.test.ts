// decoder-prune-vocab's folder in the student runtime: a random tiny decoder whose tokenizer was trained on
// 1,200 MASSIVE examples, pruned to 150 of them and exported, is read by @huggingface/tokenizers exactly as
// Python's tokenizers reads it, spells unseen text in bytes, and decodes schema-valid calls.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readEnv } from '../config/env';
import { loadMassiveTask, MassiveExample, MassiveTask } from '../tasks/massive';
import { cachedBuild, modelFolder, sftLine, trainerCommand } from './support/trainer-run';
import { requireStudentRuntime } from './support/student-runtime';

const { DecoderStudent, StudentTokenizer } = requireStudentRuntime();

const run = promisify(execFile);
const env = readEnv();

const BUILD = {
  version: 1,
  tokenizerExamples: 1200,
  prunedExamples: 150,
  tokenizer: { vocab_size: 1024 },
  init: { hidden_size: 32, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 64, max_position_embeddings: 128 },
};
const UNSEEN = ['antidisestablishmentarianism quizzically', 'Zoë at the café in Zürich, 07:45 ☃ 日本 🎉', '  two  spaces\tand a tab'];

interface BuiltPruned {
  folder: string;
  metrics: { vocab_before: number; vocab_after: number };
  /** Python tokenizers' ids for the pruned sft prompts and answers and the unseen texts. */
  pythonIds: { text: string; ids: number[] }[];
}

function buildPruned(train: MassiveExample[]): Promise<BuiltPruned> {
  return cachedBuild('supertiny-decoder-prune-vocab-test', BUILD, async (staging) => {
    const single = train.filter((e) => new Set(e.slots.map((s) => s.type)).size === e.slots.length);
    const broad = path.join(staging, 'broad.jsonl');
    await fs.writeFile(broad, single.slice(0, BUILD.tokenizerExamples).map(sftLine).join('\n') + '\n');
    const narrowExamples = single.slice(0, BUILD.prunedExamples);
    const narrow = path.join(staging, 'sft.jsonl');
    await fs.writeFile(narrow, narrowExamples.map(sftLine).join('\n') + '\n');
    const tokenizer = await trainerCommand('tokenizer', staging, { data: broad, ...BUILD.tokenizer });
    const init = await trainerCommand('init', staging, { tokenizer: tokenizer.tokenizer, ...BUILD.init });
    const pruned = await trainerCommand('decoder-prune-vocab', staging, { model: init.model, data: narrow });
    const folder = await modelFolder(await trainerCommand('export', staging, { model: pruned.model, num_threads: 1 }));
    const metrics = JSON.parse(await fs.readFile(path.join(staging, 'decoder-prune-vocab', 'model', 'config.json'), 'utf8')) as { vocab_size: number };
    const before = JSON.parse(await fs.readFile(path.join(init.model, 'config.json'), 'utf8')) as { vocab_size: number };

    const texts = [...narrowExamples.map((e) => `<|bos|>${e.utterance}<|sep|>`), ...UNSEEN];
    const textsFile = path.join(staging, 'texts.json');
    await fs.writeFile(textsFile, JSON.stringify(texts));
    const { stdout } = await run(env.python, [
      '-c',
      'import json,sys\nfrom tokenizers import Tokenizer\nt=Tokenizer.from_file(sys.argv[1])\n' +
        'print(json.dumps([{"text":x,"ids":t.encode(x,add_special_tokens=False).ids} for x in json.load(open(sys.argv[2]))]))',
      path.join(folder, 'tokenizer.json'),
      textsFile,
    ]);
    return { folder, metrics: { vocab_before: before.vocab_size, vocab_after: metrics.vocab_size }, pythonIds: JSON.parse(stdout) };
  });
}

let massive: MassiveTask;
let built: BuiltPruned;

beforeAll(async () => {
  massive = await loadMassiveTask();
  built = await buildPruned(await massive.task.dataset.load('train'));
}, 600_000);

test('the pruned vocabulary is smaller, and the runtime tokenizer encodes it as Python does and decodes back', async () => {
  expect(built.metrics.vocab_after).toBeLessThan(built.metrics.vocab_before);
  const tokenizer = await StudentTokenizer.load(built.folder);
  for (const { text, ids } of built.pythonIds) {
    expect(tokenizer.encode(text)).toEqual(ids);
    expect(Math.max(...ids)).toBeLessThan(built.metrics.vocab_after);
  }
  for (const text of UNSEEN) expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  const bytes = tokenizer.tokenBytes!;
  expect(bytes).toHaveLength(built.metrics.vocab_after);
  expect(bytes[tokenizer.requireTokenId('<|eos|>', 'eos')]).toBeUndefined();
});

test('the pruned student loads and decodes schema-valid calls with its renumbered ids', async () => {
  const student = await DecoderStudent.load(built.folder, { task: massive.task, threads: 1 });
  try {
    const dev = (await massive.task.dataset.load('dev')).slice(0, 5);
    const predictions = await student.predictBatch(
      dev.map((e) => e.utterance),
      { batchSize: 5 },
    );
    // A random model: most answers end at <|eos|> (its renumbered id), a few run out of tokens first.
    expect(predictions.filter((p) => p.stopReason === 'eos' && p.call).length).toBeGreaterThanOrEqual(3);
    for (const p of predictions) if (p.call) expect(massive.task.validateCall(p.call)).toEqual({ ok: true });
    expect(predictions.every((p) => p.tokenIds.every((id) => id < built.metrics.vocab_after))).toBe(true);
  } finally {
    await student.release();
  }
});
