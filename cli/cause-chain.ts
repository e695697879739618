// What the CLI prints last when a command fails: the innermost cause, which names what is wrong.
/** The messages of an error and its causes, outermost first (Temporal wraps an activity's error 3-4 deep). */
export function causeChain(err: unknown): string[] {
  const messages: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 16; depth++) {
    const message = cur instanceof Error ? cur.message : String(cur);
    if (message && messages[messages.length - 1] !== message) messages.push(message);
    cur = cur instanceof Error ? (cur as { cause?: unknown }).cause : undefined;
  }
  return messages.length > 0 ? messages : ['unknown error'];
}
