// Spans: a value that occurs verbatim in the input, as whole words. MASSIVE's slots are all spans; a task
// from files marks its span arguments ("x-span": true). The verifier, the teacher simulator's error model
// and the decoder's grammar share this one definition of a word boundary.
const isWordChar = (ch: string | undefined) => ch !== undefined && /[A-Za-z0-9]/.test(ch);

/** Start offsets of `value` in `text` at word boundaries. */
export function spanOffsets(text: string, value: string): number[] {
  const offsets: number[] = [];
  if (value === '') return offsets;
  for (let at = text.indexOf(value); at >= 0; at = text.indexOf(value, at + 1)) {
    if (!isWordChar(text[at - 1]) && !isWordChar(text[at + value.length])) offsets.push(at);
  }
  return offsets;
}
