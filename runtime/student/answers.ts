// One answer per input, each input checked alone before the batch: an input the student cannot take is
// refused in its own answer and leaves the batch, so that it never fails the requests batched with it.
import { StudentRequestError } from './errors';
import type { RuntimeAnswer, RuntimePrediction } from './student-runtime';

export type { RuntimeAnswer } from './student-runtime';

/**
 * Answers from a per-input check and a batch prediction: `refusal` says why an input cannot be taken (or
 * undefined), and `predict` runs the accepted ones together, in order.
 */
export async function answerEach<P extends RuntimePrediction>(
  count: number,
  refusal: (index: number) => StudentRequestError | undefined,
  predict: (accepted: number[]) => Promise<P[]>,
): Promise<RuntimeAnswer<P>[]> {
  const refused = Array.from({ length: count }, (_, i) => refusal(i));
  const accepted = refused.flatMap((r, i) => (r ? [] : [i]));
  const predictions = accepted.length ? await predict(accepted) : [];
  let next = 0; // accepted inputs are in index order
  return refused.map((error) => (error ? { ok: false as const, error } : { ok: true as const, prediction: predictions[next++] }));
}

/** The predictions of answers that must all be predictions (predictBatch's contract): the first refusal is thrown. */
export function predictionsOf<P extends RuntimePrediction>(answers: readonly RuntimeAnswer<P>[]): P[] {
  return answers.map((answer) => {
    if (!answer.ok) throw answer.error;
    return answer.prediction;
  });
}
