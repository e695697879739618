// The encoder's value heads (trainer/ENCODER_FORMAT.md): one classifier per (function, argument) whose values
// form a closed set (an enum, a boolean, a small integer range). All heads' logits sit side by side in the
// graph's value_logits output; head h owns [offset, offset + 1 + values.length), column 0 meaning "absent".
// Only the predicted intent's heads are read, so every value is one the schema allows by construction.
import { softmax } from './log-softmax';

/** One entry of supertiny.json's `value_heads`. */
export interface ValueHead {
  function: string;
  argument: string;
  kind: 'enum' | 'boolean' | 'integer';
  /** The values in logit order (after the "absent" column), in the compact call's string form ("3", "true"). */
  values: string[];
  /** A required argument is never absent: its "absent" column is not a choice. */
  required: boolean;
  offset: number;
}

/** A value head's choice: the argument, its value and the head's probability of it. */
export interface ValueChoice {
  argument: string;
  value: string;
  probability: number;
}

/** Width of value_logits: every head's values plus its "absent" column. */
export function valueLogitsWidth(heads: readonly ValueHead[]): number {
  return heads.reduce((n, h) => n + 1 + h.values.length, 0);
}

/**
 * The arguments `heads` (the predicted intent's) give from one row of value logits starting at `rowOffset`:
 * each head's most probable column (ties: the first), "absent" excluded for a required argument; an optional
 * argument whose "absent" wins is left out.
 */
export function decodeValueHeads(heads: readonly ValueHead[], logits: Float32Array, rowOffset: number): ValueChoice[] {
  const choices: ValueChoice[] = [];
  for (const head of heads) {
    const probs = softmax(logits, rowOffset + head.offset, 1 + head.values.length);
    let best = head.required ? 1 : 0;
    for (let k = best + 1; k < probs.length; k++) if (probs[k] > probs[best]) best = k;
    if (best > 0) choices.push({ argument: head.argument, value: head.values[best - 1], probability: probs[best] });
  }
  return choices;
}

const NUMBER_TEXT = { integer: /^-?(0|[1-9]\d*)$/, number: /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/ };

/** Whether a span's text is a value of a number slot (supertiny.json's `number_slots`): decoding drops one that is not. */
export function isNumberText(kind: 'integer' | 'number', text: string): boolean {
  return NUMBER_TEXT[kind].test(text);
}
