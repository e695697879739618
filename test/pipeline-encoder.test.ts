// The encoder student (pretrained MiniLM with intent and tag heads) through the whole pipeline on a real
// Temporal dev server: teacher labels with votes, encoder training, ONNX export, vocabulary and layer pruning, int8 and int4
// behind the gate, evaluation of every model through the one runtime interface.
import { promises as fs } from 'node:fs';
import { startPipeline } from '../client';
import { loadStudent } from '../runtime/student';
import { loadMassiveTask } from '../tasks/massive';
import { loadTokenizerFiles } from '../runtime/student/tokenizer';
import { withWorkers } from './support/temporal';
import { usePipelineBed } from './support/pipeline-bed';
import { smallPipelineConfig } from './support/pipeline-config';

describe('encoder student pipeline', () => {
  const bed = usePipelineBed('pipeline-encoder');

  test('runs end to end: every model scored, the pruned int8 and int4 students answer schema-valid calls in TypeScript', async () => {
    const config = smallPipelineConfig('encoder-run', {
      task: { trainLimit: 160, devLimit: 60, testLimit: 60 },
      transfer: { steps: ['sft'], student: { family: 'encoder', maxLength: 48 }, epochs: 1, maxSteps: 40, batchSize: 16, checkpointEvery: 10 },
      // Every step kept whatever 40 steps of training give, so the quantized models checked below are pruned.
      compress: { steps: ['prune-vocab', 'prune-layers', 'int8', 'int4'], toleranceExactMatch: 100, pruneLayersKeep: 4, pruneLayersEpochs: 1 },
    });
    const handle = await startPipeline(bed.server.client, config, { taskQueue: bed.taskQueue });
    const result = await withWorkers(bed.workers, () => handle.result());
    expect(result.status).toBe('completed');
    expect(result.transfer!.tokenizer).toBeUndefined();
    expect(result.transfer!.steps.map((s) => s.step)).toEqual(['sft']);
    expect(result.transfer!.steps[0].metrics.dev_intent_accuracy).toBeGreaterThan(0);

    const report = JSON.parse(await fs.readFile(result.evaluate!.reportPath, 'utf8'));
    expect(Object.keys(report.models).sort()).toEqual(['student', 'student_int4', 'student_int8', 'student_onnx', 'teacher']);
    for (const name of ['student', 'student_onnx', 'student_int8', 'student_int4']) {
      expect(report.models[name].schema_valid).toBe(1); // valid by construction
      expect(report.models[name].intent_acc).toBeGreaterThan(0.1); // far above chance over 60 intents after 40 steps
    }
    // PyTorch and ONNX fp32 are one model: the same answers within a rounding of a near-tie or two.
    expect(Math.abs(report.models.student.exact_match - report.models.student_onnx.exact_match)).toBeLessThanOrEqual(2 / 60);

    const gates = result.compress!.gates;
    expect(gates.map((g) => [g.step, g.kept])).toEqual([['prune-vocab', true], ['prune-layers', true], ['int8', true], ['int4', true]]);
    expect(typeof gates[0].exactMatchUncompressed).toBe('number');
    expect(gates[1].exactMatchUncompressed).toBe(gates[0].exactMatchUncompressed); // one reference for every step
    expect(gates[0].bytesAfter!).toBeLessThan(gates[0].bytesBefore! * 0.7); // the word embeddings were about half
    // 2 of 6 layers gone: about a third of the layers' weights (the embeddings stay).
    expect(gates[1].bytesBefore).toBe(gates[0].bytesAfter);
    expect(gates[1].bytesAfter!).toBeLessThan(gates[1].bytesBefore! * 0.85);
    expect(gates[2].bytesBefore).toBe(gates[1].bytesAfter);
    expect(gates[2].bytesAfter!).toBeLessThan(gates[2].bytesBefore! * 0.4);
    expect(gates[3].bytesBefore).toBe(gates[2].bytesAfter);
    expect(gates[3].bytesAfter!).toBeLessThan(gates[3].bytesBefore! * 0.85); // 4-bit feed-forward and embeddings
    expect(result.compress!.chosen.sha256).toBe(result.compress!.int4!.sha256);
    // The deployed folder: the chosen int4 model with its confidence calibrated on dev, copied beside the report.
    const deployed = result.compress!.deployed!;
    expect(deployed.calibration?.examples).toBeGreaterThan(20);
    const served = result.evaluate!.studentPath!;
    expect(served).toBe(result.evaluate!.reportPath.replace(/report\.json$/, 'student'));
    const chosenFiles = (await bed.store.readJson<{ files: { path: string; sha256: string }[] }>(result.compress!.chosen)).files;
    const deployedFiles = (await bed.store.readJson<{ files: { path: string; sha256: string }[] }>(deployed.model)).files;
    expect(deployedFiles.filter((f) => f.path !== 'calibration.json')).toEqual(chosenFiles);
    expect(JSON.parse(await fs.readFile(`${served}/calibration.json`, 'utf8')).format).toBe('supertiny-calibration/1');
    expect(report.cascade.candidates.map((c: { name: string }) => c.name)).toEqual(['calibrated on dev (served)', 'raw: intent × least tag', 'oracle']);
    expect(report.cascade.calibration.examples).toBe(deployed.calibration!.examples);
    const oracle = report.cascade.candidates[2];
    for (const c of report.cascade.candidates) {
      expect(c.by_share).toHaveLength(21);
      // No confidence ranks errors better than one that knows them.
      if (c.chosen && oracle.chosen) expect(c.chosen.teacher_share).toBeGreaterThanOrEqual(oracle.chosen.teacher_share);
    }

    const folder = await bed.store.materializeDirectory(result.compress!.int8!, `${bed.env.dataDir}/int8-check`);
    const unpruned = await bed.store.materializeDirectory(result.compress!.onnx, `${bed.env.dataDir}/onnx-check`);
    const labels = JSON.parse(await fs.readFile(`${folder}/supertiny.json`, 'utf8'));
    expect(labels.vocab_pruned_from).toBe(30522);
    const pruned = (await loadTokenizerFiles(folder)).tokenizer;
    const original = (await loadTokenizerFiles(unpruned)).tokenizer;
    expect(pruned.get_vocab().size).toBeLessThan(5000);
    expect(original.get_vocab().size).toBe(30522);
    // A training utterance keeps its pieces (new ids); an unseen word is spelled in smaller pieces, not [UNK].
    const sft = await bed.store.materializeFile(result.prototype!.sft, `${bed.env.dataDir}/sft-check.jsonl`);
    const firstRow = JSON.parse((await fs.readFile(sft, 'utf8')).split('\n')[0]) as { messages: { role: string; content: string }[] };
    const seen = firstRow.messages.find((m) => m.role === 'user')!.content;
    expect(pruned.encode(seen).tokens).toEqual(original.encode(seen).tokens);
    expect(pruned.encode(seen).ids).not.toEqual(original.encode(seen).ids);
    const unseen = pruned.encode('antidisestablishmentarianism quizzically').tokens;
    expect(unseen).not.toContain('[UNK]');
    expect(unseen.length).toBeGreaterThan(original.encode('antidisestablishmentarianism quizzically').tokens.length);
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
    const int4 = await loadStudent(await bed.store.materializeDirectory(result.compress!.int4!, `${bed.env.dataDir}/int4-check`), { task });
    try {
      const answer = await int4.predict('wake me up at five am tomorrow');
      expect(answer.call).toBeDefined();
      expect(task.validateCall(answer.call!).ok).toBe(true);
    } finally {
      await int4.release();
    }
  }, 900_000);

  test("the paper's recipe on a 12-layer registry base: bge-small trained, pruned to 6 layers and distilled, then int8; the report names the base", async () => {
    const config = smallPipelineConfig('encoder-bge', {
      task: { trainLimit: 96, devLimit: 40, testLimit: 40 },
      transfer: { steps: ['sft'], student: { family: 'encoder', base: 'bge-small', maxLength: 32 }, epochs: 1, maxSteps: 8, batchSize: 16, checkpointEvery: 4 },
      compress: { steps: ['prune-layers', 'int8'], toleranceExactMatch: 100, pruneLayersKeep: 6, pruneLayersEpochs: 1 },
    });
    const handle = await startPipeline(bed.server.client, config, { taskQueue: bed.taskQueue });
    const result = await withWorkers(bed.workers, () => handle.result());
    expect(result.status).toBe('completed');
    const report = JSON.parse(await fs.readFile(result.evaluate!.reportPath, 'utf8'));
    expect(report.student_base).toEqual(expect.objectContaining({ name: 'bge-small', title: 'BAAI/bge-small-en-v1.5', license: 'MIT' }));
    expect(await fs.readFile(result.evaluate!.reportPath.replace(/report\.json$/, 'report.html'), 'utf8')).toContain('Student base <strong>bge-small</strong>');
    // 12 layers in the trained model, 6 after prune-layers: the layers' weights are about halved.
    const trained = await bed.store.materializeDirectory(result.transfer!.steps[0].model, `${bed.env.dataDir}/bge-trained`);
    expect(JSON.parse(await fs.readFile(`${trained}/config.json`, 'utf8')).num_hidden_layers).toBe(12);
    const gates = result.compress!.gates;
    expect(gates.map((g) => [g.step, g.kept])).toEqual([['prune-layers', true], ['int8', true]]);
    expect(gates[0].bytesAfter!).toBeLessThan(gates[0].bytesBefore! * 0.75);
    expect(report.models.student_int8.schema_valid).toBe(1); // scored through the TypeScript runtime (8 steps teach it little)
  }, 900_000);
});
