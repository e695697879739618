// What serving costs, from measured numbers: the teacher's dollars per 1M requests (its tokens per request on
// the report split at the endpoint's prices), the student's (its CPU-seconds per request at a price per
// vCPU-hour), the cascade's at the chosen threshold, the pipeline's one-off teacher and judge spend, and the
// request count after which replacing the teacher has paid for it.
import type { Prices } from '../../config/endpoints';
import type { CascadePoint } from './cascade';
import { html, type Html } from './html';

export interface CostInputs {
  teacher: { promptTokens: number; completionTokens: number; requests: number; prices: Prices; simulated: boolean };
  student: { model: string; cpuSeconds: number; requests: number; vcpuHourUsd: number; how: string };
  cascade: CascadePoint | null;
  /** Teacher and judge dollars of the prototype stage (paid once). */
  prototypeUsd: number;
  /** Training compute, measured by the trainer (CPU-seconds of its process; wall seconds on a GPU). */
  training?: { cpuSeconds: number; gpuSeconds: number; vcpuHourUsd: number; gpuHourUsd: number; note: string };
  /** What the pipeline paid the teacher (its spend ledger), against its budget (teacher.maxSpendUsd). */
  spend?: { spentUsd: number; reservedUsd: number; paidRequests: number; budgetUsd: number };
}

export interface CostReport {
  teacher: { usd_per_1m_requests: number; prompt_tokens_per_request: number; completion_tokens_per_request: number; prices: Prices; simulated: boolean };
  student: { model: string; usd_per_1m_requests: number; cpu_seconds_per_request: number; vcpu_hour_usd: number; how: string };
  /** The student with the teacher behind it at the report's chosen threshold; null without one. */
  cascade: { threshold: number; teacher_share: number; usd_per_1m_requests: number } | null;
  one_off: {
    teacher_and_judge_usd: number;
    training_usd: number;
    training_cpu_hours: number;
    training_gpu_hours: number;
    total_usd: number;
    note: string;
  };
  /** Requests after which the one-off spend is paid back by serving the cascade (or the student) instead of the teacher. */
  break_even_requests: number | null;
  /**
   * The pipeline's teacher spend against its budget: what it paid (labelling, judge, evaluation; answers from
   * the request cache cost nothing), what is still reserved, and what its answers would cost if none were cached.
   */
  teacher_spend?: { spent_usd: number; reserved_usd: number; paid_requests: number; budget_usd: number; answers_usd: number };
}

const MILLION = 1e6;

export function costReport(input: CostInputs): CostReport {
  const { teacher, student } = input;
  const perTeacher = (n: number) => (teacher.requests > 0 ? n / teacher.requests : 0);
  const promptTokens = perTeacher(teacher.promptTokens);
  const completionTokens = perTeacher(teacher.completionTokens);
  const teacherUsd = (promptTokens * teacher.prices.inputPerMTok + completionTokens * teacher.prices.outputPerMTok) / MILLION;
  const cpuSeconds = student.requests > 0 ? student.cpuSeconds / student.requests : 0;
  const studentUsd = (cpuSeconds / 3600) * student.vcpuHourUsd;
  // The cascade runs the student on every request and the teacher on its share.
  const cascade = input.cascade && {
    threshold: input.cascade.threshold,
    teacher_share: input.cascade.teacher_share,
    usd_per_1m_requests: (studentUsd + input.cascade.teacher_share * teacherUsd) * MILLION,
  };
  const servedUsd = cascade ? cascade.usd_per_1m_requests / MILLION : studentUsd;
  const training = input.training;
  const cpuHours = (training?.cpuSeconds ?? 0) / 3600;
  const gpuHours = (training?.gpuSeconds ?? 0) / 3600;
  const trainingUsd = training ? cpuHours * training.vcpuHourUsd + gpuHours * training.gpuHourUsd : 0;
  const oneOff = input.prototypeUsd + trainingUsd;
  const saving = teacherUsd - servedUsd;
  return {
    teacher: {
      usd_per_1m_requests: teacherUsd * MILLION,
      prompt_tokens_per_request: promptTokens,
      completion_tokens_per_request: completionTokens,
      prices: teacher.prices,
      simulated: teacher.simulated,
    },
    student: { model: student.model, usd_per_1m_requests: studentUsd * MILLION, cpu_seconds_per_request: cpuSeconds, vcpu_hour_usd: student.vcpuHourUsd, how: student.how },
    cascade,
    one_off: {
      teacher_and_judge_usd: input.prototypeUsd,
      training_usd: trainingUsd,
      training_cpu_hours: cpuHours,
      training_gpu_hours: gpuHours,
      total_usd: oneOff,
      note: `teacher and judge requests of the prototype stage; training ${training?.note ?? 'not measured'}`,
    },
    break_even_requests: saving > 0 ? Math.ceil(oneOff / saving) : null,
    ...(input.spend
      ? {
          teacher_spend: {
            spent_usd: input.spend.spentUsd,
            reserved_usd: input.spend.reservedUsd,
            paid_requests: input.spend.paidRequests,
            budget_usd: input.spend.budgetUsd,
            answers_usd: input.prototypeUsd + (teacher.promptTokens * teacher.prices.inputPerMTok + teacher.completionTokens * teacher.prices.outputPerMTok) / MILLION,
          },
        }
      : {}),
  };
}

const usd = (x: number) => (x === 0 ? '$0' : x >= 100 ? `$${x.toFixed(0)}` : x >= 1 ? `$${x.toFixed(2)}` : `$${x.toPrecision(3)}`);
const count = (x: number) => (x >= 1e9 ? `${(x / 1e9).toFixed(2)} billion` : x >= 1e6 ? `${(x / 1e6).toFixed(2)} million` : x.toLocaleString('en-US'));

/** The one-off spend; a report written before training compute was measured has only the teacher's. */
function oneOffLine(o: Partial<CostReport['one_off']> & { teacher_and_judge_usd: number; note: string }): Html {
  if (o.total_usd === undefined) return html`One-off: ${usd(o.teacher_and_judge_usd)} (${o.note}).`;
  return html`One-off: ${usd(o.total_usd)}: ${usd(o.teacher_and_judge_usd)} of teacher and judge requests, ${usd(o.training_usd ?? 0)} of training (${(o.training_cpu_hours ?? 0).toFixed(2)} CPU-hours, ${(o.training_gpu_hours ?? 0).toFixed(2)} GPU-hours; ${o.note}).`;
}

/** The pipeline's teacher spend against its budget, in a sentence. */
function teacherSpendLine(s: NonNullable<CostReport['teacher_spend']>): Html {
  const share = s.budget_usd > 0 ? ` (${((s.spent_usd / s.budget_usd) * 100).toFixed(1)}%)` : '';
  const reserved = s.reserved_usd > 0 ? `, ${usd(s.reserved_usd)} more still reserved (requests cut off in flight)` : '';
  return html`<p class="teacher-spend">Teacher spend: ${usd(s.spent_usd)} of the ${usd(s.budget_usd)} budget${share} (<code>teacher.maxSpendUsd</code>), ${count(s.paid_requests)} paid requests${reserved}; the answers this pipeline used cost ${usd(s.answers_usd)} at the endpoint's prices, the rest came from the request cache.</p>`;
}

/** The report's cost section: a table and a bar per way of serving. */
export function costHtml(cost: CostReport): Html {
  const rows: [string, number, string][] = [
    [
      'Teacher',
      cost.teacher.usd_per_1m_requests,
      `${cost.teacher.prompt_tokens_per_request.toFixed(0)} prompt + ${cost.teacher.completion_tokens_per_request.toFixed(0)} completion tokens per request at $${cost.teacher.prices.inputPerMTok} / $${cost.teacher.prices.outputPerMTok} per 1M${cost.teacher.simulated ? ' (the teacher SIMULATOR: its token counts, a stand-in price)' : ''}`,
    ],
    [`Student (${cost.student.model})`, cost.student.usd_per_1m_requests, `${(cost.student.cpu_seconds_per_request * 1000).toFixed(2)} CPU-ms per request (${cost.student.how}) at $${cost.student.vcpu_hour_usd} per vCPU-hour`],
  ];
  if (cost.cascade) {
    rows.push([`Cascade (threshold ${cost.cascade.threshold.toPrecision(3)})`, cost.cascade.usd_per_1m_requests, `the student on every request, the teacher on ${(cost.cascade.teacher_share * 100).toFixed(1)}%`]);
  }
  const max = Math.max(...rows.map(([, v]) => v), 1e-12);
  const W = 460, barH = 22, L = 170;
  const bars = rows.map(([label, v], i) => {
    const w = Math.max(1, (v / max) * (W - L - 80));
    return html`<text x="${L - 8}" y="${30 + i * (barH + 10) + 15}" text-anchor="end" class="tk">${label}</text><rect x="${L}" y="${30 + i * (barH + 10)}" width="${w.toFixed(1)}" height="${barH}" fill="${i === 0 ? '#b5523b' : i === 1 ? '#7a4fa0' : '#3f8f6b'}"/><text x="${(L + w + 6).toFixed(1)}" y="${30 + i * (barH + 10) + 15}" class="tk">${usd(v)}</text>`;
  });
  return html`<h2>Cost of serving</h2>
<table><thead><tr><th>serving</th><th>USD per 1M requests</th><th>from</th></tr></thead><tbody>${rows.map(
    ([label, v, how]) => html`<tr><th scope="row">${label}</th><td>${usd(v)}</td><td style="text-align:left">${how}</td></tr>`,
  )}</tbody></table>
${cost.teacher_spend && teacherSpendLine(cost.teacher_spend)}
<p>${oneOffLine(cost.one_off)} Break-even: ${
    cost.break_even_requests === null ? 'never (serving the student does not cost less than the teacher)' : `after ${count(cost.break_even_requests)} requests`
  }.</p>
<figure><svg viewBox="0 0 ${W} ${40 + rows.length * (barH + 10)}" width="${W}" height="${40 + rows.length * (barH + 10)}" role="img" aria-label="cost per 1M requests">
  <text x="${W / 2}" y="18" text-anchor="middle" class="t">USD per 1M requests (linear)</text>
  ${bars}
</svg></figure>
`;
}

export const renderCostHtml = (cost: CostReport): string => costHtml(cost).toString();
