// The cascade: a request the student is unsure of goes to the teacher, through the same TeacherClient as
// the prototype stage, so the teacher runs the task's own tool loop and its call is validated the same way.
import type { TeacherClient, TeacherUsage } from '../../activities/prototype/teacher-client';
import type { Call } from '../../tasks/call-format';

export type TeacherAnswer =
  | { ok: true; call: Call; usage: TeacherUsage }
  /** `reason` is the teacher sample's outcome (http_error, timeout, invalid_arguments, ...) or "not_offered". */
  | { ok: false; reason: string; error: string; usage: TeacherUsage };

export interface CascadeOptions {
  /** Requests whose student confidence is below this go to the teacher, in [0, 1]. */
  threshold: number;
  teacher: TeacherClient;
  /** The teacher's model name, reported as the answering model. */
  teacherModel: string;
}

export class TeacherCascade {
  readonly threshold: number;
  readonly teacherModel: string;
  private readonly teacher: TeacherClient;
  private asked = 0;

  constructor(options: CascadeOptions) {
    if (!(options.threshold >= 0 && options.threshold <= 1)) throw new Error(`the cascade threshold must be in [0, 1], got ${options.threshold}`);
    this.threshold = options.threshold;
    this.teacher = options.teacher;
    this.teacherModel = options.teacherModel;
  }

  /** Whether a student answer goes to the teacher: unsure, or no usable call at all. */
  escalates(confidence: number, usable: boolean): boolean {
    return !usable || confidence < this.threshold;
  }

  /** The teacher's call for `input`, which must be one of `offered`; never throws for a teacher failure. */
  async ask(input: string, offered: ReadonlySet<string>): Promise<TeacherAnswer> {
    const result = await this.teacher.label({ id: `serve-${++this.asked}`, text: input }, 1);
    const sample = result.samples[0];
    if (sample.outcome !== 'ok' || !sample.call) {
      return { ok: false, reason: sample.outcome, error: `${sample.outcome}: ${sample.error ?? 'no call'}`, usage: result.usage };
    }
    if (!offered.has(sample.call.name)) {
      return { ok: false, reason: 'not_offered', error: `the teacher called "${sample.call.name}", which the request does not offer`, usage: result.usage };
    }
    return { ok: true, call: sample.call, usage: result.usage };
  }
}
