// How well each confidence ranks the student's errors: the cascade's teacher share at 1 point of the teacher's
// exact match on test, for the raw confidence, single signals, the calibration fitted on dev, and the oracle (a
// confidence that knows which answers are wrong). Needs a finished pipeline's report folder (for the teacher's test
// answers) and a student folder of either family (an encoder's signals or a decoder's token log-probabilities).
//   npx tsx scripts/bench-cascade.ts --model FOLDER [--model-file model.int4.onnx] --report REPORT_DIR [--out FILE.json]
//     [--task-dir DIR] [--peer FOLDER [--peer FOLDER2 ...]] [--peer-file model.int4.onnx] [--predictions FILE.jsonl]
// MASSIVE by default; --task-dir DIR takes a task from files (functions.json and data.jsonl, as the report's run had).
// --predictions writes the served student's test answers as a report's predictions file does (id, input, gold,
// prediction, correct), for scripts/analyze-errors.ts.
// --peer adds students trained apart (another seed or base) as a signal from outside the served student's forward
// pass: whether they give the same call. It prints how often they disagree and how often the served answer is
// wrong then, and adds two confidences: disagreements first (then the calibrated confidence), and a logistic
// regression over the calibration's signals plus the share of peers that agree, fitted on dev.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { readEnv } from '../config/env';
import { cascadeCurve } from '../activities/evaluate/cascade';
import { loadMassiveTask, massiveGoldCall } from '../tasks/massive';
import { loadTaskFromFiles } from '../tasks/from-files/task';
import { isExactMatch } from '../tasks/metrics';
import { type Call, printCall } from '../tasks/call-format';
import type { StudentTask } from '../runtime/student/student-runtime';
import { loadStudent } from '../runtime/student/load';
import type { EncoderPrediction } from '../runtime/student/encoder-model';
import type { StudentPrediction } from '../runtime/student/decoder-model';
import {
  CALIBRATION_FEATURES,
  calibratedConfidence,
  calibratedDecoderConfidence,
  DECODER_CALIBRATION_FEATURES,
  DECODER_SIGNAL_FEATURES,
  type DecoderSignals,
  type EncoderSignals,
  expectedCalibrationError,
  fitCalibration,
  fitDecoderCalibration,
  fitLogistic,
  logisticProbability,
  rawConfidence,
  rawDecoderConfidence,
  type Calibration,
} from '../runtime/student/confidence';

interface Example {
  id: string;
  input: string;
  gold: Call;
}

type Signals = EncoderSignals | DecoderSignals;

/** A family's confidences: the raw one, single signals, the calibration's features and fit. */
interface Family {
  features: (s: Signals) => number[];
  fit: (rows: { signals: Signals; correct: boolean }[]) => Calibration;
  calibrated: (c: Calibration, s: Signals) => number;
  singles: Record<string, (s: Signals) => number>;
  /** Where the deployed calibration reads fewer signals than the family has: all of them, for a logistic fit on dev. */
  allSignals?: (s: Signals) => number[];
}

const ENCODER: Family = {
  features: (s) => CALIBRATION_FEATURES.map(([, f]) => f(s as EncoderSignals)),
  fit: (rows) => fitCalibration(rows as { signals: EncoderSignals; correct: boolean }[], 'dev'),
  calibrated: (c, s) => calibratedConfidence(c, s as EncoderSignals),
  singles: {
    'raw (intent × least tag)': (s) => rawConfidence(s as EncoderSignals),
    'intent probability': (s) => (s as EncoderSignals).intentProbability,
    'least tag': (s) => (s as EncoderSignals).leastTag,
    'product of all tags × intent': (s) => {
      const e = s as EncoderSignals;
      return e.intentProbability * Math.exp(e.meanLogTag * e.tokens) * e.leastValue;
    },
  },
};

const DECODER: Family = {
  features: (s) => DECODER_CALIBRATION_FEATURES.map(([, f]) => f(s as DecoderSignals)),
  fit: (rows) => fitDecoderCalibration(rows as { signals: DecoderSignals; correct: boolean }[], 'dev'),
  calibrated: (c, s) => calibratedDecoderConfidence(c, s as DecoderSignals),
  singles: {
    'raw (geometric mean of the token probabilities)': (s) => rawDecoderConfidence(s as DecoderSignals),
    'least token probability': (s) => Math.exp((s as DecoderSignals).leastLogProb),
    'least chosen token probability': (s) => Math.exp((s as DecoderSignals).leastChosenLogProb),
    // A lead in logits, made a number in (0, 1) so that the cascade's thresholds can split it.
    'least chosen margin (as a sigmoid)': (s) => 1 / (1 + Math.exp(-(s as DecoderSignals).leastChosenMargin)),
  },
  allSignals: (s) => DECODER_SIGNAL_FEATURES.map(([, f]) => f(s as DecoderSignals)),
};

async function loadExamples(taskDir: string | undefined): Promise<{ task: StudentTask; dev: Example[]; test: Example[] }> {
  if (taskDir) {
    const task = await loadTaskFromFiles({ functions: path.join(taskDir, 'functions.json'), data: path.join(taskDir, 'data.jsonl') });
    const of = async (split: 'dev' | 'test') => (await task.dataset.load(split)).filter((e) => e.gold).map((e) => ({ id: e.id, input: e.input, gold: e.gold! }));
    return { task, dev: await of('dev'), test: await of('test') };
  }
  const { task, examples } = await loadMassiveTask({ massivePath: readEnv().massivePath });
  const of = (split: string) => examples.filter((e) => e.split === split).map((e) => ({ id: e.id, input: e.utterance, gold: massiveGoldCall(e) }));
  return { task, dev: of('dev'), test: of('test') };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      'model-file': { type: 'string' },
      report: { type: 'string' },
      'task-dir': { type: 'string' },
      out: { type: 'string' },
      peer: { type: 'string', multiple: true },
      'peer-file': { type: 'string' },
      predictions: { type: 'string' },
    },
  });
  if (!values.model || !values.report) throw new Error('usage: bench-cascade.ts --model FOLDER [--model-file FILE] --report REPORT_DIR [--task-dir DIR] [--out FILE]');
  const loaded = await loadExamples(values['task-dir']);
  const { task } = loaded;
  const teacherRows = (await fs.readFile(path.join(values.report, 'predictions-teacher.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { id: string; prediction: unknown; correct: boolean });
  const teacherById = new Map(teacherRows.map((r) => [r.id, r]));
  const dev = loaded.dev;
  const test = loaded.test.filter((e) => teacherById.has(e.id));
  if (test.length === 0) throw new Error(`${values.report}/predictions-teacher.jsonl answers none of the task's test examples (another task?)`);
  const student = await loadStudent(values.model, { task, ...(values['model-file'] ? { modelFile: values['model-file'] } : {}) });
  const family = student.family === 'encoder' ? ENCODER : DECODER;
  const started = Date.now();
  const predict = async (rows: Example[]) => {
    const out = (await student.predictBatch(
      rows.map((e) => e.input),
      { batchSize: 1 },
    )) as (EncoderPrediction | StudentPrediction)[];
    return rows.map((e, i) => ({ example: e, prediction: out[i], signals: out[i].signals as Signals | undefined, correct: out[i].call !== undefined && isExactMatch(e.gold, out[i].call) }));
  };
  const devRows = await predict(dev);
  const testRows = await predict(test);
  await student.release();
  process.stderr.write(`predicted ${dev.length} dev and ${test.length} test inputs with the ${student.family} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  if (values.predictions) {
    const lines = testRows.map((r) =>
      JSON.stringify({
        id: r.example.id,
        input: r.example.input,
        gold: printCall(r.example.gold),
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
    const peer = await loadStudent(folder, { task, ...(values['peer-file'] ? { modelFile: values['peer-file'] } : {}) });
    for (const [rows, agree] of [
      [devRows, devAgree],
      [testRows, testAgree],
    ] as const) {
      const out = await peer.predictBatch(
        rows.map((r) => r.example.input),
        { batchSize: 1 },
      );
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

  const devScored = devRows.map((r, i) => ({ r, i, signals: r.signals! })).filter(({ r }) => r.prediction.call);
  const calibration = family.fit(devScored.map(({ r, signals }) => ({ signals, correct: r.correct })));
  const withAgreement = (s: Signals, agree: number) => [...family.features(s), agree];
  const agreementFit =
    peers.length > 0
      ? fitLogistic(
          devScored.map(({ signals, i }) => withAgreement(signals, devAgree[i])),
          devScored.map(({ r }) => r.correct),
        )
      : undefined;
  const allSignalsFit = family.allSignals
    ? fitLogistic(
        devScored.map(({ signals }) => family.allSignals!(signals)),
        devScored.map(({ r }) => r.correct),
      )
    : undefined;
  type Row = { signals: Signals; correct: boolean; agree: number };
  const candidates: Record<string, (row: Row) => number> = {
    ...Object.fromEntries(Object.entries(family.singles).map(([name, f]) => [name, ({ signals }: Row) => f(signals)])),
    'calibrated (logistic, dev)': ({ signals }) => family.calibrated(calibration, signals),
    ...(allSignalsFit ? { 'logistic over every signal (dev)': ({ signals }: Row) => logisticProbability(allSignalsFit, family.allSignals!(signals)) } : {}),
    ...(agreementFit
      ? {
          "peers' disagreements first, then calibrated": ({ signals, agree }: Row) => (agree + family.calibrated(calibration, signals)) / 2,
          'logistic over the signals and the peers\' agreement (dev)': ({ signals, agree }: Row) => logisticProbability(agreementFit, withAgreement(signals, agree)),
        }
      : {}),
    oracle: ({ correct }) => (correct ? 1 : 0),
  };
  const results = Object.entries(candidates).map(([name, confidenceOf]) => {
    const rowOf = (r: (typeof testRows)[number], i: number): Row => ({ signals: r.signals!, correct: r.correct, agree: testAgree[i] });
    const inputs = testRows.map((r, i) => ({
      gold: printCall(r.example.gold),
      student: { call: r.prediction.call, confidence: r.prediction.call ? confidenceOf(rowOf(r, i)) : 0 },
      teacher: { call: teacherById.get(r.example.id)!.correct ? r.example.gold : undefined },
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
    `student exact match ${(studentExact * 100).toFixed(1)}% (dev ${(devExact * 100).toFixed(2)}%), teacher ${(teacherExact * 100).toFixed(1)}% on ${test.length} test inputs\n`,
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
