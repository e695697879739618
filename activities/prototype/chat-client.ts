// One chat-completions transport for the teacher and the judge: any OpenAI-compatible endpoint through the
// `openai` SDK, with a request cache, a concurrency limit, a per-request timeout, our own retry loop
// (backoff on 408/409/429/5xx, timeouts and connection errors, honouring Retry-After) and cost from `usage`.
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { z } from 'zod';
import { createLogger } from '../../config/logger';
import { RequestCache, requestCacheKey } from './request-cache';

const log = createLogger('chat-client');

export const ChatClientConfigSchema = z.object({
  /** e.g. https://api.openai.com/v1, http://127.0.0.1:8787/v1 (teacher simulator), a vLLM or Ollama server. */
  baseURL: z.string().url(),
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
      /** Longest Retry-After honoured as given; longer values are capped to this. */
      maxRetryAfterMs: z.number().min(0).default(60_000),
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
  /** Folder of the request cache; no cache when absent. */
  cacheDir: z.string().min(1).optional(),
});
export type ChatClientConfig = z.input<typeof ChatClientConfigSchema>;
export type ResolvedChatClientConfig = z.output<typeof ChatClientConfigSchema>;

export type ChatRequest = Omit<ChatCompletionCreateParamsNonStreaming, 'model' | 'stream'>;

export type ChatFailureKind = 'http_error' | 'timeout' | 'connection_error';

export type ChatOutcome =
  | { ok: true; completion: ChatCompletion; cached: boolean; attempts: number; costUsd: number }
  | { ok: false; kind: ChatFailureKind; status?: number; message: string; attempts: number };

export interface ChatClientStats {
  /** HTTP attempts made (first tries and retries). */
  httpRequests: number;
  /** Requests answered from the cache (nothing paid). */
  cacheHits: number;
  /** Identical requests that joined one already in flight (nothing paid twice). */
  joinedInFlight: number;
  retries: number;
  rateLimited: number;
  serverErrors: number;
  timeouts: number;
  connectionErrors: number;
  /** Requests that failed for good (after retries, or with a non-retryable status). */
  failures: Record<ChatFailureKind, number>;
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
    retries: 0,
    rateLimited: 0,
    serverErrors: 0,
    timeouts: 0,
    connectionErrors: 0,
    failures: { http_error: 0, timeout: 0, connection_error: 0 },
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

export interface ChatClientDeps {
  /** Injected for tests; defaults to setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export class ChatClient {
  readonly config: ResolvedChatClientConfig;
  private readonly openai: OpenAI;
  private readonly cache?: RequestCache;
  private readonly limit: ConcurrencyLimit;
  private readonly inFlight = new Map<string, Promise<ChatOutcome>>();
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private counters = emptyChatClientStats();

  constructor(config: ChatClientConfig, deps: ChatClientDeps = {}) {
    this.config = ChatClientConfigSchema.parse(config);
    this.openai = new OpenAI({ baseURL: this.config.baseURL, apiKey: this.config.apiKey, maxRetries: 0, timeout: this.config.timeoutMs });
    this.cache = this.config.cacheDir ? new RequestCache(this.config.cacheDir) : undefined;
    this.limit = new ConcurrencyLimit(this.config.concurrency);
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = deps.random ?? Math.random;
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
    const { messages, tools, ...parameters } = request;
    const key = requestCacheKey({ model: this.config.model, messages, tools, parameters, sampleIndex });
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
    if (hit) {
      this.counters.cacheHits++;
      this.counters.cachedPromptTokens += hit.usage?.prompt_tokens ?? 0;
      this.counters.cachedCompletionTokens += hit.usage?.completion_tokens ?? 0;
      return { ok: true, completion: hit, cached: true, attempts: 0, costUsd: 0 };
    }
    const { backoff, maxRetries } = this.config;
    let last: Extract<ChatOutcome, { ok: false }> = { ok: false, kind: 'connection_error', message: 'not attempted', attempts: 0 };
    for (let attempt = 1; attempt <= maxRetries + 1; attempt++) {
      if (attempt > 1) this.counters.retries++;
      this.counters.httpRequests++;
      let delay: number | undefined;
      // Our own deadline (the SDK's is a backstop): whether a request timed out must not depend on how the
      // runtime reports an aborted fetch.
      let timedOut = false;
      try {
        const completion = await this.limit.run(async () => {
          const deadline = new AbortController();
          const timer = setTimeout(() => {
            timedOut = true;
            deadline.abort();
          }, this.config.timeoutMs);
          let answer: ChatCompletion;
          try {
            answer = await this.openai.chat.completions.create(
              { ...request, model: this.config.model, stream: false },
              { timeout: this.config.timeoutMs + 5_000, maxRetries: 0, signal: deadline.signal },
            );
          } finally {
            clearTimeout(timer);
          }
          // The slot is held until the paid answer is on disk: a crash loses at most `concurrency` answers.
          if (this.cache) await this.cache.put(key, answer);
          return answer;
        });
        const costUsd = this.costOf(completion.usage);
        this.counters.promptTokens += completion.usage?.prompt_tokens ?? 0;
        this.counters.completionTokens += completion.usage?.completion_tokens ?? 0;
        this.counters.costUsd += costUsd;
        return { ok: true, completion, cached: false, attempts: attempt, costUsd };
      } catch (err) {
        if (timedOut || err instanceof APIConnectionTimeoutError) {
          this.counters.timeouts++;
          last = { ok: false, kind: 'timeout', message: `no response within ${this.config.timeoutMs} ms`, attempts: attempt };
        } else if (err instanceof APIConnectionError) {
          this.counters.connectionErrors++;
          last = { ok: false, kind: 'connection_error', message: err.message, attempts: attempt };
        } else if (err instanceof APIError && typeof err.status === 'number') {
          if (err.status === 429) this.counters.rateLimited++;
          if (err.status >= 500) this.counters.serverErrors++;
          last = { ok: false, kind: 'http_error', status: err.status, message: err.message, attempts: attempt };
          if (!isRetryableStatus(err.status)) break;
          const asked = retryAfterMs(err.headers);
          if (asked !== undefined) delay = Math.min(asked, backoff.maxRetryAfterMs);
        } else {
          // Not an HTTP problem (e.g. a body that is not JSON): report it like a failed request.
          last = { ok: false, kind: 'http_error', message: (err as Error).message ?? String(err), attempts: attempt };
          break;
        }
      }
      if (attempt <= maxRetries) {
        const base = Math.min(backoff.maxMs, backoff.initialMs * Math.pow(backoff.factor, attempt - 1));
        const wait = delay ?? base * (1 + backoff.jitter * (2 * this.random() - 1));
        log.debug('retrying chat request', { attempt, kind: last.kind, status: last.status, waitMs: Math.round(wait) });
        await this.sleep(wait);
      }
    }
    this.counters.failures[last.kind]++;
    return last;
  }
}
