// Liveness of a long activity that waits on others (the teacher, the judge): a heartbeat every few seconds
// while it waits, whatever it waits on, and one AbortSignal that fires when the activity is cancelled
// (which Temporal only delivers to an activity that heartbeats) or shortly before its deadline. Code deeper
// down (processResumably) finds the current liveness without it being passed along.
import { AsyncLocalStorage } from 'node:async_hooks';
import { Context } from '@temporalio/activity';

/** The attempt is about to pass its start-to-close (or schedule-to-close) deadline. */
export class ActivityDeadlineError extends Error {
  constructor(readonly deadline: Date) {
    super(`the activity attempt reached its deadline (${deadline.toISOString()}) before the work finished`);
    this.name = 'ActivityDeadlineError';
  }
}

export interface ActivityLiveness {
  /** Aborts on cancellation (reason: Temporal's CancelledFailure) or at the deadline (ActivityDeadlineError). */
  readonly signal: AbortSignal;
  /** Heartbeats now with `details`; the timer repeats the latest details, so a retry resumes from them. */
  beat(details?: unknown): void;
}

const current = new AsyncLocalStorage<ActivityLiveness>();

/** The liveness of the activity this code runs in, when it runs inside withLiveness. */
export function currentLiveness(): ActivityLiveness | undefined {
  return current.getStore();
}

export interface LivenessOptions {
  /** Heartbeat period; default a quarter of the heartbeat timeout, at most 5 s. */
  everyMs?: number;
  /** How long before the deadline the signal fires; default 10% of the start-to-close timeout, at most 10 s. */
  deadlineMarginMs?: number;
}

/**
 * Runs `work` with heartbeats and a stop signal. Outside an activity (unit tests, scripts) the signal
 * never fires and beats go nowhere.
 */
export async function withLiveness<T>(work: (live: ActivityLiveness) => Promise<T>, options: LivenessOptions = {}): Promise<T> {
  const ctx = activityContext();
  if (!ctx) {
    const live: ActivityLiveness = { signal: new AbortController().signal, beat: () => undefined };
    return current.run(live, () => work(live));
  }
  const startedAt = Date.now();
  const { info } = ctx;
  const heartbeatTimeoutMs = info.heartbeatTimeoutMs ?? 0;
  const everyMs = options.everyMs ?? Math.max(100, Math.min(5000, heartbeatTimeoutMs > 0 ? heartbeatTimeoutMs / 4 : 5000));
  // The attempt started no earlier than now; the server's own deadlines may be a little earlier still.
  const deadlines = [
    info.startToCloseTimeoutMs > 0 ? startedAt + info.startToCloseTimeoutMs : Infinity,
    info.scheduleToCloseTimeoutMs > 0 ? info.scheduledTimestampMs + info.scheduleToCloseTimeoutMs : Infinity,
  ];
  const deadline = Math.min(...deadlines);
  const margin = options.deadlineMarginMs ?? Math.min(10_000, 0.1 * (info.startToCloseTimeoutMs || 100_000));

  const atDeadline = new AbortController();
  const deadlineTimer = Number.isFinite(deadline)
    ? setTimeout(() => atDeadline.abort(new ActivityDeadlineError(new Date(deadline))), Math.max(0, Math.min(2 ** 31 - 1, deadline - margin - Date.now())))
    : undefined;
  let latest: unknown = info.heartbeatDetails;
  const live: ActivityLiveness = {
    signal: AbortSignal.any([ctx.cancellationSignal, atDeadline.signal]),
    beat(details?: unknown) {
      if (details !== undefined) latest = details;
      ctx.heartbeat(latest);
    },
  };
  const timer = setInterval(() => live.beat(), everyMs);
  try {
    live.beat();
    return await current.run(live, () => work(live));
  } finally {
    clearInterval(timer);
    if (deadlineTimer) clearTimeout(deadlineTimer);
  }
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
