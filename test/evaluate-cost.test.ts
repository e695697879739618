// The report's cost table: dollars per 1M requests from measured tokens and CPU time, the cascade's from
// its teacher share, and the break-even request count of the one-off spend.
import { costReport, renderCostHtml } from '../activities/evaluate/cost';
import { renderReportHtml, type PipelineReport } from '../activities/evaluate/report';

const inputs = {
  // 1,000 requests: 5,000 prompt and 100 completion tokens each, at $0.15 / $0.60 per 1M tokens.
  teacher: { promptTokens: 5_000_000, completionTokens: 100_000, requests: 1000, prices: { inputPerMTok: 0.15, outputPerMTok: 0.6 }, simulated: true },
  // 2 CPU-ms per request at $0.045 per vCPU-hour.
  student: { model: 'student_int8', cpuSeconds: 2, requests: 1000, vcpuHourUsd: 0.045, how: 'batch 16' },
  cascade: { threshold: 0.8, teacher_share: 0.2, exact_match: 0.9 },
  prototypeUsd: 12,
};

describe('costReport', () => {
  const cost = costReport(inputs);

  test('prices the teacher from its tokens per request and the student from its CPU time', () => {
    // (5000 * 0.15 + 100 * 0.6) / 1e6 = $0.00081 a request.
    expect(cost.teacher.usd_per_1m_requests).toBeCloseTo(810, 6);
    expect(cost.teacher).toMatchObject({ prompt_tokens_per_request: 5000, completion_tokens_per_request: 100, simulated: true });
    // 0.002 s / 3600 * 0.045 = $2.5e-8 a request.
    expect(cost.student.usd_per_1m_requests).toBeCloseTo(0.025, 9);
    expect(cost.student.cpu_seconds_per_request).toBeCloseTo(0.002, 12);
  });

  test('the cascade pays the student on every request and the teacher on its share', () => {
    expect(cost.cascade).toEqual({ threshold: 0.8, teacher_share: 0.2, usd_per_1m_requests: expect.closeTo(0.025 + 0.2 * 810, 6) });
  });

  test('break-even: the one-off spend over the saving per request of the cascade', () => {
    const saving = (810 - (0.025 + 162)) / 1e6;
    expect(cost.break_even_requests).toBe(Math.ceil(12 / saving));
    expect(costReport({ ...inputs, cascade: null }).break_even_requests).toBe(Math.ceil(12 / ((810 - 0.025) / 1e6)));
    // A student that costs more than the teacher never pays back.
    expect(costReport({ ...inputs, student: { ...inputs.student, cpuSeconds: 1e6 } }).break_even_requests).toBeNull();
  });

  test('training compute joins the one-off spend: CPU-hours at the vCPU price, GPU-hours at the GPU price', () => {
    const training = { cpuSeconds: 7200, gpuSeconds: 1800, vcpuHourUsd: 0.045, gpuHourUsd: 3, note: 'measured' };
    const withTraining = costReport({ ...inputs, training });
    expect(withTraining.one_off).toMatchObject({ teacher_and_judge_usd: 12, training_cpu_hours: 2, training_gpu_hours: 0.5 });
    expect(withTraining.one_off.training_usd).toBeCloseTo(2 * 0.045 + 0.5 * 3, 9);
    expect(withTraining.one_off.total_usd).toBeCloseTo(12 + 1.59, 9);
    const saving = (810 - (0.025 + 162)) / 1e6;
    expect(withTraining.break_even_requests).toBe(Math.ceil((12 + 1.59) / saving));
    expect(renderCostHtml(withTraining)).toMatch(/One-off: \$13\.59: \$12\.00 of teacher and judge requests, \$1\.59 of training \(2\.00 CPU-hours, 0\.50 GPU-hours/);
  });

  test("the pipeline's teacher spend against its budget: in report.json, and in report.html in words", () => {
    // The ledger paid $1.25 of a $25 budget; the answers used ($12 labelling, $0.81 evaluation) came mostly from the cache.
    const spend = { spentUsd: 1.25, reservedUsd: 0, paidRequests: 4000, budgetUsd: 25 };
    const withSpend = costReport({ ...inputs, spend });
    expect(withSpend.teacher_spend).toEqual({ spent_usd: 1.25, reserved_usd: 0, paid_requests: 4000, budget_usd: 25, answers_usd: expect.closeTo(12 + 0.81, 9) });
    expect(renderCostHtml(withSpend)).toContain(
      'Teacher spend: $1.25 of the $25.00 budget (5.0%) (<code>teacher.maxSpendUsd</code>), 4,000 paid requests; the answers this pipeline used cost $12.81',
    );
    const cutOff = renderCostHtml(costReport({ ...inputs, spend: { ...spend, reservedUsd: 0.02 } }));
    expect(cutOff).toContain('$0.0200 more still reserved');
    // A report made before budgets existed has no such line.
    expect(cost.teacher_spend).toBeUndefined();
    expect(renderCostHtml(cost)).not.toContain('Teacher spend');
  });

  test('the report shows the table, and keeps the simulated teacher off the latency chart', () => {
    const section = renderCostHtml(cost);
    expect(section).toContain('<h2>Cost of serving</h2>');
    expect(section).toContain('$810');
    expect(section).toContain('the teacher SIMULATOR');
    expect(section).toContain(`Break-even: after ${cost.break_even_requests!.toLocaleString('en-US')} requests`);
    expect(cost.break_even_requests).toBe(18_520);
    const metrics = { intent_acc: 0.9, slot_f1: 0.8, exact_match: 0.7, schema_valid: 1, latency_ms_p50: 2.5, latency_ms_p95: 4, throughput_rps: 300, params: 1e6, bytes: 1e6, latency_note: '' };
    const report: PipelineReport = {
      pipeline: 'p',
      dataset: { name: 'MASSIVE en-US', path: '', split: 'test', examples: 1000 },
      config: {},
      models: { teacher: { ...metrics, latency_ms_p50: 2.55 }, student_int8: metrics },
      gates: [],
      transfer: [],
      prototype: {},
      cost,
      createdAt: '',
    };
    const html = renderReportHtml(report);
    const latencyChart = html.slice(html.indexOf('Quality against latency'), html.indexOf('Quality against size'));
    expect(latencyChart).not.toContain('Teacher (API)');
    expect(latencyChart).toContain('Student (ONNX int8)');
    expect(renderReportHtml({ ...report, cost: { ...cost, teacher: { ...cost.teacher, simulated: false } } })).toMatch(/Quality against latency[\s\S]*Teacher \(API\)[\s\S]*Quality against size/);
  });
});
