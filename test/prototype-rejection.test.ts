import Ajv from 'ajv';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  applyJudge,
  buildPreferenceRows,
  buildRejectedRows,
  buildSftRows,
  buildStats,
  calibrateJudge,
  createJudge,
  createTeacherClient,
  judgeCalibrationItems,
  reviewAll,
  reviewSamples,
  TeacherResult,
  TeacherSample,
} from '../activities/prototype';
import { Call, printCall } from '../tasks/call-format';
import { loadMassiveTask, MassiveTask, massiveGoldCall } from '../tasks/massive';
import { RunningTeacherSimulator, startTeacherSimulator } from '../runtime/teacher-simulator';

let massive: MassiveTask;
let sim: RunningTeacherSimulator;
let tmp: string;
let results: TeacherResult[];
let goldById: Map<string, Call>;

beforeAll(async () => {
  massive = await loadMassiveTask();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'prototype-rejection-'));
  sim = await startTeacherSimulator({ seed: 21 });
  // 50 dev utterances, every 40th, so that many scenarios are covered
  const dev = massive.examples.filter((e) => e.split === 'dev').filter((_, i) => i % 40 === 0).slice(0, 50);
  goldById = new Map(dev.map((e) => [e.id, massiveGoldCall(e)]));
  const teacher = createTeacherClient(massive.task, { baseURL: sim.url, model: sim.model, cacheDir: path.join(tmp, 'teacher'), prices: { inputPerMillionTokens: 2.5, outputPerMillionTokens: 10 } });
  results = await teacher.labelAll(dev.map((e) => ({ id: e.id, text: e.utterance })), 5);
});
afterAll(async () => {
  await sim.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

function syntheticResult(text: string, calls: (Call | 'malformed')[]): TeacherResult {
  const offered = massive.schema.intentsByScenario.alarm;
  const samples: TeacherSample[] = calls.map((call, index) =>
    call === 'malformed'
      ? { index, outcome: 'malformed_arguments', error: 'not JSON', lastToolCall: { name: 'alarm_set', arguments: '{"time": "fi' }, toolSteps: [], offered, steps: 2 }
      : { index, outcome: 'ok', call, lastToolCall: { name: call.name, arguments: '{}' }, toolSteps: [], offered, steps: 2 },
  );
  return { id: 's', text, samples, usage: { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 } };
}

const call = (name: string, ...pairs: [string, string][]): Call => ({ name, args: pairs.map(([key, value]) => ({ key, value })) });

describe('rejection sampling decisions', () => {
  const text = 'wake me up at five am this week';
  const right = call('alarm_set', ['time', 'five am'], ['date', 'this week']);
  const rightReordered = call('alarm_set', ['date', 'this week'], ['time', 'five am']);
  const dropped = call('alarm_set', ['time', 'five am']);
  const paraphrased = call('alarm_set', ['time', '5 am'], ['date', 'this week']);

  test('votes count canonical forms, so slot order does not split the vote', () => {
    const d = reviewSamples(massive.task, syntheticResult(text, [right, rightReordered, right, right, dropped]), { voteThreshold: 0.8 });
    expect(d).toMatchObject({ accepted: true, reason: 'accepted', requiredVotes: 4 });
    expect(d.winner!.canonical).toBe(printCall(right));
    expect(d.votes).toEqual([
      { canonical: printCall(right), count: 4 },
      { canonical: printCall(dropped), count: 1 },
    ]);
  });

  test('below the vote threshold the input is rejected by vote, and a tie is never accepted', () => {
    expect(reviewSamples(massive.task, syntheticResult(text, [right, right, right, dropped, dropped]), { voteThreshold: 0.8 }).reason).toBe('vote');
    expect(reviewSamples(massive.task, syntheticResult(text, [right, right, right, dropped, dropped]), { voteThreshold: 0.6 }).accepted).toBe(true);
    expect(reviewSamples(massive.task, syntheticResult(text, [right, right, dropped, dropped]), { voteThreshold: 0.5 }).reason).toBe('vote');
  });

  test('the verifier keeps values that are not spans of the utterance out of the vote', () => {
    const d = reviewSamples(massive.task, syntheticResult(text, [paraphrased, paraphrased, paraphrased, right, right]), { voteThreshold: 0.4 });
    expect(d.winner!.canonical).toBe(printCall(right));
    expect(d.accepted).toBe(true);
    expect(d.samples.filter((s) => s.verified === false)).toHaveLength(3);
    const all = reviewSamples(massive.task, syntheticResult(text, [paraphrased, paraphrased, paraphrased, paraphrased, 'malformed']));
    expect(all.reason).toBe('verifier');
    const off = reviewSamples(massive.task, syntheticResult(text, [paraphrased, paraphrased, paraphrased, paraphrased, right]), { useVerifier: false });
    // values that are not spans go after those that are
    expect(off.winner!.canonical).toBe('alarm_set(date="this week", time="5 am")');
  });

  test('sft rows carry the vote shares of the valid samples, most voted first, with the winner as the label', () => {
    const d = reviewSamples(massive.task, syntheticResult(text, [right, dropped, rightReordered, right, 'malformed']), { voteThreshold: 0.6 });
    expect(d.accepted).toBe(true);
    const [row] = buildSftRows(massive.task, [d]);
    expect(row.votes).toEqual([
      { name: 'alarm_set', arguments: JSON.stringify({ time: 'five am', date: 'this week' }), share: 0.75 },
      { name: 'alarm_set', arguments: JSON.stringify({ time: 'five am' }), share: 0.25 },
    ]);
    const assistant = row.messages[2] as { tool_calls: { function: { name: string; arguments: string } }[] };
    expect({ name: row.votes[0].name, arguments: row.votes[0].arguments }).toEqual(assistant.tool_calls[0].function);
    const unanimous = buildSftRows(massive.task, [reviewSamples(massive.task, syntheticResult(text, [right, right, right]))]);
    expect(unanimous[0].votes).toEqual([{ name: 'alarm_set', arguments: JSON.stringify({ time: 'five am', date: 'this week' }), share: 1 }]);
  });

  test('schema-invalid calls and malformed output never vote', () => {
    const invalid = call('alarm_set', ['song_name', 'x']);
    const d = reviewSamples(massive.task, syntheticResult(text, [invalid, invalid, 'malformed', 'malformed', 'malformed']));
    expect(d.reason).toBe('no_valid_samples');
    expect(d.samples.map((s) => s.outcome)).toEqual(['invalid_arguments', 'invalid_arguments', 'malformed_arguments', 'malformed_arguments', 'malformed_arguments']);
  });
});

describe('rejection sampling on 50 dev utterances against the teacher simulator', () => {
  test('accepted labels are more accurate than single samples, and the stats add up', () => {
    const decisions = reviewAll(massive.task, results, { voteThreshold: 0.8 });
    const stats = buildStats({ results, decisions, goldById });
    expect(stats.inputs).toBe(50);
    expect(stats.samples.requested).toBe(250);
    expect(stats.samples.answered).toBe(250);
    const { outcomes } = stats.samples;
    expect(Object.values(outcomes).reduce((a, b) => a + b, 0)).toBe(250);
    expect(stats.samples.valid + stats.samples.rejectedByVerifier + stats.samples.malformed + stats.samples.rejectedBySchema).toBe(250);
    const d = stats.decisions;
    expect(d.accepted + d.rejectedByVote + d.rejectedByVerifier + d.rejectedByJudge + d.noValidSamples).toBe(50);
    expect(stats.acceptanceRate).toBeGreaterThan(0.6);
    const acc = stats.labelAccuracy!;
    expect(acc.singleSample.count).toBe(250);
    expect(acc.accepted.count).toBe(d.accepted);
    expect(acc.accepted.exactMatch).toBeGreaterThan(acc.singleSample.exactMatch);
    expect(acc.accepted.exactMatch).toBeGreaterThanOrEqual(0.9);
    expect(stats.costUsd.teacher).toBeCloseTo((stats.tokens.prompt * 2.5 + stats.tokens.completion * 10) / 1e6, 10);
    expect(stats.tokens.prompt).toBe(sim.stats().promptTokens);
  });

  test('sft.jsonl rows are OpenAI chat fine-tuning rows whose tool call validates against the offered tools', () => {
    const decisions = reviewAll(massive.task, results);
    const rows = buildSftRows(massive.task, decisions);
    expect(rows).toHaveLength(decisions.filter((d) => d.accepted).length);
    const ajv = new Ajv({ strict: false });
    for (const [i, row] of rows.entries()) {
      expect(row.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
      const assistant = row.messages[2] as { tool_calls: { type: string; function: { name: string; arguments: string } }[] };
      expect(assistant.tool_calls).toHaveLength(1);
      const fn = assistant.tool_calls[0].function;
      const tool = row.tools.find((t) => t.function.name === fn.name);
      expect(tool).toBeDefined();
      const validate = ajv.compile(tool!.function.parameters);
      expect(validate(JSON.parse(fn.arguments))).toBe(true);
      const accepted = decisions.filter((d) => d.accepted)[i];
      expect(massive.task.decodeToolCall(fn.name, fn.arguments, accepted.winner!.offered)).toEqual({ kind: 'call', call: accepted.winner!.call });
      expect(row.votes[0]).toEqual({ ...fn, share: accepted.winner!.votes / accepted.votes.reduce((n, v) => n + v.count, 0) });
      expect(row.votes.reduce((n, v) => n + v.share, 0)).toBeCloseTo(1, 12);
      expect(JSON.parse(JSON.stringify(row))).toEqual(row);
    }
  });

  test('preference rows prefer the winner over a different answer to the same prompt; rejected rows say why', () => {
    const decisions = reviewAll(massive.task, results, { voteThreshold: 0.6 });
    const prefs = buildPreferenceRows(massive.task, decisions, { maxPairsPerInput: 2 });
    expect(prefs.length).toBeGreaterThan(0);
    for (const p of prefs) {
      expect(p.input.messages.map((m) => m.role)).toEqual(['system', 'user']);
      expect(p.preferred_output).toHaveLength(1);
      expect(p.non_preferred_output).toHaveLength(1);
      expect(p.non_preferred_output[0].tool_calls[0].function).not.toEqual(p.preferred_output[0].tool_calls[0].function);
    }
    const rejected = buildRejectedRows(decisions);
    expect(rejected).toHaveLength(decisions.filter((d) => !d.accepted).length);
    for (const r of rejected) {
      expect(['vote', 'verifier', 'no_valid_samples']).toContain(r.reason);
      expect(r.samples).toHaveLength(5);
    }
  });

  test('the judge is calibrated on labelled samples before use, and skipped when its agreement is too low', async () => {
    const judge = createJudge(massive.task, { baseURL: sim.url, model: sim.model, cacheDir: path.join(tmp, 'judge'), prices: { inputPerMillionTokens: 1, outputPerMillionTokens: 1 } });
    const items = judgeCalibrationItems(massive.task, results.slice(0, 20), goldById);
    expect(items.some((i) => printCall(i.call) !== printCall(i.gold))).toBe(true);
    const calibration = await calibrateJudge(judge, items);
    expect(calibration.count).toBe(items.length);
    expect(calibration.agreement).toBeGreaterThan(0.7);
    expect(calibration.agreement).toBeLessThanOrEqual(1);
    expect(calibration.positives + calibration.negatives).toBe(items.length);

    const decisions = reviewAll(massive.task, results);
    const requestsBefore = judge.stats().httpRequests;
    const skipped = await applyJudge(decisions, judge, calibration, { minAgreement: 1.01 });
    expect(skipped.report.used).toBe(false);
    expect(judge.stats().httpRequests).toBe(requestsBefore);
    expect(skipped.decisions.map((d) => d.accepted)).toEqual(decisions.map((d) => d.accepted));

    const judged = await applyJudge(decisions, judge, calibration, { minAgreement: 0.5 });
    expect(judged.report.used).toBe(true);
    expect(judged.report.judged).toBe(decisions.filter((d) => d.accepted).length);
    const stats = buildStats({ results, decisions: judged.decisions, judge: { stats: judge.stats(), report: judged.report }, goldById });
    expect(stats.decisions.rejectedByJudge).toBe(judged.report.rejected);
    expect(stats.decisions.accepted).toBe(decisions.filter((d) => d.accepted).length - judged.report.rejected);
    expect(stats.costUsd.judge).toBeGreaterThan(0);
    expect(stats.costUsd.total).toBeCloseTo(stats.costUsd.teacher + stats.costUsd.judge, 12);
    expect(stats.labelAccuracy!.acceptedByVote.count).toBe(judged.report.judged);
  });
});
