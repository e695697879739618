// The report's cascade curve: which inputs go to the teacher at a threshold, the exact match of the mix,
// and the threshold that keeps exact match within a point of the teacher at the lowest teacher share.
import { cascadeCurve, renderCascadeHtml, type CascadeInput } from '../activities/evaluate/cascade';
import type { Call } from '../tasks/call-format';

const call = (name: string, args: [string, string][] = []): Call => ({ name, args: args.map(([key, value]) => ({ key, value })) });
const GOLD = 'alarm_set(time="five am")';
const right = call('alarm_set', [['time', 'five am']]);
const wrong = call('alarm_query');

/** `n` inputs of one kind: the student right or wrong at a confidence, the teacher right or wrong. */
function inputs(n: number, student: Call | undefined, confidence: number, teacher: Call | undefined): CascadeInput[] {
  return Array.from({ length: n }, () => ({ gold: GOLD, student: { call: student, confidence: student ? confidence : 0 }, teacher: { call: teacher } }));
}

describe('cascadeCurve', () => {
  // 100 inputs: 60 sure and right, 20 unsure and wrong, 10 unsure and right, 5 without a call; the teacher
  // is right on all but 3 of the sure ones.
  const data = [
    ...inputs(57, right, 0.95, right),
    ...inputs(3, right, 0.95, wrong),
    ...inputs(20, wrong, 0.3, right),
    ...inputs(10, right, 0.4, right),
    ...inputs(5, undefined, 0, right),
    ...inputs(5, wrong, 0.6, right),
  ];
  const report = cascadeCurve('student_int8', data);

  test('at threshold 0 only inputs without a call go to the teacher; at 1 all of them do', () => {
    expect(report.points[0]).toEqual({ threshold: 0, teacher_share: 0.05, exact_match: 0.75 });
    expect(report.points[report.points.length - 1]).toEqual({ threshold: 1, teacher_share: 1, exact_match: 0.97 });
    expect(report.student_exact_match).toBe(0.7);
    expect(report.teacher_exact_match).toBe(0.97);
  });

  test('an input goes to the teacher when its confidence is below the threshold, not at it', () => {
    const at = (t: number) => report.points.find((p) => p.threshold === t)!;
    expect(at(0.3)).toMatchObject({ teacher_share: 0.05 });
    expect(at(0.35)).toMatchObject({ teacher_share: 0.25, exact_match: 0.95 });
    expect(at(0.45)).toMatchObject({ teacher_share: 0.35, exact_match: 0.95 });
    expect(at(0.65)).toMatchObject({ teacher_share: 0.4, exact_match: 1 });
  });

  test('picks the lowest teacher share within a point of the teacher, from every distinct confidence', () => {
    // Any 0.6 < t <= 0.95 sends the 0.3, 0.4 and 0.6 inputs: 40% to the teacher, 100% exact. Below that,
    // 35% to the teacher gives 95%, more than a point under the teacher's 97%.
    expect(report.chosen).toMatchObject({ teacher_share: 0.4, exact_match: 1 });
    expect(report.chosen!.threshold).toBeGreaterThan(0.6);
    expect(report.chosen!.threshold).toBeLessThanOrEqual(0.65);
  });

  test('no chosen threshold when the student cannot get within tolerance without sending everything', () => {
    const hard = cascadeCurve('student_onnx', [...inputs(10, wrong, 1, right), ...inputs(10, right, 0.5, right)]);
    // Confidence exactly 1 is never below a threshold in [0, 1]: those wrong answers stay with the student.
    expect(hard.chosen).toBeNull();
    expect(renderCascadeHtml(hard)).toContain('No threshold keeps exact match within 1.0% of the teacher');
  });

  test('the report section shows the curve and the chosen threshold', () => {
    const html = renderCascadeHtml(report);
    expect(html).toContain('<polyline');
    expect(html).toMatch(/Chosen threshold 0\.\d+<\/strong>: 100\.0% exact match .* with 40\.0% of requests sent to the teacher/);
  });
});
