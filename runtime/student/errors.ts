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

/** Why a request cannot be served: an input the model cannot take, or options it cannot serve. */
export type StudentRequestErrorCode = 'context_length_exceeded' | 'invalid_request';

/**
 * A request the runtime cannot serve as asked (e.g. a prompt longer than the decoder takes, or constrained
 * decoding without a task). Its message never quotes the input: it may travel to another request's client.
 */
export class StudentRequestError extends Error {
  constructor(
    message: string,
    readonly code: StudentRequestErrorCode = 'invalid_request',
  ) {
    super(message);
    this.name = 'StudentRequestError';
  }
}
