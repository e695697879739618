// How well each confidence ranks the student's errors on MASSIVE: the cascade's teacher share at 1 point of
// the teacher's exact match on test, for the raw confidence, single signals, the calibration fitted on dev,
// and the oracle (a confidence that knows which answers are wrong). Needs a finished pipeline's report folder
// (for the teacher's test answers) and a student folder.
//   npx tsx scripts/bench-cascade.ts --model FOLDER [--model-file model.int4.onnx] --report REPORT_DIR [--out FILE.json]
//     [--peer FOLDER [--peer FOLDER2 ...]] [--peer-file model.int4.onnx] [--predictions FILE.jsonl]
// --predictions writes the served student's test answers as a report's predictions file does (id, input, gold,
// prediction, correct), for scripts/analyze-errors.ts.
// --peer adds students trained apart (another seed or base) as a signal from outside the served student's forward
// pass: whether they give the same call. It prints how often they disagree and how often the served answer is
// wrong then, and adds two confidences: disagreements first (then the calibrated confidence), and a logistic
// regression over the 11 signals plus the share of peers that agree, fitted on dev.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { readEnv } from '../config/env';
import { cascadeCurve } from '../activities/evaluate/cascade';
import { loadMassiveTask, massiveGoldCall } from '../tasks/massive';
import { isExactMatch } from '../tasks/metrics';
import { printCall } from '../tasks/call-format';
import { EncoderStudent, type EncoderPrediction } from '../runtime/student/encoder-model';
import { calibratedConfidence, expectedCalibrationError, featureVector, fitCalibration, fitLogistic, logisticProbability, rawConfidence, type EncoderSignals } from '../runtime/student/confidence';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      'model-file': { type: 'string' },
      report: { type: 'string' },
      out: { type: 'string' },
      peer: { type: 'string', multiple: true },
      'peer-file': { type: 'string' },
      predictions: { type: 'string' },
    },
  });
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
  if (values.predictions) {
    const lines = testRows.map((r) =>
      JSON.stringify({
        id: r.example.id,
        input: r.example.utterance,
        gold: printCall(massiveGoldCall(r.example)),
        prediction: r.prediction.call ? printCall(r.prediction.call) : null,
        correct: r.correct,
      }),
    );
    await fs.writeFile(values.predictions, lines.join('\n') + '\n');
  }

  // Each peer's answers, as printed calls; a row's agreement is the share of peers that give the served call.
  const peers = values.peer ?? [];
  const devAgree = new Array<number>(dev.length).fill(0);
  const testAgree = new Array<number>(test.length).fill(0);
  for (const folder of peers) {
    const peer = await EncoderStudent.load(folder, { task, ...(values['peer-file'] ? { modelFile: values['peer-file'] } : {}) });
    for (const [rows, agree] of [
      [devRows, devAgree],
      [testRows, testAgree],
    ] as const) {
      const out = (await peer.predictBatch(rows.map((r) => r.example.utterance), { batchSize: 1 })) as EncoderPrediction[];
      rows.forEach((r, i) => {
        const same = r.prediction.call !== undefined && out[i].call !== undefined && printCall(out[i].call!) === printCall(r.prediction.call);
        if (same) agree[i] += 1 / peers.length;
      });
    }
    await peer.release();
  }
  if (peers.length > 0) {
    const split = testRows.filter((_, i) => testAgree[i] < 1);
    process.stdout.write(
      `${peers.length} peer(s): they disagree with the served answer on ${split.length} of ${testRows.length} test utterances` +
        ` (${((split.length / testRows.length) * 100).toFixed(1)}%); the served answer is wrong on ${split.filter((r) => !r.correct).length} of them,` +
        ` and on ${testRows.filter((r, i) => testAgree[i] === 1 && !r.correct).length} of the ${testRows.length - split.length} where all agree\n`,
    );
  }

  const calibration = fitCalibration(
    devRows.filter((r) => r.prediction.call).map((r) => ({ signals: r.prediction.signals, correct: r.correct })),
    'dev',
  );
  const withAgreement = (s: EncoderSignals, agree: number) => [...featureVector(s), agree];
  const devScored = devRows.map((r, i) => ({ r, i })).filter(({ r }) => r.prediction.call);
  const agreementFit =
    peers.length > 0
      ? fitLogistic(
          devScored.map(({ r, i }) => withAgreement(r.prediction.signals, devAgree[i])),
          devScored.map(({ r }) => r.correct),
        )
      : undefined;
  const product = (s: EncoderSignals) => s.intentProbability * Math.exp(s.meanLogTag * s.tokens) * s.leastValue;
  type Row = { signals: EncoderSignals; correct: boolean; agree: number };
  const candidates: Record<string, (row: Row) => number> = {
    'raw (intent × least tag)': ({ signals }) => rawConfidence(signals),
    'intent probability': ({ signals }) => signals.intentProbability,
    'least tag': ({ signals }) => signals.leastTag,
    'product of all tags × intent': ({ signals }) => product(signals),
    'calibrated (logistic, dev)': ({ signals }) => calibratedConfidence(calibration, signals),
    ...(agreementFit
      ? {
          "peers' disagreements first, then calibrated": ({ signals, agree }: Row) => (agree + calibratedConfidence(calibration, signals)) / 2,
          'logistic over the signals and the peers\' agreement (dev)': ({ signals, agree }: Row) => logisticProbability(agreementFit, withAgreement(signals, agree)),
        }
      : {}),
    oracle: ({ correct }) => (correct ? 1 : 0),
  };
  const results = Object.entries(candidates).map(([name, confidenceOf]) => {
    const rowOf = (r: (typeof testRows)[number], i: number): Row => ({ signals: r.prediction.signals, correct: r.correct, agree: testAgree[i] });
    const inputs = testRows.map((r, i) => ({
      gold: printCall(massiveGoldCall(r.example)),
      student: { call: r.prediction.call, confidence: r.prediction.call ? confidenceOf(rowOf(r, i)) : 0 },
      teacher: { call: teacherById.get(r.example.id)!.correct ? massiveGoldCall(r.example) : undefined },
    }));
    const curve = cascadeCurve(name, inputs, 0.01);
    const ece = expectedCalibrationError(
      testRows.flatMap((r, i) => (r.prediction.call ? [{ confidence: confidenceOf(rowOf(r, i)), correct: r.correct }] : [])),
    );
    return { name, share_at_1pt: curve.chosen?.teacher_share ?? null, exact_match_at_1pt: curve.chosen?.exact_match ?? null, threshold: curve.chosen?.threshold ?? null, ece_test: ece, points: curve.points };
  });
  const studentExact = testRows.filter((r) => r.correct).length / testRows.length;
  const teacherExact = test.filter((e) => teacherById.get(e.id)!.correct).length / test.length;
  const devExact = devRows.filter((r) => r.correct).length / devRows.length;
  process.stdout.write(
    `student exact match ${(studentExact * 100).toFixed(1)}% (dev ${(devExact * 100).toFixed(2)}%), teacher ${(teacherExact * 100).toFixed(1)}% on ${test.length} test utterances\n`,
  );
  process.stdout.write(`| confidence | teacher share at 1 point | exact match there | ECE (test) |\n|---|---|---|---|\n`);
  for (const r of results) {
    process.stdout.write(`| ${r.name} | ${r.share_at_1pt === null ? '–' : (r.share_at_1pt * 100).toFixed(1) + '%'} | ${r.exact_match_at_1pt === null ? '–' : (r.exact_match_at_1pt * 100).toFixed(1) + '%'} | ${r.ece_test.toFixed(3)} |\n`);
  }
  process.stdout.write(`calibration weights: ${calibration.features.map((f, i) => `${f} ${calibration.weights[i].toFixed(2)}`).join(', ')}\n`);
  if (values.out) await fs.writeFile(values.out, JSON.stringify({ studentExact, devExact, teacherExact, calibration, results }, null, 2));
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
