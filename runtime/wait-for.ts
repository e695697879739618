// The one way the project waits on a condition: poll it with a deadline, never wait a fixed time, so a slow
// machine only makes the wait longer. Start-ups (the dev server) and the tests use it alike.

export interface WaitForOptions {
  /** How long to keep polling before failing, ms (30 s unless given: long waits say how long). */
  timeoutMs?: number;
  /** Pause between polls, ms. */
  intervalMs?: number;
}

/**
 * Polls `probe` until it returns something other than undefined or false, and resolves with that value. Rejects
 * with an error naming `what` once `timeoutMs` has passed; a probe that throws ends the wait with its error.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitForOptions = {},
): Promise<T> {
  const { timeoutMs = 30_000, intervalMs = 100 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
