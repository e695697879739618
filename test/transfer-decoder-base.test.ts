// The transfer stage with a registry decoder base, on scripted activities: decoderBase once, the student
// initialised from its folder (trainerStep's init with the base as input), no tokenizer trained, then the steps.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ArtifactRef } from '../artifacts/ref';
import type { PrototypeResult, TransferResult } from '../activities/types';
import type { TrainerStepInput } from '../activities/trainer/trainer-step';
import { parsePipelineConfig } from '../config/pipeline';
import type { DecoderBasePlan } from '../config/plan';
import { executeOnScriptedWorkers, startTestServer } from './support/temporal';
import { smallPipelineConfig } from './support/pipeline-config';

const ref = (kind: string, n: number): ArtifactRef => ({ uri: `file:///nowhere/blobs/sha256/00/${String(n).padStart(64, '0')}`, sha256: String(n).padStart(64, '0'), bytes: 0, kind });

describe('transferStage with transfer.student.base', () => {
  let server: TestWorkflowEnvironment;

  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await server?.teardown();
  });

  test('fetches and converts the base once, initialises the student from it, trains no tokenizer', async () => {
    const calls: string[] = [];
    let made = 0;
    const activities = {
      async decoderBase({ plan }: { plan: DecoderBasePlan }) {
        calls.push(`decoderBase ${plan.registry}`);
        return ref('decoder-base/dir', ++made);
      },
      async trainerStep({ plan, inputs }: TrainerStepInput) {
        calls.push(`trainerStep ${plan.name} ${Object.keys(inputs).sort().join(',')} ${JSON.stringify(plan.config)}`);
        return { model: ref('model/dir', ++made), metrics: {} };
      },
      async scoreModel() {
        return { exactMatch: 0.5, intentAccuracy: 0.5, slotF1: 0.5, count: 1 };
      },
    };
    const config = parsePipelineConfig(smallPipelineConfig('decoder-base', { transfer: { student: { base: 'smollm2-135m' }, steps: ['sft'], maxSteps: 2 } }));
    const data = ref('jsonl', 900);
    const prototype = { data: { train: data, dev: data, test: data, counts: { train: 1, dev: 1, test: 1 } }, sft: data, preferences: data, rejected: data, stats: data, summary: {} } as PrototypeResult;
    const result = (await executeOnScriptedWorkers(server, 'transferStage', [{ config, prototype }], activities)) as TransferResult;
    expect(calls).toEqual(['decoderBase smollm2-135m', `trainerStep initStudent base {"seed":${config.transfer.seed}}`, expect.stringMatching(/^trainerStep trainStudent-sft data,model /)]);
    expect(result.tokenizer).toBeUndefined();
    expect(result.steps.map((s) => s.step)).toEqual(['sft']);
  }, 120_000);
});
