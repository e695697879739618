// The transfer and compress stages with scripted activities: every trainer step they schedule is the one
// trainerStep activity, and histories recorded before it (trainTokenizer, initStudent, trainStudent,
// pruneVocab, pruneLayers, exportOnnx and quantize by name) still replay.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ArtifactRef } from '../artifacts/ref';
import type { TrainerStepInput } from '../activities/trainer/trainer-step';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import { executeOnScriptedWorkers, replayFixture, startTestServer } from './support/temporal';

const ref = (name: string): ArtifactRef => {
  const sha256 = createHash('sha256').update(name).digest('hex');
  return { uri: `file:///store/blobs/sha256/${sha256.slice(0, 2)}/${sha256}`, bytes: 1000, kind: 'test/dir', sha256 };
};

const prototype = {
  data: { train: ref('train'), dev: ref('dev'), test: ref('test'), counts: { train: 1, dev: 1, test: 1 } },
  ...Object.fromEntries(['sft', 'preferences', 'rejected', 'stats'].map((name) => [name, ref(name)])),
  summary: {},
};

/** The activities the two stages schedule, each recording its call and returning a fresh artifact. */
function scriptedActivities(calls: string[]) {
  const score = (name: string) => async ({ model }: { model: ArtifactRef }) => {
    calls.push(name);
    return { exactMatch: 0.5, intentAccuracy: 0.5, slotF1: 0.5, schemaValidRate: 1, count: 1, modelBytes: model.bytes };
  };
  return {
    async trainerStep({ plan }: TrainerStepInput) {
      calls.push(`trainerStep ${plan.name}`);
      return { model: ref(`${plan.name}-${calls.length}`), metrics: { loss: 1 } };
    },
    async scoreModel({ plan, model }: { plan: { runtime: string }; model: ArtifactRef }) {
      return score(`scoreModel ${plan.runtime}`)({ model });
    },
    async calibrateConfidence({ model }: { model: ArtifactRef }) {
      return { model, skipped: 'scripted' };
    },
  };
}

describe('trainer steps in the transfer and compress stages', () => {
  let server: TestWorkflowEnvironment;

  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await server?.teardown();
  });

  /** Runs `workflow` on scripted activities; returns the activities it called, in order. */
  async function runStage(workflow: 'transferStage' | 'compressStage', input: PipelineConfigInput, fixture: string): Promise<string[]> {
    const calls: string[] = [];
    const config = parsePipelineConfig(input);
    const args = workflow === 'transferStage' ? [{ config, prototype }] : [{ config, prototype, transfer: { steps: [], student: ref('student') } }];
    // SUPERTINY_RECORD_HISTORY_DIR=dir saves each run's history there under its fixture's name (how the fixtures were made).
    const recordTo = process.env.SUPERTINY_RECORD_HISTORY_DIR && path.join(process.env.SUPERTINY_RECORD_HISTORY_DIR, fixture);
    await executeOnScriptedWorkers(server, workflow, args, scriptedActivities(calls), recordTo);
    return calls;
  }

  const decoderKd: PipelineConfigInput = { transfer: { steps: ['sft', 'kd'], student: { hiddenSize: 64, heads: 2, kvHeads: 1 } } };
  const encoderCompress: PipelineConfigInput = { compress: { steps: ['prune-vocab', 'prune-layers', 'int8'] } };

  test('the decoder transfer stage runs its tokenizer, the student and kd teacher inits, then each step, as trainerStep', async () => {
    const calls = await runStage('transferStage', decoderKd, 'transfer-history-before-trainer-step.json');
    expect(calls).toEqual([
      'trainerStep trainTokenizer',
      'trainerStep initStudent',
      'trainerStep trainStudent-sft',
      'scoreModel trainer',
      'trainerStep initStudent',
      'trainerStep trainStudent-sft',
      'trainerStep trainStudent-kd',
      'scoreModel trainer',
    ]);
  }, 120_000);

  test('the encoder compress stage runs export, prune-vocab, prune-layers and int8 as trainerStep, each scored', async () => {
    const calls = await runStage('compressStage', encoderCompress, 'compress-history-before-trainer-step.json');
    expect(calls).toEqual([
      'trainerStep exportOnnx', 'scoreModel onnx',
      'trainerStep pruneVocab', 'trainerStep exportOnnx', 'scoreModel onnx',
      'trainerStep pruneLayers', 'trainerStep exportOnnx', 'scoreModel onnx',
      'trainerStep quantize-int8', 'scoreModel onnx',
    ]);
  }, 120_000);

  test.each([
    ['transfer-history-before-trainer-step.json', ['trainTokenizer', 'initStudent', 'trainStudent']],
    ['compress-history-before-trainer-step.json', ['exportOnnx', 'pruneVocab', 'pruneLayers', 'quantize']],
  ])('%s, recorded before trainerStep, replays: it schedules the trainer steps by their old names', async (file, names) => {
    // Recorded with the workflows of 760f518, by this file's first two tests as of ba96a01 (which scripted the activities by name).
    const scheduled = await replayFixture(file);
    expect(scheduled).toEqual(expect.arrayContaining(names));
    expect(scheduled).not.toContain('trainerStep');
  }, 60_000);
});
