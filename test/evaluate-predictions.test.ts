// Predictions files: the report's per-model JSONL (id, input, gold, prediction, correct) and `supertiny score`,
// which scores such a file, or one from a model elsewhere, with the task's own call format and metrics.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { predictionRow, PredictionsFileError, scorePredictions } from '../activities/evaluate/predictions';
import { renderReportHtml, type PipelineReport } from '../activities/evaluate/report';
import { readEnv } from '../config/env';
import { loadTaskFromFiles } from '../tasks/from-files';
import type { Call } from '../tasks/call-format';

const run = promisify(execFile);

const FUNCTIONS = {
  systemPrompt: 'One call.',
  tools: [
    {
      type: 'function',
      function: {
        name: 'set_volume',
        description: 'Sets the volume.',
        parameters: { type: 'object', properties: { level: { type: 'integer', minimum: 0, maximum: 10 }, room: { type: 'string', enum: ['kitchen', 'bedroom'] } }, required: ['level'] },
      },
    },
    { type: 'function', function: { name: 'mute', description: 'Mutes.', parameters: { type: 'object', properties: {} } } },
  ],
};
const DATA = [
  { id: 'a', split: 'train', input: 'volume three', gold: { name: 'set_volume', arguments: { level: 3 } } },
  { id: 'b', split: 'dev', input: 'mute please', gold: { name: 'mute' } },
  { id: 'c', split: 'test', input: 'kitchen volume to seven', gold: { name: 'set_volume', arguments: { level: 7, room: 'kitchen' } } },
  { id: 'd', split: 'test', input: 'silence', gold: { name: 'mute' } },
];

let dir: string;
let functionsFile: string;
let dataFile: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'predictions-'));
  functionsFile = path.join(dir, 'functions.json');
  dataFile = path.join(dir, 'data.jsonl');
  await fs.writeFile(functionsFile, JSON.stringify(FUNCTIONS));
  await fs.writeFile(dataFile, DATA.map((d) => JSON.stringify(d)).join('\n') + '\n');
});
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

const call = (name: string, args: Record<string, string> = {}): Call => ({ name, args: Object.entries(args).map(([key, value]) => ({ key, value })) });

describe('predictions files', () => {
  test("a report's rows score back to the same metrics with the task's own metrics", async () => {
    const task = await loadTaskFromFiles({ functions: functionsFile, data: dataFile });
    const gold = [
      { id: 'c', text: 'kitchen volume to seven', gold: call('set_volume', { level: '7', room: 'kitchen' }) },
      { id: 'd', text: 'silence', gold: call('mute') },
    ];
    const predicted = [call('set_volume', { room: 'kitchen', level: '7' }), undefined];
    const rows = gold.map((g, i) => predictionRow(task, g, predicted[i]));
    expect(rows).toEqual([
      { id: 'c', input: 'kitchen volume to seven', gold: 'set_volume(level="7", room="kitchen")', prediction: 'set_volume(room="kitchen", level="7")', correct: true },
      { id: 'd', input: 'silence', gold: 'mute()', prediction: null, correct: false },
    ]);
    const metrics = scorePredictions(task, rows.map((r) => JSON.stringify(r)).join('\n'));
    expect(metrics).toEqual(task.metrics(gold.map((g, i) => ({ gold: g.gold, prediction: predicted[i], schemaValid: predicted[i] !== undefined }))));
    expect(metrics).toMatchObject({ count: 2, exactMatch: 0.5, intentAccuracy: 0.5, schemaValidRate: 0.5 });
  });

  test("a model from elsewhere: OpenAI-style typed calls, gold looked up by id, a call outside the schema counts as invalid", async () => {
    const task = await loadTaskFromFiles({ functions: functionsFile, data: dataFile });
    const goldById = new Map([
      ['c', call('set_volume', { level: '7', room: 'kitchen' })],
      ['d', call('mute')],
    ]);
    const lines = [
      JSON.stringify({ id: 'c', prediction: { name: 'set_volume', arguments: { level: 7, room: 'kitchen' } } }),
      JSON.stringify({ id: 'd', prediction: { name: 'set_volume', arguments: { level: 70 } } }),
    ];
    expect(scorePredictions(task, lines.join('\n'), goldById)).toMatchObject({ count: 2, exactMatch: 0.5, schemaValidRate: 0.5 });
  });

  test.each([
    ['a line that is not JSON', '{"id": "c", "prediction": "SECRET', /^predictions line 1: not valid JSON$/],
    ['a line without a prediction', JSON.stringify({ id: 'c' }), /^predictions line 1: field prediction: missing/],
    ['an id with no gold anywhere', JSON.stringify({ id: 'SECRET', prediction: null }), /^predictions line 1: field gold: missing, and the task has no gold call of this id$/],
    ['a gold that is not a call of the task', JSON.stringify({ id: 'c', gold: 'SECRET(', prediction: null }), /^predictions line 1: field gold: not a valid call of the task$/],
    ['a repeated id', [JSON.stringify({ id: 'c', gold: 'mute()', prediction: null }), JSON.stringify({ id: 'c', gold: 'mute()', prediction: null })].join('\n'), /^predictions line 2: field id: /],
  ])('refuses a predictions file with %s, naming the line and field', async (_what, text, message) => {
    const task = await loadTaskFromFiles({ functions: functionsFile, data: dataFile });
    const err = (() => {
      try {
        scorePredictions(task, text);
      } catch (e) {
        return e as Error;
      }
      throw new Error('scored');
    })();
    expect(err).toBeInstanceOf(PredictionsFileError);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('SECRET');
  });

  test('report.html links each model\'s predictions file', () => {
    const model = { intent_acc: 1, slot_f1: 1, exact_match: 1, schema_valid: 1, latency_ms_p50: 1, latency_ms_p95: 1, throughput_rps: 1, params: null, bytes: null, latency_note: '' };
    const report: PipelineReport = {
      pipeline: 'p',
      dataset: { name: 'Volume', path: null, split: 'test', examples: 2 },
      config: {},
      models: { teacher: model, student_int8: model },
      gates: [],
      transfer: [],
      prototype: {},
      predictions: { teacher: 'predictions-teacher.jsonl', student_int8: 'predictions-student_int8.jsonl' },
      createdAt: 'now',
    };
    const html = renderReportHtml(report);
    expect(html).toContain('<a href="predictions-teacher.jsonl">Teacher (API)</a>');
    expect(html).toContain('<a href="predictions-student_int8.jsonl">Student (ONNX int8)</a>');
    expect(renderReportHtml({ ...report, predictions: undefined })).not.toContain('<h2>Predictions</h2>');
  });

  test('supertiny score scores a file with the metrics of a task from files, looking gold up in its data', async () => {
    const predictions = path.join(dir, 'elsewhere.jsonl');
    await fs.writeFile(predictions, [JSON.stringify({ id: 'c', prediction: { name: 'set_volume', arguments: { level: 7, room: 'kitchen' } } }), JSON.stringify({ id: 'd', prediction: 'mute()' })].join('\n'));
    const env = readEnv();
    const { stdout } = await run(path.join(env.projectRoot, 'node_modules', '.bin', 'tsx'), ['cli/main.ts', 'score', '--task', functionsFile, '--task-data', dataFile, '--predictions', predictions], {
      cwd: env.projectRoot,
    });
    expect(JSON.parse(stdout)).toMatchObject({ task: 'task from files', count: 2, exactMatch: 1, intentAccuracy: 1, schemaValidRate: 1 });
  }, 60_000);
});
