// `supertiny serve`: a student folder, or the version a deployment folder points at (followed as it moves),
// behind the OpenAI-compatible student server, optionally cascading unsure requests to one of the worker
// operator's named teacher endpoints.
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TeacherClient } from '../runtime/teacher/teacher-client';
import { EndpointConfigError, loadTeacherEndpoints, SIMULATOR_ENDPOINT, type TeacherEndpoint } from '../config/endpoints';
import type { SupertinyEnv } from '../config/env';
import { createLogger } from '../config/logger';
import { DEFAULT_SERVER_LIMITS } from '../runtime/http';
import { DeploymentError, readCurrent, readVersionInfo } from '../runtime/deployments';
import {
  CaptureWriter,
  DEFAULT_CAPTURE_MAX_FILE_BYTES,
  DEFAULT_CAPTURE_RETENTION_DAYS,
  DEFAULT_DEPLOYMENT_POLL_MS,
  DeploymentFollower,
  exposureCheck, startStudentServer, StudentHolder, TeacherCascade, ThreadedStudent, warmUp } from '../runtime/serve';
import { loadStudent, type StudentRuntime } from '../runtime/student';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import { loadBuiltInTask } from '../tasks/built-in';
import { DEFAULT_TASK_NAME } from '../config/pipeline';
import type { TaskFiles } from '../tasks/registry';

const log = createLogger('serve');

export const SERVE_USAGE = `usage: supertiny serve --model FOLDER | --deployment DIR [--deployment-poll-ms 1000]
       [--task NAME [--task-data FILE] [--task-functions FILE]] [--model-file model.onnx] [--model-name NAME] [--host 127.0.0.1] [--port 8000]
       [--threads N] [--no-value-memory] [--inference-thread worker|main] [--max-batch 32] [--batch-wait-ms 0] [--max-body-bytes 65536]
       [--max-queue 256] [--deadline-ms 10000] [--max-connections 1024] [--headers-timeout-ms 10000] [--request-timeout-ms 30000] [--allow-no-auth]
       [--cascade-threshold 0.x --teacher-endpoint NAME [--teacher-model M] [--teacher-timeout-ms 30000] [--teacher-retries 1]
        [--teacher-max-rps 10] [--teacher-max-usd USD]]
       [--capture DIR [--capture-max-bytes 67108864] [--capture-retention-days 30]]
  The bearer token comes from SUPERTINY_SERVE_TOKEN (unset: no auth, allowed on a loopback --host only unless --allow-no-auth);
  teacher endpoints from SUPERTINY_TEACHER_ENDPOINTS. Requests get the served name or the alias "student" as their model.
  --deployment DIR: serves the version DIR/current.json names and follows it (read every --deployment-poll-ms): a new version is loaded,
  checked (same task and family, one warm-up answer) and swapped in while requests in flight finish on the old one; a version that
  fails is not served (the old one goes on; /healthz and supertiny_model_swaps_total{outcome="failed"} say so). The default model name
  is DIR's name, the default task the one the version recorded. Answers name their version (supertiny.model_version, x-supertiny-model-version).
  --max-queue: requests waiting for the student (more: 503 + Retry-After); --deadline-ms: arrival to the student's answer (then 503);
  --teacher-max-rps / --teacher-max-usd: requests per second to the teacher / USD spent on it in this process (past either: the student's
  answer, with teacher_error "rate" or "budget").
  --no-value-memory: a decoder student's drafts do not guess from earlier answers' values (answers are the same; a request's
  latency then does not depend on what earlier requests were answered).
  --capture DIR: one JSONL line per answered chat completion (input, the student's call and confidence, the cascade's decision, the
  teacher's call; never headers or tokens) in DIR/capture-YYYYMMDD-NNN.jsonl, a new file per UTC day and past --capture-max-bytes;
  files older than --capture-retention-days are deleted. Off unless --capture is given.`;

export class ServeUsageError extends Error {
  constructor(message: string) {
    super(`${message}\n${SERVE_USAGE}`);
    this.name = 'ServeUsageError';
  }
}

const SERVE_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  model: { type: 'string' },
  deployment: { type: 'string' },
  'deployment-poll-ms': { type: 'string', default: String(DEFAULT_DEPLOYMENT_POLL_MS) },
  task: { type: 'string' },
  'task-data': { type: 'string' },
  'task-functions': { type: 'string' },
  'model-file': { type: 'string', default: 'model.onnx' },
  'model-name': { type: 'string' },
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '8000' },
  threads: { type: 'string' },
  'no-value-memory': { type: 'boolean', default: false },
  'inference-thread': { type: 'string', default: 'worker' },
  'max-batch': { type: 'string', default: '32' },
  'batch-wait-ms': { type: 'string', default: '0' },
  'max-body-bytes': { type: 'string', default: String(64 * 1024) },
  'max-queue': { type: 'string', default: '256' },
  'deadline-ms': { type: 'string', default: '10000' },
  'max-connections': { type: 'string', default: String(DEFAULT_SERVER_LIMITS.maxConnections) },
  'headers-timeout-ms': { type: 'string', default: String(DEFAULT_SERVER_LIMITS.headersTimeoutMs) },
  'request-timeout-ms': { type: 'string', default: String(DEFAULT_SERVER_LIMITS.requestTimeoutMs) },
  'allow-no-auth': { type: 'boolean', default: false },
  'cascade-threshold': { type: 'string' },
  'teacher-endpoint': { type: 'string' },
  'teacher-model': { type: 'string' },
  'teacher-timeout-ms': { type: 'string', default: '30000' },
  'teacher-retries': { type: 'string', default: '1' },
  'teacher-max-rps': { type: 'string', default: '10' },
  'teacher-max-usd': { type: 'string' },
  capture: { type: 'string' },
  'capture-max-bytes': { type: 'string' },
  'capture-retention-days': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Whether the arguments ask for the usage (`--help` or `-h` anywhere, whatever else they hold). */
export function wantsServeHelp(args: string[]): boolean {
  return parseArgs({ args, options: SERVE_OPTIONS, strict: false }).values.help === true;
}

function parseServeArgs(args: string[]) {
  let values;
  try {
    ({ values } = parseArgs({ args, strict: true, options: SERVE_OPTIONS }));
  } catch (err) {
    throw new ServeUsageError((err as Error).message);
  }
  const number = (name: keyof typeof values, min: number, max = Number.MAX_SAFE_INTEGER, integer = true): number | undefined => {
    const raw = values[name] as string | undefined;
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw new ServeUsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  if ((values.model === undefined) === (values.deployment === undefined)) throw new ServeUsageError('give exactly one of --model FOLDER and --deployment DIR');
  const inferenceThread = values['inference-thread'];
  if (inferenceThread !== 'worker' && inferenceThread !== 'main') throw new ServeUsageError(`--inference-thread must be worker or main, got ${JSON.stringify(inferenceThread)}`);
  const threshold = number('cascade-threshold', 0, 1, false);
  if ((threshold === undefined) !== (values['teacher-endpoint'] === undefined)) {
    throw new ServeUsageError('a cascade needs both --cascade-threshold and --teacher-endpoint');
  }
  for (const name of ['teacher-model', 'teacher-max-usd'] as const) {
    if (values[name] !== undefined && values['teacher-endpoint'] === undefined) throw new ServeUsageError(`--${name} needs --teacher-endpoint`);
  }
  for (const name of ['capture-max-bytes', 'capture-retention-days'] as const) {
    if (values[name] !== undefined && values.capture === undefined) throw new ServeUsageError(`--${name} needs --capture DIR`);
  }
  const files: TaskFiles = {};
  if (values['task-data'] !== undefined) files.data = path.resolve(values['task-data']);
  if (values['task-functions'] !== undefined) files.functions = path.resolve(values['task-functions']);
  const source = path.resolve((values.model ?? values.deployment)!);
  const flags = {
    /** The task's name; undefined: the deployment's recorded task, else the default. */
    taskName: values.task,
    taskFiles: files,
    folder: values.model === undefined ? undefined : source,
    deployment: values.deployment === undefined ? undefined : { dir: source, pollMs: number('deployment-poll-ms', 10, 3_600_000)! },
    modelFile: values['model-file']!,
    modelName: values['model-name'] ?? path.basename(source),
    host: values.host!,
    port: number('port', 0, 65535)!,
    threads: number('threads', 1, 64),
    rememberValues: values['no-value-memory'] !== true,
    inferenceThread,
    maxBatch: number('max-batch', 1, 1024)!,
    batchWaitMs: number('batch-wait-ms', 0, 1000, false)!,
    maxBodyBytes: number('max-body-bytes', 1024, 64 * 1024 * 1024)!,
    maxQueue: number('max-queue', 1, 1_000_000)!,
    deadlineMs: number('deadline-ms', 1, 3_600_000)!,
    limits: {
      maxConnections: number('max-connections', 1, 1_000_000)!,
      headersTimeoutMs: number('headers-timeout-ms', 100, 3_600_000)!,
      requestTimeoutMs: number('request-timeout-ms', 100, 3_600_000)!,
    },
    allowNoAuth: values['allow-no-auth']!,
    capture:
      values.capture === undefined
        ? undefined
        : {
            dir: path.resolve(values.capture),
            maxFileBytes: number('capture-max-bytes', 1024, Number.MAX_SAFE_INTEGER) ?? DEFAULT_CAPTURE_MAX_FILE_BYTES,
            retentionDays: number('capture-retention-days', 1, 36_500) ?? DEFAULT_CAPTURE_RETENTION_DAYS,
          },
    cascade:
      threshold === undefined
        ? undefined
        : {
            threshold,
            endpoint: values['teacher-endpoint']!,
            model: values['teacher-model'],
            timeoutMs: number('teacher-timeout-ms', 1, 600_000)!,
            retries: number('teacher-retries', 0, 10)!,
            maxRequestsPerSecond: number('teacher-max-rps', 0.001, 1_000_000, false)!,
            maxSpendUsd: number('teacher-max-usd', 0, Number.MAX_SAFE_INTEGER, false),
          },
  };
  if (flags.limits.headersTimeoutMs > flags.limits.requestTimeoutMs) throw new ServeUsageError('--headers-timeout-ms must not exceed --request-timeout-ms');
  return flags;
}

export interface RunningServe {
  url: string;
  close(): Promise<void>;
}

/** What to serve first: a plain folder, or the version a deployment points at (and the task it recorded). */
async function firstStudent(flags: ReturnType<typeof parseServeArgs>): Promise<{ folder: string; version?: string; taskName: string }> {
  if (flags.folder !== undefined) return { folder: flags.folder, taskName: flags.taskName ?? DEFAULT_TASK_NAME };
  const { dir } = flags.deployment!;
  const pointer = await readCurrent(dir);
  if (!pointer) throw new DeploymentError(`${dir} has no current.json: nothing is deployed there (start one with \`supertiny deploy --deployment ${dir} --model FOLDER\`)`);
  const recorded = (await readVersionInfo(dir, pointer.version))?.task;
  if (flags.taskName !== undefined && recorded !== undefined && recorded !== flags.taskName) {
    throw new ServeUsageError(`--task ${flags.taskName}: the deployment's current version ${pointer.version} was made for task "${recorded}"`);
  }
  return { folder: pointer.path, version: pointer.version, taskName: flags.taskName ?? recorded ?? DEFAULT_TASK_NAME };
}

/** Loads the task, the student and (with a cascade) the teacher, then serves until close(). */
export async function startServe(args: string[], env: SupertinyEnv): Promise<RunningServe> {
  const flags = parseServeArgs(args);
  // Before anything loads: a server that would face the network without a token is refused at once.
  exposureCheck(flags.host, env.serveToken !== undefined, flags.allowNoAuth);
  const first = await firstStudent(flags);
  const taskRef = { name: first.taskName, files: flags.taskFiles };
  const task = await loadBuiltInTask(taskRef.name, taskRef.files);
  // The teacher endpoint is checked before the student loads, so that a wrong name fails at once.
  let teacherEndpoint: { endpoint: TeacherEndpoint; model: string } | undefined;
  if (flags.cascade) {
    const name = flags.cascade.endpoint;
    const endpoints = await loadTeacherEndpoints(env.teacherEndpointsFile, env.secret);
    const endpoint = endpoints.find((e) => e.name === name);
    if (!endpoint) throw new EndpointConfigError(`--teacher-endpoint: no endpoint "${name}" here; there are ${endpoints.map((e) => `"${e.name}"`).join(', ')}`);
    const model = flags.cascade.model ?? endpoint.models[0];
    if (!endpoint.models.includes(model)) {
      throw new EndpointConfigError(`--teacher-model: endpoint "${name}" does not serve "${model}"; its models are ${endpoint.models.map((m) => `"${m}"`).join(', ')}`);
    }
    teacherEndpoint = { endpoint, model };
  }
  const load = (folder: string): Promise<StudentRuntime> =>
    flags.inferenceThread === 'worker'
      ? ThreadedStudent.load({ folder, modelFile: flags.modelFile, threads: flags.threads, rememberValues: flags.rememberValues, task: taskRef })
      : loadStudent(folder, { task, modelFile: flags.modelFile, threads: flags.threads, rememberValues: flags.rememberValues });
  const holder = new StudentHolder(await load(first.folder), first.version);
  let simulator: RunningTeacherSimulator | undefined;
  let follower: DeploymentFollower | undefined;
  let capture: CaptureWriter | undefined;
  try {
    if (flags.deployment) {
      // The version served first is checked as a swapped-in one is: it must answer.
      await warmUp(holder.student).catch((err: Error) => {
        throw new DeploymentError(`${flags.deployment!.dir}: the current version ${first.version} does not answer: ${err.message}`);
      });
      follower = new DeploymentFollower({ dir: flags.deployment.dir, holder, taskName: taskRef.name, load, pollMs: flags.deployment.pollMs });
    }
    let cascade: TeacherCascade | undefined;
    if (flags.cascade && teacherEndpoint) {
      const { threshold } = flags.cascade;
      const { endpoint, model } = teacherEndpoint;
      let baseURL = endpoint.baseURL ?? env.simulatorUrl;
      if (!baseURL) {
        simulator = await startTeacherSimulator({ task, model });
        baseURL = simulator.url;
        log.info(`endpoint "${SIMULATOR_ENDPOINT}": started the teacher SIMULATOR at ${baseURL} (not an LLM: its answers come from the data's labels)`);
      }
      const teacher = new TeacherClient(task, {
        baseURL,
        apiKey: endpoint.apiKey ?? 'sk-no-key',
        model,
        timeoutMs: flags.cascade.timeoutMs,
        maxRetries: flags.cascade.retries,
        // A caller is waiting: retry soon or not at all.
        backoff: { initialMs: 200, maxMs: 2_000, maxRetryAfterMs: 2_000 },
        concurrency: 64,
        temperature: 0,
        useN: false,
        prices: { inputPerMillionTokens: endpoint.prices.inputPerMTok, outputPerMillionTokens: endpoint.prices.outputPerMTok },
      });
      const { maxRequestsPerSecond, maxSpendUsd } = flags.cascade;
      cascade = new TeacherCascade({ threshold, teacher, teacherModel: model, maxRequestsPerSecond, maxSpendUsd });
    }
    if (flags.capture) capture = await CaptureWriter.open(flags.capture);
    const server = await startStudentServer({
      student: holder,
      deployment: follower,
      functionNames: task.functionNames,
      modelName: flags.modelName,
      // The folder's name: a deployment's version folder is named by its version id.
      modelVersion: path.basename(first.folder),
      host: flags.host,
      port: flags.port,
      apiToken: env.serveToken,
      allowNoAuth: flags.allowNoAuth,
      maxBatch: flags.maxBatch,
      batchWaitMs: flags.batchWaitMs,
      maxBodyBytes: flags.maxBodyBytes,
      maxQueue: flags.maxQueue,
      deadlineMs: flags.deadlineMs,
      limits: flags.limits,
      cascade,
      capture,
    });
    follower?.start();
    let closing: Promise<void> | undefined;
    // Once, however often it is called (a signal and a test's cleanup may both close).
    const closeAll = (): Promise<void> =>
      (closing ??= (async () => {
        await follower?.stop();
        await server.close();
        await holder.close();
        // After the last request: every captured line is on disk before serve exits.
        await capture?.close();
        await simulator?.close();
      })());
    log.info('serving', {
      url: server.url,
      model: flags.modelName,
      ...(flags.deployment ? { deployment: flags.deployment.dir, version: first.version, pollMs: flags.deployment.pollMs } : {}),
      task: taskRef.name,
      family: holder.student.family,
      modelFile: holder.student.modelFile,
      inference: flags.inferenceThread === 'worker' ? 'worker thread' : 'main thread',
      auth: env.serveToken ? 'bearer token' : 'none',
      cascade: flags.cascade
        ? `${flags.cascade.endpoint} below ${flags.cascade.threshold}, at most ${flags.cascade.maxRequestsPerSecond} req/s` +
          (flags.cascade.maxSpendUsd === undefined ? ', no spend cap' : `, at most ${flags.cascade.maxSpendUsd} USD`)
        : 'off',
      capture: flags.capture ? `${flags.capture.dir} (files up to ${flags.capture.maxFileBytes} bytes, kept ${flags.capture.retentionDays} days)` : 'off',
      limits: { maxQueue: flags.maxQueue, deadlineMs: flags.deadlineMs, ...flags.limits },
    });
    return { url: server.url, close: closeAll };
  } catch (err) {
    await capture?.close();
    await holder.close();
    await simulator?.close();
    throw err;
  }
}
