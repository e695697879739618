// The encoder student (pretrained MiniLM with intent and tag heads) through the whole pipeline on a real
// Temporal dev server: teacher labels with votes, encoder training, ONNX export, int8 behind the gate,
// evaluation of every model through the one runtime interface.
import { promises as fs } from 'node:fs';
import { startPipeline } from '../client';
import { loadStudent } from '../runtime/student';
import { loadMassiveTask } from '../tasks/massive';
import { withWorkers } from './support/temporal';
import { usePipelineBed } from './support/pipeline-bed';
import { smallPipelineConfig } from './support/pipeline-config';

describe('encoder student pipeline', () => {
  const bed = usePipelineBed('pipeline-encoder');

  test('runs end to end: every model scored, the int8 student answers schema-valid calls in TypeScript', async () => {
    const config = smallPipelineConfig('encoder-run', {
      task: { trainLimit: 160, devLimit: 60, testLimit: 60 },
      transfer: { steps: ['sft'], student: { family: 'encoder', maxLength: 48 }, epochs: 1, maxSteps: 25, batchSize: 16, checkpointEvery: 10 },
    });
    const handle = await startPipeline(bed.server.client, config, { taskQueue: bed.taskQueue });
    const result = await withWorkers(bed.workers, () => handle.result());
    expect(result.status).toBe('completed');
    expect(result.transfer!.tokenizer).toBeUndefined();
    expect(result.transfer!.steps.map((s) => s.step)).toEqual(['sft']);
    expect(result.transfer!.steps[0].metrics.dev_intent_accuracy).toBeGreaterThan(0);

    const report = JSON.parse(await fs.readFile(result.evaluate!.reportPath, 'utf8'));
    expect(Object.keys(report.models).sort()).toEqual(['student', 'student_int8', 'student_onnx', 'teacher']);
    for (const name of ['student', 'student_onnx', 'student_int8']) {
      expect(report.models[name].schema_valid).toBe(1); // valid by construction
      expect(report.models[name].intent_acc).toBeGreaterThan(0.1); // far above chance over 60 intents after 25 steps
    }
    // PyTorch and ONNX fp32 are one model: the same answers within a rounding of a near-tie or two.
    expect(Math.abs(report.models.student.exact_match - report.models.student_onnx.exact_match)).toBeLessThanOrEqual(2 / 60);

    const folder = await bed.store.materializeDirectory(result.compress!.int8!, `${bed.env.dataDir}/int8-check`);
    const { task } = await loadMassiveTask({ massivePath: bed.env.massivePath });
    const student = await loadStudent(folder, { task });
    try {
      expect(student.family).toBe('encoder');
      const answer = await student.predict('wake me up at five am tomorrow');
      expect(answer.call).toBeDefined();
      expect(answer.confidence).toBeGreaterThan(0);
      expect(task.validateCall(answer.call!).ok).toBe(true);
    } finally {
      await student.release();
    }
  }, 900_000);
});
