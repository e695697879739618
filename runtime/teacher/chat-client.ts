// One chat-completions transport for the teacher and the judge: any OpenAI-compatible endpoint through the
// `openai` SDK, with a request cache, a concurrency limit, a per-request timeout, our own retry loop
// (backoff on 408/409/429/5xx, timeouts and connection errors, honouring Retry-After within a bounded total
// wait) and cost from `usage`. An AbortSignal (the activity's cancellation and deadline) stops it: in-flight
// requests are aborted and nothing new is sent.
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { FailureType, SupertinyError } from '../../config/failure-types';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { scrubSecrets } from '../../config/endpoints';
import { createLogger } from '../../config/logger';
import { abortableDelay, RequestCache, requestCacheKey, untilAborted } from './request-cache';

const log = createLogger('chat-client');

export const ChatClientConfigSchema = z.object({
  /** e.g. https://api.openai.com/v1, http://127.0.0.1:8787/v1 (teacher simulator), a vLLM or Ollama server. */
  baseURL: z.string().url(),
  /**
   * Who answers, for the request cache key (e.g. the endpoint's name and URL): answers of one endpoint never
   * serve another. Defaults to baseURL.
   */
  endpoint: z.string().min(1).optional(),
  apiKey: z.string().default('sk-no-key'),
  model: z.string().min(1),
  /** Per-request timeout, ms. */
  timeoutMs: z.number().int().positive().default(60_000),
  /** Retries after the first attempt (our loop; the SDK's own retries are off). */
  maxRetries: z.number().int().min(0).default(6),
  backoff: z
    .object({
      initialMs: z.number().min(0).default(500),
      maxMs: z.number().min(0).default(30_000),
      factor: z.number().min(1).default(2),
      /** Random spread of each delay, as a fraction (0.2 = +-20%). */
      jitter: z.number().min(0).max(1).default(0.2),
      /** Longest Retry-After honoured; a request asked to wait longer fails (the endpoint is unavailable). */
      maxRetryAfterMs: z.number().min(0).default(60_000),
      /** Most time one request spends waiting between its tries, in total; past it the request fails. */
      maxTotalWaitMs: z.number().min(0).default(120_000),
    })
    .prefault({}),
  /** Requests in flight at once. */
  concurrency: z.number().int().min(1).default(8),
  /** USD per million tokens. */
  prices: z
    .object({
      inputPerMillionTokens: z.number().min(0).default(0),
      outputPerMillionTokens: z.number().min(0).default(0),
    })
    .prefault({}),
  /**
   * Header that carries each request's idempotency key (derived from the request cache key, so every retry,
   * overlapping attempt and post-crash resend of one request carries the same key). An endpoint or gateway
   * that honours it answers a resend without billing it again: the only protection for an answer the
   * endpoint finished while the worker died before caching it. Sent only with a request cache (the
   * pipeline's requests, each paid once; a server's live requests are not). null sends no such header.
   */
  idempotencyHeader: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/)
    .nullable()
    .default('Idempotency-Key'),
  /** Folder of the request cache; no cache when absent. */
  cacheDir: z.string().min(1).optional(),
});
export type ChatClientConfig = z.input<typeof ChatClientConfigSchema>;
export type ResolvedChatClientConfig = z.output<typeof ChatClientConfigSchema>;

export type ChatRequest = Omit<ChatCompletionCreateParamsNonStreaming, 'model' | 'stream'>;

/** Our field on a stored completion: the wall time of the request that obtained it. */
const LATENCY_FIELD = 'x_supertiny_latency_ms';

/** The idempotency key of a request: its cache key (a sha256 of endpoint, model, request and sample index). */
export function idempotencyKeyOf(cacheKey: string): string {
  return `supertiny-${cacheKey}`;
}

function latencyOf(completion: ChatCompletion): number | undefined {
  const value = (completion as unknown as Record<string, unknown>)[LATENCY_FIELD];
  return typeof value === 'number' ? value : undefined;
}

export type ChatFailureKind = 'http_error' | 'timeout' | 'connection_error';

export type ChatOutcome =
  | {
      ok: true;
      completion: ChatCompletion;
      cached: boolean;
      attempts: number;
      costUsd: number;
      /** Wall time of the HTTP request that was paid for this answer (stored with it, so a cached answer has it too). */
      latencyMs?: number;
    }
  | {
      ok: false;
      kind: ChatFailureKind;
      status?: number;
      message: string;
      attempts: number;
      /**
       * The endpoint failed (timeouts, connection errors, 401/403/404, 408/409/429, 5xx, an unreadable
       * body), not this request: such a failure says nothing about the input and must never be stored as
       * its answer. false for statuses about the request itself (400, 413, 422...).
       */
      endpointFault: boolean;
    };

/**
 * The endpoint failed a request for good (after its retries) while the client was told to stop at the
 * first such failure. The message says what the endpoint did: status counts and the last error, never the key.
 */
export class EndpointUnavailableError extends SupertinyError {
  readonly failureType = FailureType.TeacherUnavailable;
  constructor(
    message: string,
    readonly statusCounts: Record<string, number>,
  ) {
    super(message);
  }
  override failureDetails(): unknown[] {
    return [this.statusCounts];
  }
}

export interface ChatClientStats {
  /** HTTP attempts made (first tries and retries). */
  httpRequests: number;
  /** Requests answered from the cache (nothing paid). */
  cacheHits: number;
  /** Identical requests that joined one already in flight (nothing paid twice). */
  joinedInFlight: number;
  /** Requests answered by another process (an overlapping attempt) that held the request's lock. */
  answeredByOtherHolder: number;
  retries: number;
  rateLimited: number;
  serverErrors: number;
  timeouts: number;
  connectionErrors: number;
  /** Requests that failed for good (after retries, or with a non-retryable status). */
  failures: Record<ChatFailureKind, number>;
  /** Of those, failures of the endpoint rather than of the request (see ChatOutcome.endpointFault). */
  endpointFaults: number;
  /** What each HTTP attempt got: a status ("200", "429", "500"...), "timeout" or "connection_error". */
  statusCounts: Record<string, number>;
  /** Paid tokens and cost (cache hits excluded). */
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  /** Tokens the cache saved. */
  cachedPromptTokens: number;
  cachedCompletionTokens: number;
}

export function emptyChatClientStats(): ChatClientStats {
  return {
    httpRequests: 0,
    cacheHits: 0,
    joinedInFlight: 0,
    answeredByOtherHolder: 0,
    retries: 0,
    rateLimited: 0,
    serverErrors: 0,
    timeouts: 0,
    connectionErrors: 0,
    failures: { http_error: 0, timeout: 0, connection_error: 0 },
    endpointFaults: 0,
    statusCounts: {},
    promptTokens: 0,
    completionTokens: 0,
    costUsd: 0,
    cachedPromptTokens: 0,
    cachedCompletionTokens: 0,
  };
}

/** A counting semaphore: at most `limit` holders at once, served in arrival order. */
export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/** Milliseconds asked for by retry-after-ms / retry-after (seconds or an HTTP date), if any. */
export function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(parseFloat(ms))) return Math.max(0, parseFloat(ms));
  const after = headers?.get('retry-after');
  if (!after) return undefined;
  const seconds = parseFloat(after);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(after);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

const isRetryableStatus = (status: number) => status === 408 || status === 409 || status === 429 || status >= 500;
/** Statuses that say the endpoint (its auth, its model list, its capacity) failed, not the request. */
const isEndpointStatus = (status: number) => isRetryableStatus(status) || status === 401 || status === 403 || status === 404;

/**
 * Bounds what a client pays: the estimated cost of each request is reserved before it is sent (a request
 * that would pass the budget is refused and never sent), then settled with what the answer cost.
 */
export interface SpendGuard {
  /** Throws (e.g. TeacherBudgetError) when the request would pass the budget. */
  reserve(request: { estimateUsd: number; requestKey?: string }): Promise<SpendReservation>;
}

/** A reservation that is neither paid nor unbilled (a timeout, a lost connection, a crash) keeps counting at its estimate. */
export interface SpendReservation {
  /** The endpoint answered; `usd` is what the answer's usage cost at the endpoint's prices. */
  paid(usd: number): Promise<void>;
  /** The endpoint answered with an error status: nothing was billed. */
  unbilled(): Promise<void>;
}

/** Completion tokens per choice assumed for a request that sets no max_tokens, when its cost is estimated. */
export const COMPLETION_TOKENS_ALLOWANCE = 1024;

/**
 * An upper estimate of a request's cost before it is sent: a token is at least one byte, so the prompt is
 * counted as one token per byte of its messages and tools; the completion as max_completion_tokens (or
 * max_tokens, else COMPLETION_TOKENS_ALLOWANCE) per choice. Only a completion longer than that is under-estimated.
 */
export function estimatedCostUsd(request: ChatRequest, prices: ResolvedChatClientConfig['prices']): number {
  const promptTokens = Buffer.byteLength(JSON.stringify({ messages: request.messages, tools: request.tools ?? null }));
  const perChoice = request.max_completion_tokens ?? request.max_tokens ?? COMPLETION_TOKENS_ALLOWANCE;
  const completionTokens = (request.n ?? 1) * perChoice;
  return (promptTokens * prices.inputPerMillionTokens + completionTokens * prices.outputPerMillionTokens) / 1e6;
}

export interface ChatClientDeps {
  /** Injected for tests; defaults to setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /**
   * Stops the client (an activity's cancellation or deadline): in-flight requests are aborted, waits end,
   * nothing new is sent, and complete() rejects with the signal's reason.
   */
  signal?: AbortSignal;
  /**
   * Stop at the first request that fails for good because of the endpoint: abort everything in flight and
   * reject every complete() with an EndpointUnavailableError, so a caller never records an outage as answers.
   */
  stopOnEndpointFault?: boolean;
  /** The budget this client's paid requests count against (cache hits and joined requests cost nothing). */
  spend?: SpendGuard;
}

/** The longest error text kept from an endpoint (a hostile endpoint may answer megabytes). */
const ERROR_TEXT_LIMIT = 300;

export class ChatClient {
  readonly config: ResolvedChatClientConfig;
  private readonly openai: OpenAI;
  private readonly cache?: RequestCache;
  private readonly limit: ConcurrencyLimit;
  private readonly inFlight = new Map<string, Promise<ChatOutcome>>();
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  /** Aborted by the caller's signal or by the first endpoint fault (stopOnEndpointFault). */
  private readonly stopper = new AbortController();
  private readonly signal: AbortSignal;
  private readonly stopOnEndpointFault: boolean;
  private readonly spend?: SpendGuard;
  /** Why the spend guard refused a request (the budget is reached, or its ledger failed): nothing is sent after it. */
  private spendRefusal?: unknown;
  private counters = emptyChatClientStats();
  private lastError?: string;

  constructor(config: ChatClientConfig, deps: ChatClientDeps = {}) {
    this.config = ChatClientConfigSchema.parse(config);
    this.openai = new OpenAI({ baseURL: this.config.baseURL, apiKey: this.config.apiKey, maxRetries: 0, timeout: this.config.timeoutMs });
    this.cache = this.config.cacheDir ? new RequestCache(this.config.cacheDir) : undefined;
    this.limit = new ConcurrencyLimit(this.config.concurrency);
    this.signal = deps.signal ? AbortSignal.any([deps.signal, this.stopper.signal]) : this.stopper.signal;
    const injected = deps.sleep;
    // An injected sleep still ends when the client is stopped.
    this.sleep = injected ? (ms) => untilAborted(injected(ms), this.signal) : (ms) => abortableDelay(ms, this.signal);
    this.random = deps.random ?? Math.random;
    this.stopOnEndpointFault = deps.stopOnEndpointFault ?? false;
    this.spend = deps.spend;
  }

  /** The endpoint's identity in cache keys and messages. */
  get endpoint(): string {
    return this.config.endpoint ?? this.config.baseURL;
  }

  /**
   * What the endpoint did, for an error message: attempts by status, requests failed for good, the last
   * error (truncated). Never contains the API key, nor a password in the endpoint's URL.
   */
  describeEndpoint(): string {
    const c = this.counters;
    const statuses = Object.entries(c.statusCounts)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([status, n]) => `${status} x${n}`)
      .join(', ');
    const failed = c.failures.http_error + c.failures.timeout + c.failures.connection_error;
    return (
      `endpoint ${this.scrub(withoutQuery(this.endpoint))} (model ${this.config.model}): ${c.httpRequests} HTTP attempts` +
      `${statuses ? ` (${statuses})` : ''}, requests failed for good: ${failed}` +
      `${this.lastError ? `; last error: ${this.lastError}` : ''}`
    );
  }

  /** Without this client's key, nor anything shaped like a credential (an endpoint may echo one back). */
  private scrub(text: string): string {
    const key = this.config.apiKey;
    return scrubSecrets(text, key && key.length >= 4 ? [key] : []);
  }

  /**
   * Reserves a request's estimated cost against the spend guard, or throws when the budget is reached; after
   * that nothing more is sent. Free endpoints (zero prices) reserve nothing.
   */
  private async reserve(estimateUsd: number, requestKey: string | undefined): Promise<SpendReservation | undefined> {
    if (this.spendRefusal !== undefined) throw this.spendRefusal;
    if (!this.spend || estimateUsd === 0) return undefined;
    try {
      return await this.spend.reserve({ estimateUsd, ...(requestKey ? { requestKey } : {}) });
    } catch (err) {
      this.spendRefusal = err;
      throw err;
    }
  }

  /** Rejects with why the client stopped (the caller's reason, or the endpoint outage). */
  private throwIfStopped(): void {
    if (this.signal.aborted) throw this.signal.reason;
  }

  stats(): ChatClientStats {
    return structuredClone(this.counters);
  }

  costOf(usage: ChatCompletion['usage']): number {
    if (!usage) return 0;
    const { inputPerMillionTokens, outputPerMillionTokens } = this.config.prices;
    return (usage.prompt_tokens * inputPerMillionTokens + usage.completion_tokens * outputPerMillionTokens) / 1e6;
  }

  /**
   * One chat completion. `sampleIndex` is part of the cache key, so sample i of an input is paid once
   * however often the input is labelled again. Never throws for HTTP or network problems.
   */
  async complete(request: ChatRequest, sampleIndex: number): Promise<ChatOutcome> {
    this.throwIfStopped();
    const { messages, tools, ...parameters } = request;
    const key = requestCacheKey({ endpoint: this.endpoint, model: this.config.model, messages, tools, parameters, sampleIndex });
    const joined = this.inFlight.get(key);
    if (joined) {
      this.counters.joinedInFlight++;
      const outcome = await joined;
      return outcome.ok ? { ...outcome, cached: true, costUsd: 0 } : outcome;
    }
    const work = this.completeUncached(request, key);
    this.inFlight.set(key, work);
    try {
      return await work;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async completeUncached(request: ChatRequest, key: string): Promise<ChatOutcome> {
    const hit = await this.cache?.get<ChatCompletion>(key);
    if (hit) return this.fromCache(hit);
    const claim = this.cache ? await this.cache.claim<ChatCompletion>(key, this.signal) : undefined;
    if (claim && 'value' in claim) {
      this.counters.answeredByOtherHolder++;
      return this.fromCache(claim.value);
    }
    try {
      const outcome = await this.send(request, key);
      if (!outcome.ok) {
        this.counters.failures[outcome.kind]++;
        if (outcome.endpointFault) {
          this.counters.endpointFaults++;
          if (this.stopOnEndpointFault) {
            this.stopper.abort(new EndpointUnavailableError(`the teacher endpoint is unavailable: ${this.describeEndpoint()}`, { ...this.counters.statusCounts }));
            this.throwIfStopped();
          }
        }
      }
      return outcome;
    } finally {
      await claim?.lease.release();
    }
  }

  private fromCache(hit: ChatCompletion): ChatOutcome {
    this.counters.cacheHits++;
    this.counters.cachedPromptTokens += hit.usage?.prompt_tokens ?? 0;
    this.counters.cachedCompletionTokens += hit.usage?.completion_tokens ?? 0;
    return { ok: true, completion: hit, cached: true, attempts: 0, costUsd: 0, latencyMs: latencyOf(hit) };
  }

  private countStatus(status: string): void {
    this.counters.statusCounts[status] = (this.counters.statusCounts[status] ?? 0) + 1;
  }

  private fail(kind: ChatFailureKind, message: string, attempts: number, status?: number): Extract<ChatOutcome, { ok: false }> {
    const endpointFault = kind !== 'http_error' || status === undefined || isEndpointStatus(status);
    const text = boundedErrorText(this.scrub(message));
    this.lastError = status !== undefined ? `HTTP ${status}: ${text}` : `${kind}: ${text}`;
    return { ok: false, kind, ...(status !== undefined ? { status } : {}), message: text, attempts, endpointFault };
  }

  /** The retry loop of one request that is not cached. */
  private async send(request: ChatRequest, key: string): Promise<ChatOutcome> {
    const { backoff, maxRetries } = this.config;
    let last: Extract<ChatOutcome, { ok: false }> = { ok: false, kind: 'connection_error', message: 'not attempted', attempts: 0, endpointFault: true };
    let waited = 0;
    const idempotent = this.config.idempotencyHeader !== null && this.cache !== undefined;
    const estimateUsd = estimatedCostUsd(request, this.config.prices);
    for (let attempt = 1; attempt <= maxRetries + 1; attempt++) {
      let delay: number | undefined;
      // Our own deadline (the SDK's is a backstop): whether a request timed out must not depend on how the
      // runtime reports an aborted fetch.
      let timedOut = false;
      let sent = false;
      let answered = false;
      let reservation: SpendReservation | undefined;
      try {
        const completion = await this.limit.run(async () => {
          // Checked once the slot is ours: a request queued behind the limit is never sent after a stop.
          this.throwIfStopped();
          // Each attempt may be billed, so each reserves its estimate, right before it is sent.
          reservation = await this.reserve(estimateUsd, idempotent ? key : undefined);
          if (this.signal.aborted) {
            await reservation?.unbilled();
            this.throwIfStopped();
          }
          if (attempt > 1) this.counters.retries++;
          this.counters.httpRequests++;
          sent = true;
          const deadline = new AbortController();
          const timer = setTimeout(() => {
            timedOut = true;
            deadline.abort();
          }, this.config.timeoutMs);
          const sentAt = performance.now();
          let answer: ChatCompletion;
          try {
            answer = await this.openai.chat.completions.create(
              { ...request, model: this.config.model, stream: false },
              {
                timeout: this.config.timeoutMs + 5_000,
                maxRetries: 0,
                signal: AbortSignal.any([deadline.signal, this.signal]),
                ...(idempotent ? { headers: { [this.config.idempotencyHeader!]: idempotencyKeyOf(key) } } : {}),
              },
            );
          } finally {
            clearTimeout(timer);
          }
          answered = true;
          // Kept with the answer: latency can be reported from the requests that were paid, never by paying again.
          answer = { ...answer, [LATENCY_FIELD]: performance.now() - sentAt } as ChatCompletion;
          this.countStatus('200');
          // The slot is held until the paid answer is on disk: a crash loses at most `concurrency` answers.
          if (this.cache) await this.cache.put(key, answer);
          // Without usage the answer's cost is unknown: it counts at its estimate.
          await reservation?.paid(answer.usage ? this.costOf(answer.usage) : estimateUsd);
          return answer;
        });
        const costUsd = this.costOf(completion.usage);
        this.counters.promptTokens += completion.usage?.prompt_tokens ?? 0;
        this.counters.completionTokens += completion.usage?.completion_tokens ?? 0;
        this.counters.costUsd += costUsd;
        return { ok: true, completion, cached: false, attempts: attempt, costUsd, latencyMs: latencyOf(completion) };
      } catch (err) {
        // Stopped (cancelled, past the deadline, or the endpoint is down): no classification, no retry.
        if (this.signal.aborted) throw this.signal.reason;
        // Not the endpoint's doing (e.g. the cache could not be written): surface it as it is.
        if (!sent || answered) throw err;
        if (timedOut || err instanceof APIConnectionTimeoutError) {
          this.counters.timeouts++;
          this.countStatus('timeout');
          last = this.fail('timeout', `no response within ${this.config.timeoutMs} ms`, attempt);
        } else if (err instanceof APIConnectionError) {
          this.counters.connectionErrors++;
          this.countStatus('connection_error');
          last = this.fail('connection_error', err.message, attempt);
        } else if (err instanceof APIError && typeof err.status === 'number') {
          if (err.status === 429) this.counters.rateLimited++;
          if (err.status >= 500) this.counters.serverErrors++;
          this.countStatus(String(err.status));
          // An error status is not billed; a timeout or a lost connection may have been, so it stays reserved.
          await reservation?.unbilled();
          last = this.fail('http_error', err.message, attempt, err.status);
          if (!isRetryableStatus(err.status)) break;
          const asked = retryAfterMs(err.headers);
          if (asked !== undefined && asked > backoff.maxRetryAfterMs) {
            last = this.fail('http_error', `${err.message} (Retry-After ${Math.round(asked)} ms is over the ${backoff.maxRetryAfterMs} ms we wait)`, attempt, err.status);
            break;
          }
          delay = asked;
        } else {
          // Not an HTTP problem (e.g. a body that is not JSON): report it like a failed request.
          this.countStatus('unreadable_answer');
          last = this.fail('http_error', (err as Error).message ?? String(err), attempt);
          break;
        }
      }
      if (attempt <= maxRetries) {
        const base = Math.min(backoff.maxMs, backoff.initialMs * Math.pow(backoff.factor, attempt - 1));
        const wait = delay ?? base * (1 + backoff.jitter * (2 * this.random() - 1));
        if (waited + wait > backoff.maxTotalWaitMs) {
          last = { ...last, message: `${last.message} (gave up: retrying would wait over ${backoff.maxTotalWaitMs} ms in total)` };
          break;
        }
        waited += wait;
        log.debug('retrying chat request', { attempt, kind: last.kind, status: last.status, waitMs: Math.round(wait) });
        await this.sleep(wait);
      }
    }
    return last;
  }
}

/** An endpoint's identity without a URL's query string or fragment (the endpoints file refuses them; a client built otherwise may have one). */
function withoutQuery(endpoint: string): string {
  return endpoint.replace(/[?#]\S*/, '');
}

/**
 * An endpoint's error text as it is passed on (into sample errors, artifacts and failure messages): one line
 * of printable characters, at most ERROR_TEXT_LIMIT of them. Scrubbed before it is cut, so that no cut
 * leaves part of a key that redaction would no longer recognise.
 */
function boundedErrorText(text: string): string {
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  return line.length > ERROR_TEXT_LIMIT ? `${line.slice(0, ERROR_TEXT_LIMIT)}...` : line;
}
