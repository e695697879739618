// The plan's estimate (config/estimate.ts) and `supertiny plan`, which prints it without starting anything.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { estimateError, estimateVsActual, labellingSpan, type RunActuals } from '../activities/evaluate/estimate-vs-actual';
import { renderReportHtml, type PipelineReport } from '../activities/evaluate/report';
import { SIMULATOR_PRICES } from '../config/endpoints';
import { readEnv } from '../config/env';
import { estimateRun, type EstimateInput, type StepEstimate } from '../config/estimate';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';

const run = promisify(execFile);

const DEMO_SPLITS = { train: 11_514, dev: 2_033, test: 2_974 };
const input = (raw: PipelineConfigInput = {}, splits = DEMO_SPLITS): EstimateInput => ({ config: parsePipelineConfig(raw), splits, prices: SIMULATOR_PRICES, simulated: true });
const step = (steps: StepEstimate[], name: string) => steps.find((s) => s.step === name)!;

describe('the estimate', () => {
  test('doubling the train inputs doubles the labelling requests and dollars, and training time grows in proportion', () => {
    const one = estimateRun(input({}, { ...DEMO_SPLITS, train: 1_000 }));
    const two = estimateRun(input({}, { ...DEMO_SPLITS, train: 2_000 }));
    const four = estimateRun(input({}, { ...DEMO_SPLITS, train: 4_000 }));
    expect(step(two.steps, 'label').teacherRequests).toBeCloseTo(2 * step(one.steps, 'label').teacherRequests, 6);
    expect(step(two.steps, 'label').usd).toBeCloseTo(2 * step(one.steps, 'label').usd, 9);
    // Linear in the accepted inputs: each doubling adds twice what the one before added (the fixed start aside).
    const sft = (e: typeof one) => step(e.steps, 'sft').cpuSeconds;
    expect(sft(four) - sft(two)).toBeCloseTo(2 * (sft(two) - sft(one)), 0);
    expect(step(four.steps, 'sft').wallSeconds).toBeGreaterThan(step(two.steps, 'sft').wallSeconds);
  });

  test('the demo estimate stays within 25% of the demo run (demo9) and the request router (router-g)', () => {
    const demo = estimateRun(input());
    // demo9: 73,699 paid requests, $11.87, sft 737.5 CPU-s, trainer peak 1.55 GB, data folder 1.86 GB.
    expect(demo.total.teacherRequests / 73_699).toBeGreaterThan(0.75);
    expect(demo.total.teacherRequests / 73_699).toBeLessThan(1.25);
    expect(Math.abs(demo.total.usd / 11.873 - 1)).toBeLessThan(0.25);
    expect(Math.abs(step(demo.steps, 'sft').cpuSeconds / 737.5 - 1)).toBeLessThan(0.25);
    expect(Math.abs(demo.total.diskBytes / 1.8645e9 - 1)).toBeLessThan(0.25);
    const router = estimateRun(input({ name: 'r', task: { name: 'from-files', dataPath: 'd', functionsPath: 'f' }, transfer: { epochs: 4 } }, { train: 3_000, dev: 500, test: 1_000 }));
    // router-g: 3,986 paid requests, $0.371, sft 112.8 CPU-s and 197 s wall.
    expect(Math.abs(router.total.teacherRequests / 3_986 - 1)).toBeLessThan(0.25);
    expect(Math.abs(router.total.usd / 0.3713 - 1)).toBeLessThan(0.25);
    expect(Math.abs(step(router.steps, 'sft').cpuSeconds / 112.8 - 1)).toBeLessThan(0.25);
  });

  test("dollars follow the endpoint's prices, and time the cores the run gets", () => {
    const sim = estimateRun(input());
    const dear = estimateRun({ ...input(), prices: { inputPerMTok: 3, outputPerMTok: 15 } });
    expect(dear.total.usd).toBeCloseTo((dear.total.promptTokens * 3 + dear.total.completionTokens * 15) / 1e6, 6);
    expect(dear.total.teacherRequests).toBe(sim.total.teacherRequests);
    const shared = estimateRun({ ...input(), freeCores: 0.65 });
    expect(step(shared.steps, 'sft').wallSeconds).toBeCloseTo(step(sim.steps, 'sft').wallSeconds * 2, 6);
    expect(step(shared.steps, 'sft').cpuSeconds).toBe(step(sim.steps, 'sft').cpuSeconds);
    // Scoring steps use one core: an idle machine's second core does not speed them up, a shared one slows them.
    expect(step(sim.steps, 'int8').wallSeconds).toBeCloseTo(step(sim.steps, 'int8').cpuSeconds, 6);
    expect(step(shared.steps, 'int8').wallSeconds).toBeCloseTo(step(sim.steps, 'int8').cpuSeconds / 0.65, 6);
  });

  test('more samples per input mean more requests; a judge adds its own, marked as not measured', () => {
    const five = estimateRun(input());
    const three = estimateRun(input({ teacher: { samples: 3 } }));
    expect(step(three.steps, 'label').teacherRequests).toBeLessThan(step(five.steps, 'label').teacherRequests);
    const judged = estimateRun(input({ teacher: { judge: { enabled: true } } }));
    expect(step(judged.steps, 'judge')).toMatchObject({ stage: 'prototype', measured: false });
    expect(judged.total.teacherRequests).toBeGreaterThan(five.total.teacherRequests);
  });

  test('each compression step and each transfer step has its own row; unmeasured decoder steps say so', () => {
    const encoder = estimateRun(input({ compress: { steps: ['prune-layers', 'int8'] } }));
    expect(encoder.steps.map((s) => `${s.stage}:${s.step}`)).toEqual([
      'prototype:label',
      'transfer:base',
      'transfer:sft',
      'transfer:score',
      'compress:export',
      'compress:prune-layers',
      'compress:int8',
      'compress:calibrate',
      'evaluate:test',
    ]);
    const decoder = estimateRun(input({ transfer: { student: { family: 'decoder' }, steps: ['sft', 'dpo'] } }));
    expect(step(decoder.steps, 'dpo').measured).toBe(false);
    expect(step(decoder.steps, 'dpo').cpuSeconds).toBeGreaterThan(0);
  });
});

const ACTUALS: RunActuals = {
  teacherRequests: 73_699,
  teacherUsd: 11.873,
  labellingUsd: 11.243,
  evaluationRequests: 5_928,
  evaluationPromptTokens: 4_155_000,
  evaluationCompletionTokens: 81_800,
  trainingCpuSeconds: 737.5,
  trainingWallSeconds: 998,
  trainerPeakMemoryBytes: 1.546e9,
  evaluationWallSeconds: 96,
  labellingWallSeconds: null,
  runWallSeconds: null,
  dataFolderBytes: 1.8645e9,
};

describe("the report's estimate against the run", () => {
  test('each row sets the estimate beside the actual, and the page shows them', () => {
    const report = estimateVsActual({ config: parsePipelineConfig({}), splits: DEMO_SPLITS, prices: SIMULATOR_PRICES, simulated: true, actual: ACTUALS });
    const requests = report.rows.find((r) => r.what === 'teacher requests (all stages)')!;
    expect(requests.actual).toBe(73_699);
    expect(estimateError(requests)).toMatch(/^[+-]\d+%$/);
    expect(estimateError(report.rows.find((r) => r.what.startsWith('run wall'))!)).toBe('–');
    const page = renderReportHtml({ pipeline: 'p', dataset: { name: 'd', path: null, split: 'test', examples: 1 }, config: {}, models: {}, gates: [], transfer: [], prototype: {}, estimate: report, createdAt: 'now' } as PipelineReport);
    expect(page).toContain("The plan's estimate against the run");
    expect(page).toContain('teacher requests (all stages)');
  });

  test("labelling's span is the spend ledger's first reservation to its last before the evaluation began", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ledger-'));
    const file = path.join(dir, 'l.jsonl');
    const reserve = (id: string, at: string) => `\n${JSON.stringify({ kind: 'reserve', id, estimateUsd: 1, budgetUsd: 9, at })}\n`;
    await fs.writeFile(file, reserve('a', '2026-12-05T04:38:54.806Z') + '\n{"kind":"paid","id":"a","usd":1}\n' + reserve('b', '2026-12-05T04:46:50.000Z') + reserve('c', '2026-12-05T05:04:30.000Z'));
    const span = await labellingSpan(file, new Date('2026-12-05T05:04:28.000Z'));
    expect(span?.first.toISOString()).toBe('2026-12-05T04:38:54.806Z');
    expect(span?.last.toISOString()).toBe('2026-12-05T04:46:50.000Z');
    expect(await labellingSpan(path.join(dir, 'none.jsonl'), new Date())).toBeNull();
    await fs.rm(dir, { recursive: true, force: true });
  });
});

describe('supertiny plan', () => {
  const FUNCTIONS = {
    systemPrompt: 'One call.',
    tools: [
      { type: 'function', function: { name: 'set_volume', description: 'Sets the volume.', parameters: { type: 'object', properties: { level: { type: 'integer', minimum: 0, maximum: 10 } }, required: ['level'] } } },
      { type: 'function', function: { name: 'mute', description: 'Mutes.', parameters: { type: 'object', properties: {} } } },
    ],
  };
  const lines = [
    ...Array.from({ length: 6 }, (_, i) => ({ id: `t${i}`, split: 'train', input: `volume ${i}`, gold: { name: 'set_volume', arguments: { level: i } } })),
    { id: 'd0', split: 'dev', input: 'mute please', gold: { name: 'mute' } },
    { id: 'd1', split: 'dev', input: 'volume two', gold: { name: 'set_volume', arguments: { level: 2 } } },
    { id: 's0', split: 'test', input: 'silence', gold: { name: 'mute' } },
  ];
  let dir: string;
  const env = readEnv();
  const tsx = path.join(env.projectRoot, 'node_modules', '.bin', 'tsx');
  const plan = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(tsx, ['cli/main.ts', 'plan', ...args], {
      cwd: env.projectRoot,
      // A Temporal address nothing listens on, and a data folder of its own: the plan must need neither.
      env: { ...process.env, SUPERTINY_DATA_ROOTS: dir, SUPERTINY_DATA_DIR: path.join(dir, 'data'), TEMPORAL_ADDRESS: '127.0.0.1:1', ...extraEnv },
    });

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'plan-'));
    await fs.writeFile(path.join(dir, 'functions.json'), JSON.stringify(FUNCTIONS));
    await fs.writeFile(path.join(dir, 'data.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const config = { name: 'volume', task: { name: 'from-files', dataPath: path.join(dir, 'data.jsonl'), functionsPath: path.join(dir, 'functions.json'), trainLimit: 4 } };
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
    await fs.writeFile(path.join(dir, 'priced.json'), JSON.stringify({ ...config, teacher: { endpoint: 'priced', model: 'big' } }));
    await fs.writeFile(path.join(dir, 'bad.json'), JSON.stringify({ ...config, transfer: { epochs: -1 } }));
    await fs.writeFile(
      path.join(dir, 'endpoints.json'),
      JSON.stringify({ endpoints: [{ name: 'priced', baseURL: 'https://llm.example.com/v1', apiKeyEnv: 'PLAN_TEST_KEY_UNSET', models: ['big'], prices: { inputPerMTok: 3, outputPerMTok: 15 } }] }),
    );
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  test('prints the resolved run and its estimate, with no server, and starts nothing', async () => {
    const { stdout } = await plan(['--config', path.join(dir, 'config.json')]);
    expect(stdout).toContain('plan for "volume"');
    expect(stdout).toMatch(/train 4, dev 2, test 1/);
    expect(stdout).toMatch(/student\s+encoder/);
    expect(stdout).toMatch(/teacher\s+simulator \/ teacher-simulator/);
    expect(stdout).toMatch(/transfer\s+sft: 7 epochs/);
    expect(stdout).toMatch(/compress\s+int8, int4/);
    expect(stdout).toMatch(/^total\s+/m);
    expect(stdout).toContain('times are for this machine');
    // Nothing ran: no data folder was made (no server's SQLite, no store, no spend ledger).
    await expect(fs.access(path.join(dir, 'data'))).rejects.toThrow();
  }, 60_000);

  test('--json parses, with the split sizes after the limits and dollars at the endpoint file\'s prices (no key needed)', async () => {
    const { stdout } = await plan(['--config', path.join(dir, 'priced.json'), '--json'], { SUPERTINY_TEACHER_ENDPOINTS: path.join(dir, 'endpoints.json') });
    const parsed = JSON.parse(stdout);
    expect(parsed.task.splits).toEqual({ train: 4, dev: 2, test: 1 });
    expect(parsed.teacher).toMatchObject({ endpoint: 'priced', model: 'big', simulated: false, prices: { inputPerMTok: 3, outputPerMTok: 15 } });
    const total = parsed.estimate.total;
    expect(total.usd).toBeCloseTo((total.promptTokens * 3 + total.completionTokens * 15) / 1e6, 9);
    expect(parsed.estimate.notes.join(' ')).toContain("a real endpoint's latency is not measured");
  }, 60_000);

  test('a bad config fails naming the file and the field', async () => {
    const failed = await plan(['--config', path.join(dir, 'bad.json')]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain(`${path.join(dir, 'bad.json')}: transfer.epochs:`);
  }, 60_000);
});
