// The transfer stage of a decoder that starts from a pretrained model, on scripted activities: a registry base
// (decoderBase once, the student initialised from its folder) or a baseModelPath folder (init from the folder);
// neither trains a tokenizer. The recorded histories of both paths replay, and one from before a folder's
// tokenizer was dropped.
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ArtifactRef } from '../artifacts/ref';
import type { PrototypeResult, TransferResult } from '../activities/types';
import type { TrainerStepInput } from '../activities/trainer/trainer-step';
import { parsePipelineConfig, type PipelineConfigInput } from '../config/pipeline';
import { pipelinePlan, type DecoderBasePlan } from '../config/plan';
import { executeOnScriptedWorkers, replayFixture, startTestServer } from './support/temporal';
import { smallPipelineConfig } from './support/pipeline-config';

const ref = (kind: string, n: number): ArtifactRef => ({ uri: `file:///nowhere/blobs/sha256/00/${String(n).padStart(64, '0')}`, sha256: String(n).padStart(64, '0'), bytes: 0, kind });

describe("a decoder's tokenizer in the plan", () => {
  const tokenizerOf = (input: PipelineConfigInput) => {
    const { transfer } = pipelinePlan(parsePipelineConfig(input));
    if (transfer.family !== 'decoder') throw new Error('decoder plan expected');
    return transfer.tokenizer;
  };

  test('a student from its shape trains a tokenizer of its vocabSize; one from a baseModelPath folder trains none', () => {
    expect(tokenizerOf({ transfer: { student: { family: 'decoder', vocabSize: 1000 } } })).toEqual({ vocabSize: 1000 });
    expect(tokenizerOf({ transfer: { student: { family: 'decoder', baseModelPath: '/models/qwen' }, steps: ['sft', 'dpo', 'grpo'] } })).toBeNull();
  });

  test('with kd, a teacher from its shape still needs one (of the student vocabSize); a teacher from its own folder does not', () => {
    const student = { family: 'decoder', baseModelPath: '/models/qwen', vocabSize: 1000 } as const;
    expect(tokenizerOf({ transfer: { student, steps: ['sft', 'kd'] } })).toEqual({ vocabSize: 1000 });
    expect(tokenizerOf({ transfer: { student, steps: ['sft', 'kd'], kdTeacher: { baseModelPath: '/models/qwen-big' } } })).toBeNull();
  });
});

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

  test('a baseModelPath student is initialised from its folder, with no tokenizer trained', async () => {
    const { config, calls, result } = await transfer(
      { transfer: { student: { family: 'decoder', baseModelPath: '/models/qwen' }, steps: ['sft'], maxSteps: 2 } },
      'transfer-history-base-model-path.json',
    );
    expect(calls).toEqual([
      `trainerStep initStudent [] {"base_model":"/models/qwen","seed":${config.transfer.seed}}`,
      expect.stringMatching(/^trainerStep trainStudent-sft \[data,model\] /),
    ]);
    expect(result.tokenizer).toBeUndefined();
  }, 120_000);

  // Recorded by this file's two tests above with SUPERTINY_RECORD_HISTORY_DIR: the registry base's with the workflows
  // of a249ffc, the folder's with FOLDER_TOKENIZER_PATCH; the one from before it, by the folder's test at a249ffc
  // (whose calls then began with trainTokenizer).
  test.each([
    ['transfer-history-decoder-base.json', 'decoderBase, then init and sft', ['decoderBase', 'trainerStep', 'trainerStep', 'scoreModel']],
    ['transfer-history-base-model-path.json', 'init and sft', ['trainerStep', 'trainerStep', 'scoreModel']],
    ['transfer-history-base-model-path-before-no-tokenizer.json', 'the unread tokenizer, init and sft', ['trainerStep', 'trainerStep', 'trainerStep', 'scoreModel']],
  ])('%s replays: %s', async (file, _steps, scheduled) => {
    expect(await replayFixture(file)).toEqual(scheduled);
  }, 60_000);
});
