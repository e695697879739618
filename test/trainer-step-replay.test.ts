// The transfer and compress stages with scripted activities: every trainer step they schedule is the one
// trainerStep activity, and histories recorded before it (trainTokenizer, initStudent, trainStudent,
// pruneVocab, pruneLayers, exportOnnx and quantize by name) still replay.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { ArtifactRef } from '../artifacts/ref';
import type { TrainerStepInput } from '../activities/trainer/trainer-step';
import { readEnv } from '../config/env';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import { gpuQueueOf } from '../workflows/activity-options';
import { startTestServer, workflowBundle } from './support/temporal';

const ref = (name: string): ArtifactRef => {
  const sha256 = createHash('sha256').update(name).digest('hex');
  return { uri: `file:///store/blobs/sha256/${sha256.slice(0, 2)}/${sha256}`, bytes: 1000, kind: 'test/dir', sha256 };
};

const prototype = {
  data: { train: ref('train'), dev: ref('dev'), test: ref('test'), counts: { train: 1, dev: 1, test: 1 } },
  ...Object.fromEntries(['sft', 'preferences', 'rejected', 'stats'].map((name) => [name, ref(name)])),
  summary: {},
};

/** Every activity the two stages schedule, as a name that records its call and returns a fresh artifact. */
function scriptedActivities(calls: string[]) {
  const artifact = (name: string) => async () => {
    calls.push(name);
    return ref(`${name}-${calls.length}`);
  };
  const trained = (name: string) => async () => {
    calls.push(name);
    return { model: ref(`${name}-${calls.length}`), metrics: { loss: 1 } };
  };
  const score = (name: string) => async ({ model }: { model: ArtifactRef }) => {
    calls.push(name);
    return { exactMatch: 0.5, intentAccuracy: 0.5, slotF1: 0.5, schemaValidRate: 1, count: 1, modelBytes: model.bytes };
  };
  return {
    async trainerStep({ plan }: TrainerStepInput) {
      calls.push(`trainerStep ${plan.name}`);
      return { model: ref(`${plan.name}-${calls.length}`), metrics: { loss: 1 } };
    },
    trainTokenizer: artifact('trainTokenizer'),
    initStudent: artifact('initStudent'),
    encoderBase: artifact('encoderBase'),
    trainStudent: trained('trainStudent'),
    pruneVocab: artifact('pruneVocab'),
    pruneLayers: artifact('pruneLayers'),
    exportOnnx: artifact('exportOnnx'),
    quantize: artifact('quantize'),
    scoreStudentOnDev: score('scoreStudentOnDev'),
    scoreOnDev: score('scoreOnDev'),
    async calibrateConfidence({ model }: { model: ArtifactRef }) {
      return { model, skipped: 'scripted' };
    },
  };
}

describe('trainer steps in the transfer and compress stages', () => {
  let server: TestWorkflowEnvironment;
  let run = 0;

  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await server?.teardown();
  });

  /** Runs `workflow` on scripted activities; returns the activities it called, in order. */
  async function runStage(workflow: 'transferStage' | 'compressStage', input: PipelineConfigInput, fixture: string): Promise<string[]> {
    const calls: string[] = [];
    const activities = scriptedActivities(calls);
    const taskQueue = `trainer-step-${Date.now()}-${run++}`;
    const workers = [
      await Worker.create({ connection: server.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities }),
      await Worker.create({ connection: server.nativeConnection, taskQueue: gpuQueueOf(taskQueue), activities }),
    ];
    const running = workers.map((w) => w.run());
    try {
      const config = parsePipelineConfig(input);
      const transfer = { steps: [], student: ref('student') };
      const args = workflow === 'transferStage' ? [{ config, prototype }] : [{ config, prototype, transfer }];
      await server.client.workflow.execute(workflow, { taskQueue, workflowId: taskQueue, args });
      // SUPERTINY_RECORD_HISTORY_DIR=dir saves each run's history there under its fixture's name (how the fixtures were made).
      if (process.env.SUPERTINY_RECORD_HISTORY_DIR) {
        const shown = await promisify(execFile)(readEnv().temporalCli, ['workflow', 'show', '--workflow-id', taskQueue, '--output', 'json', '--address', server.address], { maxBuffer: 64 << 20 });
        await fs.writeFile(path.join(process.env.SUPERTINY_RECORD_HISTORY_DIR, fixture), JSON.stringify({ workflowId: taskQueue, history: JSON.parse(shown.stdout) }));
      }
      return calls;
    } finally {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
    }
  }

  const decoderKd: PipelineConfigInput = { transfer: { steps: ['sft', 'kd'], student: { hiddenSize: 64, heads: 2, kvHeads: 1 } } };
  const encoderCompress: PipelineConfigInput = { compress: { steps: ['prune-vocab', 'prune-layers', 'int8'] } };

  test('the decoder transfer stage runs its tokenizer, the student and kd teacher inits, then each step, as trainerStep', async () => {
    const calls = await runStage('transferStage', decoderKd, 'transfer-history-before-trainer-step.json');
    expect(calls).toEqual([
      'trainerStep trainTokenizer',
      'trainerStep initStudent',
      'trainerStep trainStudent-sft',
      'scoreStudentOnDev',
      'trainerStep initStudent',
      'trainerStep trainStudent-sft',
      'trainerStep trainStudent-kd',
      'scoreStudentOnDev',
    ]);
  }, 120_000);

  test('the encoder compress stage runs export, prune-vocab, prune-layers and int8 as trainerStep, each scored', async () => {
    const calls = await runStage('compressStage', encoderCompress, 'compress-history-before-trainer-step.json');
    expect(calls).toEqual([
      'trainerStep exportOnnx', 'scoreOnDev',
      'trainerStep pruneVocab', 'trainerStep exportOnnx', 'scoreOnDev',
      'trainerStep pruneLayers', 'trainerStep exportOnnx', 'scoreOnDev',
      'trainerStep quantize-int8', 'scoreOnDev',
    ]);
  }, 120_000);

  test.each([
    ['transfer-history-before-trainer-step.json', ['trainTokenizer', 'initStudent', 'trainStudent']],
    ['compress-history-before-trainer-step.json', ['exportOnnx', 'pruneVocab', 'pruneLayers', 'quantize']],
  ])('%s, recorded before trainerStep, replays: it schedules the trainer steps by their old names', async (file, names) => {
    // Recorded with the workflows of 760f518, from the two tests above.
    const fixture = JSON.parse(await fs.readFile(path.join(__dirname, 'fixtures', file), 'utf8'));
    const scheduled = (fixture.history.events as { activityTaskScheduledEventAttributes?: { activityType: { name: string } } }[]).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType.name ?? []);
    expect(scheduled).toEqual(expect.arrayContaining(names));
    expect(scheduled).not.toContain('trainerStep');
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, fixture.history, fixture.workflowId);
  }, 60_000);
});
