// How well each confidence ranks the student's errors on MASSIVE: the cascade's teacher share at 1 point of
// the teacher's exact match on test, for the raw confidence, single signals, the calibration fitted on dev,
// and the oracle (a confidence that knows which answers are wrong). Needs a finished pipeline's report folder
// (for the teacher's test answers) and a student folder.
//   npx tsx scripts/bench-cascade.ts --model FOLDER [--model-file model.int4.onnx] --report REPORT_DIR [--out FILE.json]
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { readEnv } from '../config/env';
import { cascadeCurve } from '../activities/evaluate/cascade';
import { loadMassiveTask, massiveGoldCall } from '../tasks/massive';
import { isExactMatch } from '../tasks/metrics';
import { printCall } from '../tasks/call-format';
import { EncoderStudent, type EncoderPrediction } from '../runtime/student/encoder-model';
import { calibratedConfidence, expectedCalibrationError, fitCalibration, rawConfidence, type EncoderSignals } from '../runtime/student/confidence';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { model: { type: 'string' }, 'model-file': { type: 'string' }, report: { type: 'string' }, out: { type: 'string' } } });
  if (!values.model || !values.report) throw new Error('usage: bench-cascade.ts --model FOLDER [--model-file FILE] --report REPORT_DIR [--out FILE]');
  const env = readEnv();
  const { task, examples } = await loadMassiveTask({ massivePath: env.massivePath });
  const teacherRows = (await fs.readFile(path.join(values.report, 'predictions-teacher.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { id: string; prediction: unknown; correct: boolean });
  const teacherById = new Map(teacherRows.map((r) => [r.id, r]));
  const dev = examples.filter((e) => e.split === 'dev');
  const test = examples.filter((e) => e.split === 'test' && teacherById.has(e.id));
  const student = await EncoderStudent.load(values.model, { task, ...(values['model-file'] ? { modelFile: values['model-file'] } : {}) });
  const started = Date.now();
  const predict = async (rows: typeof dev) => {
    const out = (await student.predictBatch(rows.map((e) => e.utterance), { batchSize: 1 })) as EncoderPrediction[];
    return rows.map((e, i) => ({ example: e, prediction: out[i], correct: out[i].call !== undefined && isExactMatch(massiveGoldCall(e), out[i].call) }));
  };
  const devRows = await predict(dev);
  const testRows = await predict(test);
  await student.release();
  process.stderr.write(`predicted ${dev.length} dev and ${test.length} test utterances in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);

  const calibration = fitCalibration(
    devRows.filter((r) => r.prediction.call).map((r) => ({ signals: r.prediction.signals, correct: r.correct })),
    'dev',
  );
  const product = (s: EncoderSignals) => s.intentProbability * Math.exp(s.meanLogTag * s.tokens) * s.leastValue;
  const candidates: Record<string, (s: EncoderSignals, correct: boolean) => number> = {
    'raw (intent × least tag)': (s) => rawConfidence(s),
    'intent probability': (s) => s.intentProbability,
    'least tag': (s) => s.leastTag,
    'product of all tags × intent': (s) => product(s),
    'calibrated (logistic, dev)': (s) => calibratedConfidence(calibration, s),
    oracle: (_s, correct) => (correct ? 1 : 0),
  };
  const results = Object.entries(candidates).map(([name, confidenceOf]) => {
    const inputs = testRows.map((r) => ({
      gold: printCall(massiveGoldCall(r.example)),
      student: { call: r.prediction.call, confidence: r.prediction.call ? confidenceOf(r.prediction.signals, r.correct) : 0 },
      teacher: { call: teacherById.get(r.example.id)!.correct ? massiveGoldCall(r.example) : undefined },
    }));
    const curve = cascadeCurve(name, inputs, 0.01);
    const ece = expectedCalibrationError(testRows.filter((r) => r.prediction.call).map((r) => ({ confidence: confidenceOf(r.prediction.signals, r.correct), correct: r.correct })));
    return { name, share_at_1pt: curve.chosen?.teacher_share ?? null, exact_match_at_1pt: curve.chosen?.exact_match ?? null, threshold: curve.chosen?.threshold ?? null, ece_test: ece, points: curve.points };
  });
  const studentExact = testRows.filter((r) => r.correct).length / testRows.length;
  const teacherExact = test.filter((e) => teacherById.get(e.id)!.correct).length / test.length;
  process.stdout.write(`student exact match ${(studentExact * 100).toFixed(1)}%, teacher ${(teacherExact * 100).toFixed(1)}% on ${test.length} test utterances\n`);
  process.stdout.write(`| confidence | teacher share at 1 point | exact match there | ECE (test) |\n|---|---|---|---|\n`);
  for (const r of results) {
    process.stdout.write(`| ${r.name} | ${r.share_at_1pt === null ? '–' : (r.share_at_1pt * 100).toFixed(1) + '%'} | ${r.exact_match_at_1pt === null ? '–' : (r.exact_match_at_1pt * 100).toFixed(1) + '%'} | ${r.ece_test.toFixed(3)} |\n`);
  }
  process.stdout.write(`calibration weights: ${calibration.features.map((f, i) => `${f} ${calibration.weights[i].toFixed(2)}`).join(', ')}\n`);
  if (values.out) await fs.writeFile(values.out, JSON.stringify({ studentExact, teacherExact, calibration, results }, null, 2));
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
