// Typed errors of the student runtime: each names the file or the tensor that is wrong.

/** Why a model folder cannot be loaded. */
export type StudentModelErrorKind = 'missing_file' | 'invalid_file' | 'io_mismatch' | 'tokenizer' | 'session';

export class StudentModelError extends Error {
  constructor(
    readonly kind: StudentModelErrorKind,
    message: string,
    /** The file the error is about, when there is one. */
    readonly file?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StudentModelError';
  }
}

/** A request the runtime cannot serve as asked (e.g. constrained decoding without a task). */
export class StudentRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StudentRequestError';
  }
}
