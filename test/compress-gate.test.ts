// The compress stage's gate with scripted activities: every step is compared with the uncompressed ONNX
// model (two small losses that add up past the tolerance roll the second step back), prune-vocab runs on the
// PyTorch folder before its own export, and the decoder's compress path schedules what it always did.
import { createHash } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ArtifactRef } from '../artifacts/ref';
import { parsePipelineConfig, type PipelineConfigInput, type Quantization } from '../config/pipeline';
import type { CompressResult } from '../activities/types';
import type { TrainerStepInput } from '../activities/trainer/trainer-step';
import { executeOnScriptedWorkers, replayFixture, startTestServer } from './support/temporal';

// Scripted artifacts are named by a label (e.g. "int8(onnx(student))"), which their sha256 maps back to.
const labels = new Map<string, string>();
const ref = (name: string, bytes: number): ArtifactRef => {
  const sha256 = createHash('sha256').update(name).digest('hex');
  labels.set(sha256, name);
  return { uri: `file:///store/blobs/sha256/${sha256.slice(0, 2)}/${sha256}`, bytes, kind: 'test/dir', sha256 };
};
const label = (artifact: ArtifactRef) => labels.get(artifact.sha256) ?? artifact.sha256;

describe('compress gate', () => {
  let server: TestWorkflowEnvironment;

  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await server?.teardown();
  });

  /** Runs compressStage with activities whose dev exact match is `scores[label of the model]`; returns the calls made. */
  async function compress(input: PipelineConfigInput, scores: Record<string, number>): Promise<{ result: CompressResult; calls: string[] }> {
    const calls: string[] = [];
    const exportOnnx = (model: ArtifactRef) => {
      calls.push(`exportOnnx ${label(model)}`);
      return ref(`onnx(${label(model)})`, model.bytes);
    };
    const pruneVocab = (model: ArtifactRef, sft: ArtifactRef) => {
      calls.push(`pruneVocab ${label(model)} ${label(sft)}`);
      return ref(`pruned(${label(model)})`, Math.round(model.bytes * 0.55));
    };
    const pruneLayers = (model: ArtifactRef, sft: ArtifactRef) => {
      calls.push(`pruneLayers ${label(model)} ${label(sft)}`);
      return ref(`shallow(${label(model)})`, Math.round(model.bytes * 0.8));
    };
    const quantize = (scheme: Quantization, model: ArtifactRef) => {
      calls.push(`quantize ${scheme} ${label(model)}`);
      return ref(`${scheme}(${label(model)})`, Math.round(model.bytes / { int8: 4, int4: 6.4, 'int4-qat': 6.4 }[scheme]));
    };
    const qat = (model: ArtifactRef, sft: ArtifactRef, config: Record<string, unknown>) => {
      calls.push(`qat ${label(model)} ${label(sft)} ${JSON.stringify(config)}`);
      return ref(`qat(${label(model)})`, model.bytes);
    };
    const activities = {
      async trainerStep({ plan, inputs: { model, data } }: TrainerStepInput) {
        if (plan.name === 'exportOnnx') return { model: exportOnnx(model!), metrics: {} };
        if (plan.name === 'pruneVocab') return { model: pruneVocab(model!, data!), metrics: {} };
        if (plan.name === 'pruneLayers') return { model: pruneLayers(model!, data!), metrics: {} };
        if (plan.name.startsWith('qat-')) return { model: qat(model!, data!, plan.config), metrics: {} };
        return { model: quantize(plan.name.replace('quantize-', '') as Quantization, model!), metrics: {} };
      },
      // The last step calibrates the chosen model's confidence; its own tests are elsewhere (not in `calls`).
      async calibrateConfidence({ model }: { model: ArtifactRef }) {
        return { model, skipped: 'scripted' };
      },
      async scoreModel({ plan, model }: { plan: { runtime: string }; model: ArtifactRef }) {
        calls.push(`score ${plan.runtime} ${label(model)}`);
        if (!(label(model) in scores)) throw new Error(`no scripted score for ${label(model)}`);
        return { exactMatch: scores[label(model)], intentAccuracy: scores[label(model)], slotF1: scores[label(model)], schemaValidRate: 1, count: 100, modelBytes: model.bytes };
      },
    };
    const config = parsePipelineConfig(input);
    const prototype = {
      data: { train: ref('train', 1), dev: ref('dev', 1), test: ref('test', 1), counts: { train: 1, dev: 1, test: 1 } },
      ...Object.fromEntries(['sft', 'preferences', 'rejected', 'stats'].map((name) => [name, ref(name, 1)])),
      summary: {},
    };
    const transfer = { steps: [], student: ref('student', 90_000_000) };
    // SUPERTINY_RECORD_HISTORY=path saves the run's history (how test/fixtures/compress-history-before-quantize.json was made).
    const result = (await executeOnScriptedWorkers(server, 'compressStage', [{ config, prototype, transfer }], activities, process.env.SUPERTINY_RECORD_HISTORY)) as CompressResult;
    return { result, calls };
  }

  test('losses add up against the uncompressed model: 0.8 then 0.8 more rolls int8 back', async () => {
    const { result, calls } = await compress({ compress: { steps: ['prune-vocab', 'int8'], toleranceExactMatch: 1 } }, {
      'onnx(student)': 0.7,
      'onnx(pruned(student))': 0.692,
      'int8(onnx(pruned(student)))': 0.684,
    });
    expect(calls).toEqual([
      'exportOnnx student',
      'score onnx onnx(student)',
      'pruneVocab student sft',
      'exportOnnx pruned(student)',
      'score onnx onnx(pruned(student))',
      'quantize int8 onnx(pruned(student))',
      'score onnx int8(onnx(pruned(student)))',
    ]);
    expect(label(result.chosen)).toBe('onnx(pruned(student))');
    // The deployed folder is made from the chosen model, after every gate.
    expect(result.deployed).toEqual({ model: result.chosen, skipped: 'scripted' });
    expect(label(result.int8!)).toBe('int8(onnx(pruned(student)))');
    const [prune, int8] = result.gates;
    expect(prune).toMatchObject({ step: 'prune-vocab', kept: true, exactMatchUncompressed: 0.7, exactMatchBefore: 0.7, exactMatchAfter: 0.692, bytesBefore: 90_000_000, bytesAfter: 49_500_000 });
    expect(int8).toMatchObject({ step: 'int8', kept: false, exactMatchUncompressed: 0.7, exactMatchBefore: 0.692, exactMatchAfter: 0.684, bytesBefore: 49_500_000 });
    expect(int8.reason).toMatch(/^rolled back: lost 1\.60 points against the uncompressed model \(0\.80 by this step\)/);
  }, 120_000);

  test('a rolled-back prune-vocab leaves int8 to quantize the unpruned model', async () => {
    const { result, calls } = await compress({ compress: { steps: ['prune-vocab', 'int8'] } }, {
      'onnx(student)': 0.7,
      'onnx(pruned(student))': 0.68,
      'int8(onnx(student))': 0.699,
    });
    expect(calls.slice(-2)).toEqual(['quantize int8 onnx(student)', 'score onnx int8(onnx(student))']);
    expect(result.gates.map((g) => g.kept)).toEqual([false, true]);
    expect(label(result.chosen)).toBe('int8(onnx(student))');
  }, 120_000);

  test('int4 is an alternative to int8, both from the float graph: kept, it is chosen; rolled back, int8 stays', async () => {
    const steps = { compress: { steps: ['prune-vocab', 'int8', 'int4'] as ('prune-vocab' | 'int8' | 'int4')[] } };
    const kept = await compress(steps, {
      'onnx(student)': 0.7,
      'onnx(pruned(student))': 0.698,
      'int8(onnx(pruned(student)))': 0.696,
      'int4(onnx(pruned(student)))': 0.694,
    });
    expect(kept.calls.slice(-4)).toEqual([
      'quantize int8 onnx(pruned(student))',
      'score onnx int8(onnx(pruned(student)))',
      'quantize int4 onnx(pruned(student))',
      'score onnx int4(onnx(pruned(student)))',
    ]);
    expect(label(kept.result.chosen)).toBe('int4(onnx(pruned(student)))');
    expect(label(kept.result.int4!)).toBe('int4(onnx(pruned(student)))');
    expect(kept.result.gates[2]).toMatchObject({ step: 'int4', kept: true, bytesBefore: kept.result.gates[1].bytesAfter });

    const rolledBack = await compress(steps, {
      'onnx(student)': 0.7,
      'onnx(pruned(student))': 0.68, // prune-vocab rolled back: both schemes quantize the unpruned graph
      'int8(onnx(student))': 0.699,
      'int4(onnx(student))': 0.685,
    });
    expect(rolledBack.calls.slice(-2)).toEqual(['quantize int4 onnx(student)', 'score onnx int4(onnx(student))']);
    expect(rolledBack.result.gates.map((g) => g.kept)).toEqual([false, true, false]);
    expect(label(rolledBack.result.chosen)).toBe('int8(onnx(student))');
  }, 120_000);

  test('prune-layers distils a shallower folder from the chosen one, exports it, and quantization starts from it when kept', async () => {
    const { result, calls } = await compress({ compress: { steps: ['prune-vocab', 'prune-layers', 'int4'] } }, {
      'onnx(student)': 0.7,
      'onnx(pruned(student))': 0.699,
      'onnx(shallow(pruned(student)))': 0.695,
      'int4(onnx(shallow(pruned(student))))': 0.694,
    });
    expect(calls.slice(5)).toEqual([
      'pruneLayers pruned(student) sft',
      'exportOnnx shallow(pruned(student))',
      'score onnx onnx(shallow(pruned(student)))',
      'quantize int4 onnx(shallow(pruned(student)))',
      'score onnx int4(onnx(shallow(pruned(student))))',
    ]);
    expect(result.gates.map((g) => [g.step, g.kept])).toEqual([['prune-vocab', true], ['prune-layers', true], ['int4', true]]);
    expect(label(result.chosen)).toBe('int4(onnx(shallow(pruned(student))))');
  }, 120_000);

  test('int4-qat trains the chosen PyTorch folder into the 4-bit grid, exports it, quantizes it, and replaces int4 when its gate passes', async () => {
    const decoder = { transfer: { student: { base: 'smollm2-135m' as const } }, compress: { steps: ['prune-vocab', 'int8', 'int4', 'int4-qat'] as Quantization[] } };
    const scores = {
      'onnx(student)': 0.7,
      'onnx(pruned(student))': 0.699,
      'int8(onnx(pruned(student)))': 0.698,
      'int4(onnx(pruned(student)))': 0.68,
      'int4-qat(onnx(qat(pruned(student))))': 0.701,
    };
    const { result, calls } = await compress(decoder as PipelineConfigInput, scores);
    expect(calls.slice(-6)).toEqual([
      'quantize int4 onnx(pruned(student))',
      'score onnx int4(onnx(pruned(student)))',
      'qat pruned(student) sft {"epochs":1,"seed":1234}',
      'exportOnnx qat(pruned(student))',
      'quantize int4-qat onnx(qat(pruned(student)))',
      'score onnx int4-qat(onnx(qat(pruned(student))))',
    ]);
    expect(result.gates.map((g) => [g.step, g.kept])).toEqual([['prune-vocab', true], ['int8', true], ['int4', false], ['int4-qat', true]]);
    expect(label(result.chosen)).toBe('int4-qat(onnx(qat(pruned(student))))');
    expect(label(result['int4-qat']!)).toBe('int4-qat(onnx(qat(pruned(student))))');
    expect(result.gates[3]).toMatchObject({ bytesBefore: result.gates[1].bytesAfter, exactMatchUncompressed: 0.7 });

    // Rolled back, it leaves the model chosen before it; a prune-vocab rolled back leaves it the unpruned folder.
    const rolledBack = await compress({ ...decoder, compress: { steps: ['prune-vocab', 'int4-qat'], qatEpochs: 2 } } as PipelineConfigInput, {
      'onnx(student)': 0.7,
      'onnx(pruned(student))': 0.68,
      'int4-qat(onnx(qat(student)))': 0.68,
    });
    expect(rolledBack.calls.slice(-4)).toEqual(['qat student sft {"epochs":2,"seed":1234}', 'exportOnnx qat(student)', 'quantize int4-qat onnx(qat(student))', 'score onnx int4-qat(onnx(qat(student)))']);
    expect(label(rolledBack.result.chosen)).toBe('onnx(student)');
  }, 120_000);

  test("the decoder's compress path schedules the activities it always did, in the same order", async () => {
    const decoder = { transfer: { student: { hiddenSize: 64, heads: 2, kvHeads: 1 } } };
    const { result, calls } = await compress(decoder, { 'onnx(student)': 0.5, 'int8(onnx(student))': 0.5 });
    expect(calls).toEqual(['exportOnnx student', 'score onnx onnx(student)', 'quantize int8 onnx(student)', 'score onnx int8(onnx(student))']);
    expect(result.gates).toHaveLength(1);
    expect(label(result.chosen)).toBe('int8(onnx(student))');
  }, 120_000);

  test('a compress stage recorded before the one quantize activity replays: it still schedules quantizeInt8 and quantizeInt4', async () => {
    // Recorded with the workflows of df96b9d, from the int4 test above (prune-vocab, int8, int4 kept).
    expect(await replayFixture('compress-history-before-quantize.json')).toEqual(expect.arrayContaining(['quantizeInt8', 'quantizeInt4']));
  }, 60_000);
});
