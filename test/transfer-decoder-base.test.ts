// The transfer stage with a registry decoder base, on scripted activities: decoderBase once, the student
// initialised from its folder (trainerStep's init with the base as input), no tokenizer trained, then the steps.
// The recorded history of that path replays.
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ArtifactRef } from '../artifacts/ref';
import type { PrototypeResult, TransferResult } from '../activities/types';
import type { TrainerStepInput } from '../activities/trainer/trainer-step';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import type { DecoderBasePlan } from '../config/plan';
import { executeOnScriptedWorkers, replayFixture, startTestServer } from './support/temporal';
import { smallPipelineConfig } from './support/pipeline-config';

const ref = (kind: string, n: number): ArtifactRef => ({ uri: `file:///nowhere/blobs/sha256/00/${String(n).padStart(64, '0')}`, sha256: String(n).padStart(64, '0'), bytes: 0, kind });

describe('transferStage with a pretrained decoder', () => {
  let server: TestWorkflowEnvironment;

  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await server?.teardown();
  });

  const data = ref('jsonl', 900);
  const prototype = { data: { train: data, dev: data, test: data, counts: { train: 1, dev: 1, test: 1 } }, sft: data, preferences: data, rejected: data, stats: data, summary: {} } as PrototypeResult;

  /** Runs the stage on activities that record each call (trainer steps with their input roles and config). */
  async function transfer(input: PipelineConfigInput, fixture: string) {
    const calls: string[] = [];
    let made = 0;
    const activities = {
      async decoderBase({ plan }: { plan: DecoderBasePlan }) {
        calls.push(`decoderBase ${plan.registry}`);
        return ref('decoder-base/dir', ++made);
      },
      async trainerStep({ plan, inputs }: TrainerStepInput) {
        calls.push(`trainerStep ${plan.name} [${Object.keys(inputs).sort().join(',')}] ${JSON.stringify(plan.config)}`);
        return { model: ref('model/dir', ++made), metrics: {} };
      },
      async scoreModel() {
        return { exactMatch: 0.5, intentAccuracy: 0.5, slotF1: 0.5, count: 1 };
      },
    };
    const config = parsePipelineConfig(smallPipelineConfig('pretrained-decoder', input));
    // SUPERTINY_RECORD_HISTORY_DIR=dir saves the run's history there under its fixture's name (how the fixtures were made).
    const recordTo = process.env.SUPERTINY_RECORD_HISTORY_DIR && path.join(process.env.SUPERTINY_RECORD_HISTORY_DIR, fixture);
    const result = (await executeOnScriptedWorkers(server, 'transferStage', [{ config, prototype }], activities, recordTo)) as TransferResult;
    return { config, calls, result };
  }

  test('a registry base is fetched and converted once, the student initialised from it, no tokenizer trained', async () => {
    const { config, calls, result } = await transfer({ transfer: { student: { base: 'smollm2-135m' }, steps: ['sft'], maxSteps: 2 } }, 'transfer-history-decoder-base.json');
    expect(calls).toEqual(['decoderBase smollm2-135m', `trainerStep initStudent [base] {"seed":${config.transfer.seed}}`, expect.stringMatching(/^trainerStep trainStudent-sft \[data,model\] /)]);
    expect(result.tokenizer).toBeUndefined();
    expect(result.steps.map((s) => s.step)).toEqual(['sft']);
  }, 120_000);

  test("transfer-history-decoder-base.json, recorded on the registry base's path, replays: decoderBase, then init and sft as trainerStep", async () => {
    // Recorded with the workflows of a249ffc by this file's first test, with SUPERTINY_RECORD_HISTORY_DIR.
    expect(await replayFixture('transfer-history-decoder-base.json')).toEqual(['decoderBase', 'trainerStep', 'trainerStep', 'scoreModel']);
  }, 60_000);
});
