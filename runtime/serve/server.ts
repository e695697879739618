// The student server: an OpenAI-compatible chat-completions endpoint (tool calls) in front of a loaded
// student, so that a service that calls the teacher through the `openai` client switches by base URL.
//   POST /v1/chat/completions   the student's call as a tool_calls message (+ the `supertiny` object)
//   GET  /v1/models[/ID]        the served model
//   GET  /healthz               200 while serving, 503 while shutting down; the served version and the deployment's state
//   GET  /metrics               Prometheus text format
// No request can take it down: every byte sequence gets a 4xx, a 5xx without internal detail, or a closed
// connection, and one request's failure is that request's alone.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../../config/logger';
import { BearerAuth, BodyTooLargeError, createLimitedServer, isLoopbackHost, readBody, requestPath, sendJson, type ServerLimits } from '../http';
import { callArgumentsObject, type Call } from '../../tasks/call-format';
import type { RuntimeAnswer, StudentRuntime } from '../student';
import type { CaptureWriter, CapturedCall } from './capture';
import type { TeacherAnswer, TeacherCascade } from './cascade';
import type { DeploymentStatus } from './deployment-follower';
import { MicroBatcher, QueueFullError } from './micro-batcher';
import { ThreadedStudent } from './student-thread';
import { Counter, Gauge, Histogram, InfoGauge, type Metric, MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from './prometheus';
import { StudentHolder, type StudentLease } from './student-holder';
import { type ChatCompletionRequest, offeredFunctions, parseChatRequest, ServeError, type StudentChatCompletion, type SupertinyAnswerInfo, toolCallCompletion, userInput } from './protocol';

const log = createLogger('serve');

/** The response header naming the deployment version that answered (with a versioned student). */
export const MODEL_VERSION_HEADER = 'x-supertiny-model-version';

/** The name every student server also answers to, whatever its model is called (`model: "student"`). */
export const STUDENT_MODEL_ALIAS = 'student';

export interface StudentServerOptions {
  /**
   * A loaded student, loaded with its task so that its calls are validated; or a holder whose student can be
   * swapped while serving (each request keeps the student it started on). The caller releases it.
   */
  student: StudentRuntime | StudentHolder;
  /** With `serve --deployment`: the deployment's state for /healthz and its metrics for /metrics. */
  deployment?: { status(): DeploymentStatus; readonly metrics: readonly Metric[] };
  /** The output functions of the student's task (what a request may offer). */
  functionNames: readonly string[];
  /** The name clients put in `model` (or the alias "student"); any other name is a 404 model_not_found. */
  modelName: string;
  /** The loaded student folder's identity (e.g. its deployment version id), recorded with each captured line. Default: modelName. */
  modelVersion?: string;
  /** Default 127.0.0.1. Another address needs apiToken, or allowNoAuth. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** When set, /v1/* needs `Authorization: Bearer <apiToken>`. */
  apiToken?: string;
  /** Serve a non-loopback host without a token (logged as a warning); refused otherwise. */
  allowNoAuth?: boolean;
  /** Request body limit in bytes (413 above). Default 64 KiB. */
  maxBodyBytes?: number;
  /** Most requests per predictBatch call. Default 32. */
  maxBatch?: number;
  /** How long an idle model waits for more requests before running a batch, ms. Default 0 (under load, batches form while the model is busy). */
  batchWaitMs?: number;
  /** Most requests waiting for the student; one more is answered 503 with Retry-After. Default 256. */
  maxQueue?: number;
  /** How long a request may take from arrival to the student's answer, ms; then 503 with Retry-After. Default 10 s. */
  deadlineMs?: number;
  /** Connection and time limits of the HTTP server (defaults: DEFAULT_SERVER_LIMITS). */
  limits?: Partial<ServerLimits>;
  /** Sends low-confidence requests to the teacher. */
  cascade?: TeacherCascade;
  /** Records each chat completion the student answered (serve --capture); its counters join /metrics. The caller closes it. */
  capture?: CaptureWriter;
  /** How long close() lets in-flight requests finish before it drops their connections, ms. Default 10 s. */
  shutdownTimeoutMs?: number;
}

export interface ServeMetrics {
  registry: MetricsRegistry;
  httpRequests: Counter;
  chatLatency: Histogram;
  batchSize: Histogram;
  confidence: Histogram;
  shed: Counter;
  teacherRequests: Counter;
  teacherFallbacks: Counter;
  teacherLimited: Counter;
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
const DEFAULT_MAX_QUEUE = 256;
const DEFAULT_DEADLINE_MS = 10_000;
/** What an overloaded server asks a client to wait, s (the openai client honours it when it retries). */
const RETRY_AFTER_S = '1';
const LATENCY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
const CONFIDENCE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1];
/** The routes metrics are labelled with; anything else is "other", so a scan cannot grow the series. */
const ROUTES = new Set(['/v1/chat/completions', '/v1/models', '/healthz', '/metrics']);

function createMetrics(inFlight: () => number, queued: () => number, holder: StudentHolder, capture: CaptureWriter | undefined): ServeMetrics {
  const registry = new MetricsRegistry();
  const metrics: ServeMetrics = {
    registry,
    httpRequests: registry.register(new Counter('supertiny_http_requests_total', 'HTTP requests by route and status code.')),
    chatLatency: registry.register(
      new Histogram('supertiny_chat_completion_duration_seconds', 'Chat completion latency by who answered (student, teacher, or error).', LATENCY_BUCKETS_S),
    ),
    batchSize: registry.register(new Histogram('supertiny_batch_size', 'Requests per student predictBatch call (micro-batching).', BATCH_BUCKETS)),
    confidence: registry.register(new Histogram('supertiny_student_confidence', "The student's confidence in its answers.", CONFIDENCE_BUCKETS)),
    shed: registry.register(
      new Counter('supertiny_requests_shed_total', 'Requests not given to the student (reason: queue_full, deadline, client_gone).'),
    ),
    teacherRequests: registry.register(new Counter('supertiny_teacher_requests_total', 'Requests the cascade sent to the teacher.')),
    teacherFallbacks: registry.register(
      new Counter('supertiny_teacher_fallbacks_total', "Cascade requests the teacher failed (by reason), answered by the student's call instead."),
    ),
    teacherLimited: registry.register(
      new Counter('supertiny_teacher_limited_total', "Cascade requests kept from the teacher by a limit (rate or budget), answered by the student's call."),
    ),
    teacherTokens: registry.register(new Counter('supertiny_teacher_tokens_total', 'Tokens the teacher was paid for (kind: prompt or completion).')),
    teacherCost: registry.register(new Counter('supertiny_teacher_cost_usd_total', "The teacher's cost at the endpoint's configured prices, USD.")),
  };
  registry.register(new Gauge('supertiny_requests_in_flight', 'HTTP requests being served.', inFlight));
  registry.register(new Gauge('supertiny_batch_queue_length', 'Requests waiting for the next student batch.', queued));
  registry.register(
    new InfoGauge('supertiny_model_info', 'The student new requests get: its deployment version ("" for a plain folder) and family.', () => ({
      version: holder.version ?? '',
      family: holder.student.family,
    })),
  );
  registry.register(new Gauge('supertiny_model_draining_requests', 'Requests still running on a swapped-out student (released when 0).', () => holder.drainingRequests));
  if (capture) for (const counter of Object.values(capture.counters)) registry.register(counter);
  return metrics;
}

/** The request's client closed its connection before the answer: nobody is left to answer. */
class ClientGone extends Error {
  constructor() {
    super('the client closed the connection before the answer');
    this.name = 'ClientGone';
  }
}

const overloaded = (message: string, code: string) => new ServeError(503, 'server_error', message, null, code, { 'retry-after': RETRY_AFTER_S });

/** A server that would face the network without a bearer token, and the operator did not say so explicitly. */
export class ExposureError extends Error {
  constructor(host: string) {
    super(
      `refusing to serve on ${host} without a bearer token: anyone who reaches it could use /v1/* and the cascade's paid teacher. ` +
        'Set SUPERTINY_SERVE_TOKEN, bind a loopback address (127.0.0.1), or pass --allow-no-auth to accept the risk.',
    );
    this.name = 'ExposureError';
  }
}

/**
 * Whether a server on `host` may start: "ok", or "warn" for a non-loopback address without a token that the
 * operator allowed explicitly; throws ExposureError when it is not allowed.
 */
export function exposureCheck(host: string, hasToken: boolean, allowNoAuth: boolean): 'ok' | 'warn' {
  if (hasToken || isLoopbackHost(host)) return 'ok';
  if (!allowNoAuth) throw new ExposureError(host);
  return 'warn';
}

export async function startStudentServer(options: StudentServerOptions): Promise<RunningStudentServer> {
  const { modelName, cascade, deployment } = options;
  const holder = options.student instanceof StudentHolder ? options.student : new StudentHolder(options.student);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const host = options.host ?? '127.0.0.1';
  if (exposureCheck(host, Boolean(options.apiToken), options.allowNoAuth ?? false) === 'warn') log.warn(`WARNING: serving on ${host} WITHOUT AUTHENTICATION (--allow-no-auth): anyone who reaches this address can use /v1/* and the cascade's paid teacher`);
  const auth = options.apiToken ? new BearerAuth(options.apiToken) : undefined;
  if (auth?.weak) log.warn('the bearer token (SUPERTINY_SERVE_TOKEN) is shorter than 16 characters: easy to guess; use a long random one (e.g. `openssl rand -hex 32`)');
  let inFlight = 0;
  let shuttingDown = false;
  let drained: (() => void) | undefined;
  let budgetReported = false;

  // A batch may hold requests on two students for a moment after a swap: each student answers its own.
  const runBatch = async (items: { input: string; student: StudentRuntime }[]): Promise<RuntimeAnswer[]> => {
    const answers: RuntimeAnswer[] = new Array(items.length);
    for (const student of new Set(items.map((item) => item.student))) {
      const members = items.flatMap((item, i) => (item.student === student ? [i] : []));
      const own = await student.predictEach(members.map((i) => items[i].input), { batchSize: members.length });
      if (own.length !== members.length) throw new Error(`a batch of ${members.length} returned ${own.length} answers`);
      members.forEach((i, k) => (answers[i] = own[k]));
    }
    return answers;
  };
  const batcher: MicroBatcher<{ input: string; student: StudentRuntime }, RuntimeAnswer> = new MicroBatcher(runBatch, {
    maxBatch: options.maxBatch ?? 32,
    maxWaitMs: options.batchWaitMs ?? 0,
    maxQueue: options.maxQueue ?? DEFAULT_MAX_QUEUE,
    onBatch: (size) => metrics.batchSize.observe(size),
  });
  const metrics = createMetrics(() => inFlight, () => batcher.waiting, holder, options.capture);
  for (const metric of deployment?.metrics ?? []) metrics.registry.register(metric);

  const authorize = (req: IncomingMessage) => {
    if (auth && !auth.accepts(req.headers.authorization)) {
      throw new ServeError(401, 'invalid_request_error', 'Incorrect API key provided: pass the server token as the bearer token (OpenAI client: apiKey).', null, 'invalid_api_key', {
        'www-authenticate': 'Bearer',
      });
    }
  };

  const modelObject = () => ({ id: modelName, object: 'model', created: 0, owned_by: `supertiny-${holder.student.family}-student` });
  const servesModel = (name: string) => name === modelName || name === STUDENT_MODEL_ALIAS;
  const modelNotFound = (name: string) =>
    new ServeError(404, 'invalid_request_error', `The model "${name}" does not exist; this server serves "${modelName}" (alias "${STUDENT_MODEL_ALIAS}").`, 'model', 'model_not_found');

  /** The student's answer to one input, shed when the queue is full or `signal` ends the request first. */
  const studentAnswer = async (input: string, student: StudentRuntime, signal: AbortSignal) => {
    let answer: RuntimeAnswer;
    try {
      answer = await batcher.submit({ input, student }, signal);
    } catch (err) {
      if (err instanceof QueueFullError) {
        metrics.shed.inc({ reason: 'queue_full' });
        throw overloaded('The server is overloaded: too many requests wait for the student. Retry later.', 'queue_full');
      }
      if (err instanceof ServeError && err.code === 'deadline_exceeded') metrics.shed.inc({ reason: 'deadline' });
      if (err instanceof ClientGone) metrics.shed.inc({ reason: 'client_gone' });
      throw err;
    }
    if (answer.ok) return answer.prediction;
    if (answer.error.code === 'context_length_exceeded') {
      throw new ServeError(400, 'invalid_request_error', `${answer.error.message}: shorten the last user message`, 'messages', 'context_length_exceeded');
    }
    throw answer.error; // a refusal about the server's own options, not the request: an internal error
  };

  const capturedCall = (call: Call): CapturedCall => ({ name: call.name, arguments: callArgumentsObject(call) });
  /** One capture line (serve --capture): what the student and the teacher said, never a header or a token. */
  const capture = (
    model: { name: string; version: string },
    requestId: string,
    input: string,
    prediction: { call?: Call; confidence: number },
    escalated: boolean,
    teacher: TeacherAnswer | undefined,
    answeredBy: 'student' | 'none' = 'student',
  ) => {
    if (!options.capture) return;
    options.capture.record({
      id: requestId,
      model: model.name,
      model_version: model.version,
      input,
      student_call: prediction.call ? capturedCall(prediction.call) : null,
      student_confidence: prediction.confidence,
      cascaded: escalated,
      ...(escalated && cascade ? { teacher_model: cascade.teacherModel } : {}),
      ...(teacher?.ok ? { teacher_call: capturedCall(teacher.call) } : teacher ? { teacher_error: teacher.reason } : {}),
      answered_by: teacher?.ok ? 'teacher' : answeredBy,
    });
  };

  const chatCompletion = async (req: IncomingMessage, res: ServerResponse, requestId: string, signal: AbortSignal): Promise<StudentChatCompletion> => {
    let body: string;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      throw new ServeError(413, 'invalid_request_error', err.message, null, 'request_too_large', { connection: 'close' });
    }
    const request = parseChatRequest(body);
    if (!servesModel(request.model)) throw modelNotFound(request.model);
    const offered = offeredFunctions(request, options.functionNames);
    const input = userInput(request);
    // The request keeps the student it starts on to its end, whatever a swap does meanwhile.
    const lease = holder.acquire();
    try {
      if (lease.version !== undefined) res.setHeader(MODEL_VERSION_HEADER, lease.version);
      return await answerOn(lease, input, offered, request, requestId, signal);
    } finally {
      lease.release();
    }
  };

  const answerOn = async (
    { student, version }: StudentLease,
    input: string,
    offered: Set<string>,
    request: ChatCompletionRequest,
    requestId: string,
    signal: AbortSignal,
  ): Promise<StudentChatCompletion> => {
    const prediction = await studentAnswer(input, student, signal);
    metrics.confidence.observe(prediction.confidence);
    const call = prediction.call && offered.has(prediction.call.name) ? prediction.call : undefined;
    const info: SupertinyAnswerInfo = { confidence: prediction.confidence, answered_by: 'student', family: student.family };
    if (version !== undefined) info.model_version = version;
    // The version that answers is the lease's, not the server's: a swap may happen while this request runs.
    const model = { name: modelName, version: version ?? options.modelVersion ?? modelName };
    let escalated = false;
    let teacherAnswer: TeacherAnswer | undefined;
    if (cascade) {
      info.cascade_threshold = cascade.threshold;
      if (cascade.escalates(prediction.confidence, call !== undefined)) {
        escalated = true;
        const answer = (teacherAnswer = await cascade.ask(input, offered));
        if (answer.ok || (answer.reason !== 'rate' && answer.reason !== 'budget')) metrics.teacherRequests.inc();
        metrics.teacherTokens.inc({ kind: 'prompt' }, answer.usage.promptTokens);
        metrics.teacherTokens.inc({ kind: 'completion' }, answer.usage.completionTokens);
        metrics.teacherCost.inc({}, answer.usage.costUsd);
        if (answer.ok) {
          capture(model, requestId, input, prediction, escalated, answer);
          return toolCallCompletion(answer.call, cascade.teacherModel, answer.usage, { ...info, answered_by: 'teacher' });
        }
        // Clients see the kind only: the teacher's error text can quote its endpoint (a masked key tail).
        info.teacher_error = answer.reason;
        if (answer.reason === 'rate' || answer.reason === 'budget') {
          metrics.teacherLimited.inc({ limit: answer.reason });
          if (answer.reason === 'budget' && !budgetReported) {
            budgetReported = true;
            log.warn(`the teacher's spend cap is reached (${cascade.spent.toFixed(4)} USD): unsure requests get the student's answer from now on`);
          }
        } else {
          metrics.teacherFallbacks.inc({ reason: answer.reason.split(':')[0] });
          log.warn('the teacher failed; answering with the student', { requestId, reason: answer.reason, detail: answer.detail });
        }
      }
    }
    capture(model, requestId, input, prediction, escalated, teacherAnswer, call ? 'student' : 'none');
    if (!call) {
      const teacher = info.teacher_error ? ` (the teacher did not answer: ${info.teacher_error})` : '';
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

  const route = async (req: IncomingMessage, res: ServerResponse, path: string, requestId: string, signal: AbortSignal): Promise<string> => {
    const method = req.method ?? 'GET';
    const allow = (expected: string) => {
      if (method !== expected) throw new ServeError(405, 'invalid_request_error', `${method} ${path} is not allowed; use ${expected}`, null, 'method_not_allowed', { allow: expected });
    };
    if (path === '/healthz') {
      allow('GET');
      // A dead student thread makes the server unhealthy, so that an orchestrator restarts it (why is in the log).
      const student = holder.student;
      const failed = student instanceof ThreadedStudent && student.failure !== undefined;
      const status = shuttingDown ? 'shutting_down' : failed ? 'student_failed' : 'ok';
      sendJson(res, status === 'ok' ? 200 : 503, {
        status,
        model: modelName,
        family: student.family,
        ...(holder.version !== undefined ? { version: holder.version } : {}),
        cascade: cascade !== undefined,
        ...(deployment ? { deployment: deployment.status() } : {}),
      });
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
      const raw = path.slice('/v1/models/'.length);
      let id: string;
      try {
        id = decodeURIComponent(raw);
      } catch {
        throw modelNotFound(raw); // malformed percent-encoding (e.g. %E0%A4%A) names no model
      }
      if (!servesModel(id)) throw modelNotFound(id);
      sendJson(res, 200, modelObject());
      return 'none';
    }
    if (path === '/v1/chat/completions') {
      allow('POST');
      const completion = await chatCompletion(req, res, requestId, signal);
      sendJson(res, 200, completion);
      return completion.supertiny.answered_by;
    }
    throw new ServeError(404, 'invalid_request_error', `Invalid URL (${method} ${path})`, null, 'unknown_url');
  };

  /** Answers a failed request: its own ServeError, or a generic 500 whose detail goes to the log only. */
  const answerError = (err: unknown, req: IncomingMessage, res: ServerResponse, requestId: string, path: string | undefined) => {
    // The client left (mid-body, or while its request waited): there is no one to answer.
    if (err instanceof ClientGone || res.destroyed || req.socket?.destroyed) return;
    let error: ServeError;
    if (err instanceof ServeError) {
      error = err;
    } else {
      log.error('request failed', { requestId, path, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      error = new ServeError(500, 'server_error', `The server had an error while processing your request (request id ${requestId}); its log has the detail.`, null, 'internal_error');
    }
    if (res.headersSent) res.destroy();
    else sendJson(res, error.status, error.body(), error.headers);
  };

  const handleRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const requestId = `req_${randomUUID().replace(/-/g, '')}`;
    inFlight++;
    res.setHeader('x-request-id', requestId);
    // While shutting down, every answer closes its connection, so that keep-alive clients let go.
    if (shuttingDown) res.setHeader('connection', 'close');
    const path = requestPath(req.url);
    const routeLabel = path === undefined ? 'other' : ROUTES.has(path) ? path : path.startsWith('/v1/models/') ? '/v1/models' : 'other';
    // The request ends at its deadline or when its client leaves; waiting work for it is dropped then.
    const ended = new AbortController();
    const deadline = setTimeout(
      () => ended.abort(overloaded(`The request did not get the student's answer within ${deadlineMs} ms: the server is overloaded. Retry later.`, 'deadline_exceeded')),
      deadlineMs,
    );
    res.once('close', () => {
      clearTimeout(deadline);
      if (!res.writableFinished) ended.abort(new ClientGone());
    });
    let answeredBy = 'error';
    try {
      if (path === undefined) throw new ServeError(400, 'invalid_request_error', 'The request target is not a valid URL.', null, 'invalid_url');
      answeredBy = await route(req, res, path, requestId, ended.signal);
    } catch (err) {
      answerError(err, req, res, requestId, path);
    } finally {
      clearTimeout(deadline);
      metrics.httpRequests.inc({ route: routeLabel, status: String(res.statusCode) });
      if (routeLabel === '/v1/chat/completions') metrics.chatLatency.observe((performance.now() - started) / 1000, { answered_by: answeredBy });
      inFlight--;
      if (shuttingDown && inFlight === 0) drained?.();
    }
  };

  const server = createLimitedServer(options.limits ?? {}, handleRequest, {
    log,
    onRefused: (status) => metrics.httpRequests.inc({ route: 'other', status: String(status) }),
  });

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
