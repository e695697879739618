// The line format of `supertiny serve --capture` files: written by runtime/serve/capture.ts, read back into a
// task's data by tasks/from-files/import-openai.ts. Here, below both, so the reader does not import the server.
import { z } from 'zod';

/** The `format` of every capture line: how an importer tells a capture line from an OpenAI chat line. */
export const CAPTURE_FORMAT = 'supertiny-capture/1';

/** A call as the server answered it: the function's name and its arguments object (the string form). */
export const CapturedCallSchema = z.strictObject({ name: z.string().min(1), arguments: z.record(z.string(), z.unknown()) });
export type CapturedCall = z.infer<typeof CapturedCallSchema>;

/** One capture line. */
export const CaptureLineSchema = z.strictObject({
  format: z.literal(CAPTURE_FORMAT),
  /** The request id (the x-request-id response header). */
  id: z.string().min(1),
  /** When the line was recorded, ISO 8601 UTC. */
  time: z.string().min(1),
  /** The served model's name and the version of the loaded student folder. */
  model: z.string(),
  model_version: z.string(),
  /** The student's input: the text of the request's last user message. */
  input: z.string(),
  /** The student's own call (null when it had no valid one) and its confidence. */
  student_call: CapturedCallSchema.nullable(),
  student_confidence: z.number(),
  /** Whether the cascade sent the request towards the teacher (a limit may still have kept it out: teacher_error). */
  cascaded: z.boolean(),
  teacher_model: z.string().optional(),
  /** The teacher's call, when the cascade asked and the teacher answered. */
  teacher_call: CapturedCallSchema.optional(),
  /** Why the teacher's call is missing although the request cascaded (a kind, never upstream text). */
  teacher_error: z.string().optional(),
  /** Whose call the client got; "none" when it got a 422 (no valid call). */
  answered_by: z.enum(['student', 'teacher', 'none']),
});
export type CaptureLine = z.infer<typeof CaptureLineSchema>;
