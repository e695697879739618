// The student server: an OpenAI-compatible chat-completions endpoint (tool calls) in front of a loaded
// student, so that a service that calls the teacher through the `openai` client switches by base URL.
//   POST /v1/chat/completions   the student's call as a tool_calls message (+ the `supertiny` object)
//   GET  /v1/models[/ID]        the served model
//   GET  /healthz               200 while serving, 503 while shutting down
//   GET  /metrics               Prometheus text format
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../../config/logger';
import type { RuntimePrediction, StudentRuntime } from '../student';
import type { TeacherCascade } from './cascade';
import { MicroBatcher } from './micro-batcher';
import { ThreadedStudent } from './student-thread';
import { Counter, Gauge, Histogram, MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from './prometheus';
import { offeredFunctions, parseChatRequest, ServeError, type StudentChatCompletion, type SupertinyAnswerInfo, toolCallCompletion, userInput } from './protocol';

const log = createLogger('serve');

export interface StudentServerOptions {
  /** A loaded student; loaded with its task, so that its calls are validated. The caller releases it. */
  student: StudentRuntime;
  /** The output functions of the student's task (what a request may offer). */
  functionNames: readonly string[];
  /** The name clients put in `model`; any other name is a 404 model_not_found. */
  modelName: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** When set, /v1/* needs `Authorization: Bearer <apiToken>`. */
  apiToken?: string;
  /** Request body limit in bytes (413 above). Default 64 KiB. */
  maxBodyBytes?: number;
  /** Most requests per predictBatch call. Default 32. */
  maxBatch?: number;
  /** How long an idle model waits for more requests before running a batch, ms. Default 0 (under load, batches form while the model is busy). */
  batchWaitMs?: number;
  /** Sends low-confidence requests to the teacher. */
  cascade?: TeacherCascade;
  /** How long close() lets in-flight requests finish before it drops their connections, ms. Default 10 s. */
  shutdownTimeoutMs?: number;
}

export interface ServeMetrics {
  registry: MetricsRegistry;
  httpRequests: Counter;
  chatLatency: Histogram;
  batchSize: Histogram;
  confidence: Histogram;
  teacherRequests: Counter;
  teacherFallbacks: Counter;
  teacherTokens: Counter;
  teacherCost: Counter;
}

export interface RunningStudentServer {
  /** Base URL for an OpenAI client, ending in /v1. */
  url: string;
  port: number;
  metrics: ServeMetrics;
  /** Stops accepting connections, lets in-flight requests finish (up to shutdownTimeoutMs), then resolves. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
const LATENCY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
const CONFIDENCE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1];
/** The routes metrics are labelled with; anything else is "other", so a scan cannot grow the series. */
const ROUTES = new Set(['/v1/chat/completions', '/v1/models', '/healthz', '/metrics']);

function createMetrics(inFlight: () => number, queued: () => number): ServeMetrics {
  const registry = new MetricsRegistry();
  const metrics: ServeMetrics = {
    registry,
    httpRequests: registry.register(new Counter('supertiny_http_requests_total', 'HTTP requests by route and status code.')),
    chatLatency: registry.register(
      new Histogram('supertiny_chat_completion_duration_seconds', 'Chat completion latency by who answered (student, teacher, or error).', LATENCY_BUCKETS_S),
    ),
    batchSize: registry.register(new Histogram('supertiny_batch_size', 'Requests per student predictBatch call (micro-batching).', BATCH_BUCKETS)),
    confidence: registry.register(new Histogram('supertiny_student_confidence', "The student's confidence in its answers.", CONFIDENCE_BUCKETS)),
    teacherRequests: registry.register(new Counter('supertiny_teacher_requests_total', 'Requests the cascade sent to the teacher.')),
    teacherFallbacks: registry.register(
      new Counter('supertiny_teacher_fallbacks_total', "Cascade requests the teacher failed (by reason), answered by the student's call instead."),
    ),
    teacherTokens: registry.register(new Counter('supertiny_teacher_tokens_total', 'Tokens the teacher was paid for (kind: prompt or completion).')),
    teacherCost: registry.register(new Counter('supertiny_teacher_cost_usd_total', "The teacher's cost at the endpoint's configured prices, USD.")),
  };
  registry.register(new Gauge('supertiny_requests_in_flight', 'HTTP requests being served.', inFlight));
  registry.register(new Gauge('supertiny_batch_queue_length', 'Requests waiting for the next student batch.', queued));
  return metrics;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The body as text; a body over `limit` bytes is drained (so that the client reads the answer) and refused with 413. */
async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const tooLarge = () =>
    new ServeError(413, 'invalid_request_error', `request body is larger than the limit of ${limit} bytes`, null, 'request_too_large', { connection: 'close' });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw tooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const digest = (text: string) => createHash('sha256').update(text).digest();

export async function startStudentServer(options: StudentServerOptions): Promise<RunningStudentServer> {
  const { student, modelName, cascade } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const host = options.host ?? '127.0.0.1';
  // Compared as digests: equal length, so timingSafeEqual never throws and the length does not leak.
  const tokenDigest = options.apiToken ? digest(options.apiToken) : undefined;
  let inFlight = 0;
  let shuttingDown = false;
  let drained: (() => void) | undefined;

  const batcher: MicroBatcher<string, RuntimePrediction> = new MicroBatcher((inputs) => student.predictBatch(inputs, { batchSize: inputs.length }), {
    maxBatch: options.maxBatch ?? 32,
    maxWaitMs: options.batchWaitMs ?? 0,
    onBatch: (size) => metrics.batchSize.observe(size),
  });
  const metrics = createMetrics(() => inFlight, () => batcher.waiting);

  const authorize = (req: IncomingMessage) => {
    if (!tokenDigest) return;
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (!token || !timingSafeEqual(digest(token), tokenDigest)) {
      throw new ServeError(401, 'invalid_request_error', 'Incorrect API key provided: pass the server token as the bearer token (OpenAI client: apiKey).', null, 'invalid_api_key', {
        'www-authenticate': 'Bearer',
      });
    }
  };

  const modelObject = () => ({ id: modelName, object: 'model', created: 0, owned_by: `supertiny-${student.family}-student` });

  const chatCompletion = async (req: IncomingMessage): Promise<StudentChatCompletion> => {
    const request = parseChatRequest(await readBody(req, maxBodyBytes));
    if (request.model !== modelName) {
      throw new ServeError(404, 'invalid_request_error', `The model "${request.model}" does not exist; this server serves "${modelName}".`, 'model', 'model_not_found');
    }
    const offered = offeredFunctions(request, options.functionNames);
    const input = userInput(request);
    const prediction = await batcher.submit(input);
    metrics.confidence.observe(prediction.confidence);
    const call = prediction.call && offered.has(prediction.call.name) ? prediction.call : undefined;
    const info: SupertinyAnswerInfo = { confidence: prediction.confidence, answered_by: 'student', family: student.family };
    if (cascade) {
      info.cascade_threshold = cascade.threshold;
      if (cascade.escalates(prediction.confidence, call !== undefined)) {
        metrics.teacherRequests.inc();
        const answer = await cascade.ask(input, offered);
        metrics.teacherTokens.inc({ kind: 'prompt' }, answer.usage.promptTokens);
        metrics.teacherTokens.inc({ kind: 'completion' }, answer.usage.completionTokens);
        metrics.teacherCost.inc({}, answer.usage.costUsd);
        if (answer.ok) {
          return toolCallCompletion(answer.call, cascade.teacherModel, answer.usage, { ...info, answered_by: 'teacher' });
        }
        metrics.teacherFallbacks.inc({ reason: answer.reason });
        info.teacher_error = answer.error;
        log.warn('the teacher failed; answering with the student', { reason: answer.reason, error: answer.error });
      }
    }
    if (!call) {
      const teacher = info.teacher_error ? ` (the teacher failed too: ${info.teacher_error})` : '';
      if (!prediction.call) {
        throw new ServeError(422, 'model_error', `the student produced no valid call: ${prediction.errors?.join('; ') ?? 'no answer'}${teacher}`, null, 'no_call');
      }
      const param = typeof request.tool_choice === 'object' ? 'tool_choice' : 'tools';
      throw new ServeError(
        422,
        'invalid_request_error',
        `the student's answer calls "${prediction.call.name}", which the request does not offer (${[...offered].join(', ')})${teacher}`,
        param,
        'call_not_offered',
      );
    }
    return toolCallCompletion(call, modelName, { promptTokens: 0, completionTokens: 0 }, info);
  };

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<string> => {
    const method = req.method ?? 'GET';
    const allow = (expected: string) => {
      if (method !== expected) throw new ServeError(405, 'invalid_request_error', `${method} ${path} is not allowed; use ${expected}`, null, 'method_not_allowed', { allow: expected });
    };
    if (path === '/healthz') {
      allow('GET');
      // A dead student thread makes the server unhealthy, so that an orchestrator restarts it.
      const failure = student instanceof ThreadedStudent ? student.failure : undefined;
      const status = shuttingDown ? 'shutting_down' : failure ? 'student_failed' : 'ok';
      sendJson(res, status === 'ok' ? 200 : 503, { status, model: modelName, family: student.family, cascade: cascade !== undefined, ...(failure && { error: failure.message }) });
      return 'none';
    }
    if (path === '/metrics') {
      allow('GET');
      const text = metrics.registry.render();
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return 'none';
    }
    if (path.startsWith('/v1/')) authorize(req);
    if (path === '/v1/models') {
      allow('GET');
      sendJson(res, 200, { object: 'list', data: [modelObject()] });
      return 'none';
    }
    if (path.startsWith('/v1/models/')) {
      allow('GET');
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (id !== modelName) throw new ServeError(404, 'invalid_request_error', `The model "${id}" does not exist; this server serves "${modelName}".`, 'model', 'model_not_found');
      sendJson(res, 200, modelObject());
      return 'none';
    }
    if (path === '/v1/chat/completions') {
      allow('POST');
      const completion = await chatCompletion(req);
      sendJson(res, 200, completion);
      return completion.supertiny.answered_by;
    }
    throw new ServeError(404, 'invalid_request_error', `Invalid URL (${method} ${path})`, null, 'unknown_url');
  };

  const server = createServer((req, res) => {
    const started = performance.now();
    inFlight++;
    // While shutting down, every answer closes its connection, so that keep-alive clients let go.
    if (shuttingDown) res.setHeader('connection', 'close');
    const path = new URL(req.url ?? '/', 'http://student').pathname.replace(/\/+$/, '') || '/';
    const routeLabel = ROUTES.has(path) ? path : path.startsWith('/v1/models/') ? '/v1/models' : 'other';
    route(req, res, path)
      .then(
        (answeredBy) => answeredBy,
        (err) => {
          const error = err instanceof ServeError ? err : new ServeError(500, 'server_error', `the student server failed: ${(err as Error).message}`);
          if (error.status >= 500) log.error('request failed', { path, error: (err as Error).message });
          if (res.headersSent) res.destroy();
          else sendJson(res, error.status, error.body(), error.headers);
          return 'error';
        },
      )
      .then((answeredBy) => {
        metrics.httpRequests.inc({ route: routeLabel, status: String(res.statusCode) });
        if (routeLabel === '/v1/chat/completions') metrics.chatLatency.observe((performance.now() - started) / 1000, { answered_by: answeredBy });
        inFlight--;
        if (shuttingDown && inFlight === 0) drained?.();
      });
  });
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const idle = inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.shutdownTimeoutMs ?? 10_000)));
      if ((await Promise.race([idle, deadline])) === 'timeout') log.warn(`shutdown: ${inFlight} request(s) still in flight after the timeout; dropping them`);
      clearTimeout(timer);
      // Answered keep-alive connections are idle now; drop them (and, after a timeout, the unfinished ones).
      server.closeAllConnections();
      await closed;
    })());

  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/v1`, port, metrics, close };
}


