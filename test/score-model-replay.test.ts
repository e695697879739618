// The one scoring activity in the stage workflows: the evaluate stage is the plan's scoring steps (scoreModel,
// each on the queue of its runtime) and then writeReport; histories recorded before it (scoreStudentOnDev,
// scoreOnDev and evaluateModels by name) still replay.
import { createHash } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ArtifactRef } from '../artifacts/ref';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import type { ScoreModelInput } from '../activities/evaluate/score';
import type { WriteReportInput } from '../activities/evaluate/activities';
import { executeOnScriptedWorkers, replayFixture, startTestServer } from './support/temporal';

const ref = (name: string): ArtifactRef => {
  const sha256 = createHash('sha256').update(name).digest('hex');
  return { uri: `file:///store/blobs/sha256/${sha256.slice(0, 2)}/${sha256}`, bytes: 1000, kind: 'test/dir', sha256 };
};
const names = new Map<string, string>();
const named = (name: string) => {
  const r = ref(name);
  names.set(r.sha256, name);
  return r;
};

const prototype = {
  data: { train: ref('train'), dev: ref('dev'), test: named('test'), counts: { train: 1, dev: 1, test: 1 } },
  ...Object.fromEntries(['sft', 'preferences', 'rejected', 'stats'].map((name) => [name, ref(name)])),
  summary: {},
};
const transfer = { steps: [{ step: 'sft', model: named('student'), metrics: { loss: 1 } }], student: named('student') };

describe('scoring in the stage workflows', () => {
  let server: TestWorkflowEnvironment;

  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await server?.teardown();
  });

  async function evaluate(input: PipelineConfigInput, compress: Record<string, unknown>) {
    const calls: string[] = [];
    let report: WriteReportInput | undefined;
    const activities = {
      async scoreModel({ plan, model, gold }: ScoreModelInput) {
        calls.push(`scoreModel ${plan.runtime} ${model ? names.get(model.sha256) : '-'} on ${names.get(gold.sha256)} timing ${plan.latencySamples}`);
        return { exactMatch: 0.5, intentAccuracy: 0.5, slotF1: 0.5, schemaValidRate: 1, count: 1, answers: ref(`answers ${calls.length}`) };
      },
      async writeReport(given: WriteReportInput) {
        calls.push('writeReport');
        report = given;
        return { report: ref('report'), html: ref('html'), reportPath: '/reports/x/report.json', models: {} };
      },
    };
    const config = parsePipelineConfig(input);
    await executeOnScriptedWorkers(server, 'evaluateStage', [{ config, prototype, transfer, compress }], activities);
    return { calls, report: report! };
  }

  test('the evaluate stage scores each model of the plan once, then writes the report of those scores', async () => {
    const compress = { onnx: named('onnx'), int8: named('int8'), int4: named('int4'), chosen: named('int4'), deployed: { model: named('deployed'), skipped: 'scripted' }, gates: [] };
    const { calls, report } = await evaluate({ compress: { steps: ['int8', 'int4'] }, evaluate: { latencySamples: 7 } }, compress);
    expect(calls).toEqual([
      'scoreModel teacher - on test timing 7',
      'scoreModel trainer student on test timing 7',
      'scoreModel onnx onnx on test timing 7',
      'scoreModel onnx int8 on test timing 7',
      'scoreModel onnx int4 on test timing 7',
      // The served folder: its answers are the chosen model's; its confidence is what the cascade ranks by.
      'scoreModel onnx deployed on test timing 0',
      'writeReport',
    ]);
    expect(report.scores.map((s) => s.row)).toEqual(['teacher', 'student', 'student_onnx', 'student_int8', 'student_int4', 'served']);
  }, 120_000);

  test('a model the run does not have is not scored: a quantization not run, no deployed folder', async () => {
    const { calls } = await evaluate({ compress: { steps: ['int8'] }, evaluate: { split: 'test' } }, { onnx: named('onnx'), int8: named('int8'), chosen: named('int8'), gates: [] });
    expect(calls.map((c) => c.split(' on ')[0])).toEqual(['scoreModel teacher -', 'scoreModel trainer student', 'scoreModel onnx onnx', 'scoreModel onnx int8', 'writeReport']);
  }, 120_000);

  test.each([
    ['transfer-history-before-score-model.json', ['scoreStudentOnDev']],
    ['compress-history-before-score-model.json', ['scoreOnDev', 'calibrateConfidence']],
    ['evaluate-history-before-score-model.json', ['evaluateModels']],
  ])('%s, recorded before scoreModel, replays: it schedules the scoring activities by their old names', async (file, scheduledNames) => {
    // Recorded with the workflows of 5ddd860 (the transfer and compress ones by test/trainer-step-replay.test.ts,
    // the evaluate one by a scripted evaluateModels), with SUPERTINY_RECORD_HISTORY_DIR.
    const scheduled = await replayFixture(file);
    expect(scheduled).toEqual(expect.arrayContaining(scheduledNames));
    expect(scheduled).not.toContain('scoreModel');
  }, 60_000);
});
