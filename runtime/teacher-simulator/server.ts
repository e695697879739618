// The TEACHER SIMULATOR's OpenAI-compatible HTTP server (node:http):
//   POST /v1/chat/completions   answers through the simulator, with injected latency, 429 and 500
//   GET  /v1/models             the one simulated model
//   GET  /v1/simulator/stats    request counts (also by content hash) so tests can see repeats
//   POST /v1/simulator/reset    zeroes the counts
//   GET  /healthz               200 while it serves
// Injected faults are drawn per (content hash, attempt number), so a retried request eventually passes
// and a run is reproducible whatever the arrival order.
// Its HTTP side is hardened as the student server's (runtime/http): any bytes get a 4xx, a generic 500 or a
// closed connection, and the server goes on.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { createLogger } from '../../config/logger';
import { BearerAuth, BodyTooLargeError, createLimitedServer, parseJsonBody, readBody, requestPath, sendJson, type ServerLimits } from '../http';
import type { TaskSpec } from '../../tasks/define';
import { loadDefaultTask } from '../../tasks/built-in';
import { simulatorKnowledge } from './annotations';
import { ErrorModelConfig } from './error-model';
import { ChatRequestSchema, ChoiceKind, contentHash, SimulatorRole, TeacherSimulator } from './simulator';
import { SeededRandom } from './random';

const log = createLogger('teacher-simulator');

export const FaultConfigSchema = z.object({
  /** Mean added latency per chat request, in ms (uniform between 0.5x and 1.5x of it). */
  latencyMs: z.number().min(0).default(0),
  /** Fraction of chat requests answered 429 (with Retry-After) / 500. */
  rate429: z.number().min(0).max(1).default(0),
  rate500: z.number().min(0).max(1).default(0),
  /** Retry-After sent with a 429, in ms (`retry-after-ms`; `retry-after` carries it rounded up to seconds). */
  retryAfterMs: z.number().int().min(0).default(1000),
});
export type FaultConfig = z.input<typeof FaultConfigSchema>;

export interface TeacherSimulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Seed of the error model and of the fault draws. */
  seed?: string | number;
  /** The model name it reports and answers as. */
  model?: string;
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The task it plays, answering from its gold calls (default: the default task from its default data). */
  task?: TaskSpec<any>;
  errorModel?: Partial<ErrorModelConfig>;
  faults?: FaultConfig;
  /** Awaited when a chat request arrives (before any injected latency), e.g. by tests that time a crash. */
  onChatRequest?: (info: { hash: string; attempt: number }) => void | Promise<void>;
  /**
   * Awaited once an answer is computed and billed, just before it is sent: a test that SIGKILLs its client
   * here puts the crash in the window between a paid answer and the client's cache.
   */
  onAnswer?: (info: { hash: string; attempt: number }) => void | Promise<void>;
  /**
   * Honour the `Idempotency-Key` request header (default true), as payment APIs and some LLM gateways do: a
   * key whose request was answered gets the same answer again, replayed and not billed; a key reused with a
   * different body is refused (422); one whose first request is still running gets 409.
   */
  idempotency?: boolean;
  /** The most Idempotency-Keys remembered; the least recently used is forgotten first. Default 10,000. */
  idempotencyMaxKeys?: number;
  /** Request body limit in bytes (413 above). Default 4 MiB. */
  maxBodyBytes?: number;
  /** Connection and time limits of the HTTP server (defaults: DEFAULT_SERVER_LIMITS). */
  limits?: Partial<ServerLimits>;
}

export interface TeacherSimulatorStats {
  /** Every HTTP request received. */
  requests: number;
  /** POST /v1/chat/completions received, answered 200, and refused by injection or validation. */
  chatRequests: number;
  completions: number;
  injected429: number;
  injected500: number;
  badRequests: number;
  promptTokens: number;
  completionTokens: number;
  byRole: Record<SimulatorRole, number>;
  byChoiceKind: Partial<Record<ChoiceKind, number>>;
  unknownUtterances: number;
  /** Chat requests received per content hash (sha256 of the canonical request JSON). */
  receivedByContentHash: Record<string, number>;
  /** Chat requests answered 200 per content hash. */
  answeredByContentHash: Record<string, number>;
  /** Content hashes answered more than once: what a client cache should keep at 0. */
  repeatedAnswers: number;
  /** Requests whose client hung up before the answer was ready: not answered, not counted as served. */
  abandoned: number;
  /** Requests answered again from their Idempotency-Key's stored answer: sent twice, billed once. */
  replayed: number;
}

export interface RunningTeacherSimulator {
  /** Base URL for an OpenAI client, ending in /v1. */
  url: string;
  port: number;
  model: string;
  simulator: TeacherSimulator;
  stats(): TeacherSimulatorStats;
  resetStats(): void;
  close(): Promise<void>;
}

function emptyStats(): TeacherSimulatorStats {
  return {
    requests: 0,
    chatRequests: 0,
    completions: 0,
    injected429: 0,
    injected500: 0,
    badRequests: 0,
    promptTokens: 0,
    completionTokens: 0,
    byRole: { route: 0, final: 0, judge: 0, text: 0, unsupported: 0 },
    byChoiceKind: {},
    unknownUtterances: 0,
    receivedByContentHash: {},
    answeredByContentHash: {},
    repeatedAnswers: 0,
    abandoned: 0,
    replayed: 0,
  };
}

function apiError(res: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { message, type, param: null, code: type } }, headers);
}

const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_IDEMPOTENCY_MAX_KEYS = 10_000;

/** Idempotency-Key -> the content hash it was first used with and, once answered, the answer; bounded, least recently used out first. */
class IdempotencyKeys {
  private readonly entries = new Map<string, { hash: string; body?: unknown }>();
  constructor(private readonly maxKeys: number) {}

  get(key: string): { hash: string; body?: unknown } | undefined {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key); // re-inserted: Map order is the recency order
      this.entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, entry: { hash: string; body?: unknown }): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.maxKeys) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v && v.length <= 256 ? v : undefined;
}

/** Starts the teacher simulator on a port (0 = any free one). */
export async function startTeacherSimulator(options: TeacherSimulatorOptions = {}): Promise<RunningTeacherSimulator> {
  const task = options.task ?? (await loadDefaultTask());
  const model = options.model ?? 'teacher-simulator';
  const seed = options.seed ?? 0;
  const faults = FaultConfigSchema.parse(options.faults ?? {});
  const simulator = new TeacherSimulator(await simulatorKnowledge(task), { seed, model, errorModel: options.errorModel });
  let stats = emptyStats();
  const idempotencyMaxKeys = options.idempotencyMaxKeys ?? DEFAULT_IDEMPOTENCY_MAX_KEYS;
  if (!(Number.isInteger(idempotencyMaxKeys) && idempotencyMaxKeys >= 1)) throw new Error(`idempotencyMaxKeys must be a positive integer, got ${idempotencyMaxKeys}`);
  const idempotent = new IdempotencyKeys(idempotencyMaxKeys);
  const auth = options.apiKey !== undefined ? new BearerAuth(options.apiKey) : undefined;

  const handleChat = async (req: IncomingMessage, res: ServerResponse) => {
    let body: string;
    try {
      body = await readBody(req, options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      stats.badRequests++;
      return apiError(res, 413, 'request_too_large', err.message, { connection: 'close' });
    }
    let raw: unknown;
    try {
      raw = parseJsonBody(body);
    } catch (err) {
      stats.badRequests++;
      return apiError(res, 400, 'invalid_request_error', `request body is not valid JSON: ${(err as Error).message}`);
    }
    stats.chatRequests++;
    const hash = contentHash(raw);
    const attempt = (stats.receivedByContentHash[hash] = (stats.receivedByContentHash[hash] ?? 0) + 1);
    const fault = new SeededRandom(seed, 'fault', hash, attempt);
    const idempotencyKey = options.idempotency === false ? undefined : headerValue(req.headers['idempotency-key']);
    if (idempotencyKey !== undefined) {
      const seen = idempotent.get(idempotencyKey);
      if (seen && seen.hash !== hash) {
        stats.badRequests++;
        return apiError(res, 422, 'idempotency_key_reused', 'This Idempotency-Key was used with a different request body.');
      }
      if (seen?.body !== undefined) {
        stats.replayed++;
        return sendJson(res, 200, seen.body, { 'idempotent-replayed': 'true' });
      }
      if (seen) return apiError(res, 409, 'idempotency_conflict', 'A request with this Idempotency-Key is still in progress.');
    }

    // Taken at arrival, as a server that records the key first does; given back unless the request is answered.
    if (idempotencyKey !== undefined) idempotent.set(idempotencyKey, { hash });
    try {
      return await answerChat(req, res, raw, hash, attempt, fault, idempotencyKey);
    } finally {
      if (idempotencyKey !== undefined && idempotent.get(idempotencyKey)?.body === undefined) idempotent.delete(idempotencyKey);
    }
  };

  const answerChat = async (req: IncomingMessage, res: ServerResponse, raw: unknown, hash: string, attempt: number, fault: SeededRandom, idempotencyKey: string | undefined) => {
    await options.onChatRequest?.({ hash, attempt });
    if (faults.latencyMs > 0) await sleep(faults.latencyMs * fault.between(0.5, 1.5));
    // A client that died (e.g. SIGKILL) has closed its side: the socket has ended or is gone.
    if (res.destroyed || req.socket.destroyed || req.socket.readableEnded) {
      stats.abandoned++;
      return;
    }

    const u = fault.next();
    if (u < faults.rate429) {
      stats.injected429++;
      return apiError(res, 429, 'rate_limit_exceeded', 'Rate limit reached (injected by the teacher simulator).', {
        'retry-after': String(Math.ceil(faults.retryAfterMs / 1000)),
        'retry-after-ms': String(faults.retryAfterMs),
      });
    }
    if (u < faults.rate429 + faults.rate500) {
      stats.injected500++;
      return apiError(res, 500, 'server_error', 'Internal error (injected by the teacher simulator).');
    }

    const parsed = ChatRequestSchema.safeParse(raw);
    if (!parsed.success) {
      stats.badRequests++;
      const issue = parsed.error.issues[0];
      return apiError(res, 400, 'invalid_request_error', `${issue.path.join('.') || 'body'}: ${issue.message}`);
    }
    if (parsed.data.stream) {
      stats.badRequests++;
      return apiError(res, 400, 'invalid_request_error', 'stream=true is not supported by the teacher simulator');
    }
    if (parsed.data.model !== model) {
      stats.badRequests++;
      return apiError(res, 404, 'model_not_found', `The model "${parsed.data.model}" does not exist; the teacher simulator serves "${model}".`);
    }

    const completion = simulator.complete(parsed.data, hash);
    stats.completions++;
    const answered = (stats.answeredByContentHash[hash] = (stats.answeredByContentHash[hash] ?? 0) + 1);
    if (answered === 2) stats.repeatedAnswers++;
    stats.byRole[completion.role]++;
    if (!completion.known) stats.unknownUtterances++;
    for (const kind of completion.choiceKinds) stats.byChoiceKind[kind] = (stats.byChoiceKind[kind] ?? 0) + 1;
    const usage = completion.body.usage as { prompt_tokens: number; completion_tokens: number };
    stats.promptTokens += usage.prompt_tokens;
    stats.completionTokens += usage.completion_tokens;
    if (idempotencyKey !== undefined) idempotent.set(idempotencyKey, { hash, body: completion.body });
    await options.onAnswer?.({ hash, attempt });
    sendJson(res, 200, completion.body);
  };

  const handleRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    stats.requests++;
    const path = requestPath(req.url);
    const route = `${req.method} ${path}`;
    try {
      if (path === undefined) return apiError(res, 400, 'invalid_request_error', 'The request target is not a valid URL.');
      if (auth && path.startsWith('/v1/') && !path.startsWith('/v1/simulator/') && !auth.accepts(req.headers.authorization)) {
        return apiError(res, 401, 'invalid_api_key', 'Incorrect API key provided.');
      }
      switch (route) {
        case 'POST /v1/chat/completions':
          return await handleChat(req, res);
        case 'GET /v1/models':
          return sendJson(res, 200, { object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: 'supertiny-teacher-simulator' }] });
        case 'GET /healthz':
          return sendJson(res, 200, { status: 'ok', model });
        case 'GET /v1/simulator/stats':
          return sendJson(res, 200, stats);
        case 'POST /v1/simulator/reset':
          stats = emptyStats();
          return sendJson(res, 200, { ok: true });
        default:
          return apiError(res, 404, 'not_found', `no route ${route} on the teacher simulator`);
      }
    } catch (err) {
      if (res.destroyed || req.socket?.destroyed) return; // the client left: no one to answer
      const requestId = randomUUID();
      log.error('request failed', { requestId, route, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      if (res.headersSent) res.destroy();
      else apiError(res, 500, 'server_error', `The teacher simulator had an error while processing your request (request id ${requestId}).`);
    }
  };
  const server = createLimitedServer(options.limits ?? {}, handleRequest, { log });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/v1`,
    port,
    model,
    simulator,
    stats: () => structuredClone(stats),
    resetStats: () => {
      stats = emptyStats();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
