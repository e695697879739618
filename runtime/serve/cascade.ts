// The cascade: a request the student is unsure of goes to the teacher, through the same TeacherClient as
// the prototype stage, so the teacher runs the task's own tool loop and its call is validated the same way.
// The teacher is paid per request, so the cascade caps how often it asks (per second) and how much it
// spends (in all); past either, the student's answer stands.
import type { TeacherClient, TeacherUsage } from '../teacher/teacher-client';
import type { Call } from '../../tasks/call-format';

/** Why the teacher was not asked: the rate limit or the spend cap. */
export type TeacherLimit = 'rate' | 'budget';

export type TeacherAnswer =
  | { ok: true; call: Call; usage: TeacherUsage }
  | {
      ok: false;
      /**
       * What went wrong, as a kind that carries no upstream text: the teacher sample's outcome (`timeout`,
       * `invalid_arguments`, ...), `http_error:<status>`, `not_offered`, or the limit that kept the teacher out.
       */
      reason: string;
      /** The detail, for the server's log only (it may quote the teacher's error body). */
      detail: string;
      usage: TeacherUsage;
    };

export interface CascadeOptions {
  /** Requests whose student confidence is below this go to the teacher, in [0, 1]. */
  threshold: number;
  teacher: TeacherClient;
  /** The teacher's model name, reported as the answering model. */
  teacherModel: string;
  /** Most requests sent to the teacher per second (a token bucket with a burst of one second's worth). Default: no limit. */
  maxRequestsPerSecond?: number;
  /** Most USD spent on the teacher in this process's life, at the endpoint's prices. Default: no cap. */
  maxSpendUsd?: number;
  /** The clock, ms (tests). */
  now?: () => number;
}

const NO_USAGE: TeacherUsage = { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 };

/** The kind of a failed sample: its outcome, with the HTTP status for an HTTP error (the message is dropped). */
function failureKind(outcome: string, error: string | undefined): string {
  // TeacherClient writes an HTTP failure as "HTTP <status>: <upstream message>".
  const status = outcome === 'http_error' ? /^HTTP (\d{3})\b/.exec(error ?? '')?.[1] : undefined;
  return status ? `${outcome}:${status}` : outcome;
}

export class TeacherCascade {
  readonly threshold: number;
  readonly teacherModel: string;
  private readonly teacher: TeacherClient;
  private readonly maxRequestsPerSecond: number | undefined;
  private readonly maxSpendUsd: number | undefined;
  private readonly now: () => number;
  private asked = 0;
  private spentUsd = 0;
  private tokens: number;
  private refilledAt: number;

  constructor(options: CascadeOptions) {
    if (!(options.threshold >= 0 && options.threshold <= 1)) throw new Error(`the cascade threshold must be in [0, 1], got ${options.threshold}`);
    if (options.maxRequestsPerSecond !== undefined && !(options.maxRequestsPerSecond > 0)) {
      throw new Error(`maxRequestsPerSecond must be > 0, got ${options.maxRequestsPerSecond}`);
    }
    if (options.maxSpendUsd !== undefined && !(options.maxSpendUsd >= 0)) throw new Error(`maxSpendUsd must be >= 0, got ${options.maxSpendUsd}`);
    this.threshold = options.threshold;
    this.teacher = options.teacher;
    this.teacherModel = options.teacherModel;
    this.maxRequestsPerSecond = options.maxRequestsPerSecond;
    this.maxSpendUsd = options.maxSpendUsd;
    this.now = options.now ?? Date.now;
    this.tokens = Math.max(1, options.maxRequestsPerSecond ?? 1);
    this.refilledAt = this.now();
  }

  /** What the teacher has cost so far, USD. */
  get spent(): number {
    return this.spentUsd;
  }

  /** Whether a student answer goes to the teacher: unsure, or no usable call at all. */
  escalates(confidence: number, usable: boolean): boolean {
    return !usable || confidence < this.threshold;
  }

  /**
   * The teacher's call for `input`, which must be one of `offered`; never throws for a teacher failure. The
   * spend cap is checked before each request, so requests already in flight when it is reached may pass it
   * by their own cost.
   */
  async ask(input: string, offered: ReadonlySet<string>): Promise<TeacherAnswer> {
    const limit = this.limitReached();
    if (limit) return { ok: false, reason: limit, detail: `the teacher's ${limit === 'rate' ? 'rate limit' : 'spend cap'} is reached`, usage: NO_USAGE };
    const result = await this.teacher.label({ id: `serve-${++this.asked}`, text: input }, 1);
    this.spentUsd += result.usage.costUsd;
    const sample = result.samples[0];
    if (sample.outcome !== 'ok' || !sample.call) {
      return { ok: false, reason: failureKind(sample.outcome, sample.error), detail: `${sample.outcome}: ${sample.error ?? 'no call'}`, usage: result.usage };
    }
    if (!offered.has(sample.call.name)) {
      return { ok: false, reason: 'not_offered', detail: `the teacher called "${sample.call.name}", which the request does not offer`, usage: result.usage };
    }
    return { ok: true, call: sample.call, usage: result.usage };
  }

  /** The limit that keeps this request from the teacher, taking a rate token when there is none. */
  private limitReached(): TeacherLimit | undefined {
    if (this.maxSpendUsd !== undefined && this.spentUsd >= this.maxSpendUsd) return 'budget';
    if (this.maxRequestsPerSecond === undefined) return undefined;
    const now = this.now();
    const burst = Math.max(1, this.maxRequestsPerSecond);
    this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) / 1000) * this.maxRequestsPerSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return 'rate';
    this.tokens -= 1;
    return undefined;
  }
}
