// The one place that reads environment variables. Everything else takes these values as arguments.
import * as path from 'node:path';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import type { TLSConfig } from '@temporalio/client';
import { DECODER_BASE_NAMES, FREE_TEXT_DECODER_BASE, isDecoderBaseName, type DecoderBaseName } from './decoder-bases';

const projectRoot = path.resolve(__dirname, '..');

export type EnvVars = Record<string, string | undefined>;

function fromEnv(vars: EnvVars, name: string, fallback: string): string {
  const value = vars[name];
  return value === undefined || value === '' ? fallback : value;
}

function intFromEnv(vars: EnvVars, name: string, fallback: number): number {
  const raw = vars[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function freeTextBaseFromEnv(vars: EnvVars): DecoderBaseName | undefined {
  const raw = vars.SUPERTINY_FREE_TEXT_BASE;
  if (raw === undefined || raw === '') return FREE_TEXT_DECODER_BASE;
  if (raw === 'none') return undefined;
  if (isDecoderBaseName(raw)) return raw;
  throw new Error(`SUPERTINY_FREE_TEXT_BASE must be a decoder base (${DECODER_BASE_NAMES.map((n) => `"${n}"`).join(', ')}) or "none", got ${JSON.stringify(raw)}`);
}

function pathList(vars: EnvVars, name: string, fallback: string[]): string[] {
  const raw = vars[name];
  if (raw === undefined || raw === '') return fallback;
  return raw.split(path.delimiter).filter(Boolean).map((p) => path.resolve(p));
}

export interface SupertinyEnv {
  /** Repository root (where package.json lives). */
  projectRoot: string;
  /** Folder for the artifact store, the dev server's SQLite file and run folders. SUPERTINY_DATA_DIR. */
  dataDir: string;
  /** Temporal frontend address, host:port. TEMPORAL_ADDRESS, else the client profile's `address`. */
  temporalAddress: string;
  /** Temporal namespace. TEMPORAL_NAMESPACE, else the client profile's `namespace`. */
  namespace: string;
  /**
   * TLS of the Temporal connection: the profile's [tls] table or TEMPORAL_TLS, TEMPORAL_TLS_* (client cert
   * and key, server CA, server name); on by default with an API key (Temporal Cloud). Unset = plain.
   */
  temporalTls?: TLSConfig | boolean;
  /** API key for Temporal Cloud. TEMPORAL_API_KEY, else the profile's `api_key`. A secret: never log it. */
  temporalApiKey?: string;
  /** gRPC headers of the Temporal connection: the profile's [grpc_meta] or TEMPORAL_GRPC_META_<NAME>. */
  temporalGrpcMeta?: Record<string, string>;
  /** Task queue of the workflows and CPU work; GPU work goes to "<taskQueue>-gpu". SUPERTINY_TASK_QUEUE. */
  taskQueue: string;
  /** Python interpreter of the trainer environment. SUPERTINY_PYTHON. */
  python: string;
  /** The Temporal CLI binary. TEMPORAL_CLI. */
  temporalCli: string;
  /** Port of the Temporal UI of the local dev server. TEMPORAL_UI_PORT. */
  uiPort: number;
  /** MASSIVE en-US JSONL file. SUPERTINY_MASSIVE_PATH. */
  massivePath: string;
  /**
   * The operator's teacher endpoints file (JSON or YAML, see config/endpoints.ts). SUPERTINY_TEACHER_ENDPOINTS;
   * unset = only the built-in teacher simulator.
   */
  teacherEndpointsFile?: string;
  /** A running teacher simulator that serves the "simulator" endpoint. SUPERTINY_SIMULATOR_URL; unset = start one in the worker. */
  simulatorUrl?: string;
  /** Folders a config's data paths (task.dataPath) must lie in. SUPERTINY_DATA_ROOTS, separated by ':'. */
  dataRoots: string[];
  /** Folders a config's model paths (transfer.student.baseModelPath) must lie in. SUPERTINY_MODEL_ROOTS. */
  modelRoots: string[];
  /** Worker role: all, cpu or gpu queue. SUPERTINY_WORKER_ROLE. */
  workerRole: 'all' | 'cpu' | 'gpu';
  /** How long a worker waits for the Temporal frontend to answer at start. SUPERTINY_CONNECT_TIMEOUT_S. */
  connectTimeoutSeconds: number;
  /** The bearer token `supertiny serve` requires on /v1/*. SUPERTINY_SERVE_TOKEN; unset = no auth. */
  serveToken?: string;
  /**
   * The decoder base this worker gives a task with a free-text argument when the config names no student
   * family: a registry name (config/decoder-bases.json), or undefined for the tiny random-init decoder.
   * SUPERTINY_FREE_TEXT_BASE: a base's name, or "none"; unset = FREE_TEXT_DECODER_BASE.
   */
  freeTextDecoderBase?: DecoderBaseName;
  /**
   * What the trainer's child process inherits of the worker's environment: an allow-list (trainerEnvironment),
   * so that no teacher key, TEMPORAL_API_KEY or other secret reaches it or anything it runs.
   */
  trainerEnv: Record<string, string>;
  /** Reads a teacher endpoint's API key from the variable the operator's endpoints file names. */
  secret(name: string): string | undefined;
}

/** Variables the trainer may need: the system's, locale, temp folders, the Hugging Face cache and offline flags, GPU and thread pools. */
const TRAINER_VARIABLES = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TZ', 'LANG', 'LANGUAGE', 'TMPDIR', 'TMP', 'TEMP', 'LD_LIBRARY_PATH', 'XDG_CACHE_HOME', 'PYTHONHASHSEED', 'TOKENIZERS_PARALLELISM'];
const TRAINER_PREFIXES = ['LC_', 'HF_', 'TRANSFORMERS_', 'CUDA_', 'NVIDIA_', 'CUBLAS_', 'CUDNN_', 'NCCL_', 'OMP_', 'MKL_', 'OPENBLAS_', 'TORCH_', 'PYTORCH_'];
/** Never passed, whatever the prefix: e.g. HF_TOKEN, or an operator's key variable named CUDA_API_KEY. */
const SECRET_NAME = /KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH/i;

/** The allow-listed part of `vars` that the trainer's child process gets (see SupertinyEnv.trainerEnv). */
export function trainerEnvironment(vars: EnvVars): Record<string, string> {
  return Object.fromEntries(
    Object.entries(vars).filter(
      (e): e is [string, string] =>
        e[1] !== undefined && !SECRET_NAME.test(e[0]) && (TRAINER_VARIABLES.includes(e[0]) || TRAINER_PREFIXES.some((p) => e[0].startsWith(p))),
    ),
  );
}

/**
 * The Temporal client settings as the Temporal docs describe them (@temporalio/envconfig): the profile
 * TEMPORAL_PROFILE (default "default") of the TOML file TEMPORAL_CONFIG_FILE (default
 * ~/.config/temporalio/temporal.toml; none is fine), overridden by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY and TEMPORAL_TLS*. An empty variable counts as unset, as everywhere in this file.
 */
function temporalClientSettings(vars: EnvVars) {
  const set = Object.fromEntries(Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
  let profile: ReturnType<typeof loadClientConfigProfile>;
  let tls: TLSConfig | boolean | null | undefined;
  try {
    profile = loadClientConfigProfile({ overrideEnvVars: set });
    // envconfig's rule: the profile's TLS settings (certificate files read here), else TLS on with an API key.
    tls = toClientOptions(profile).connectionOptions.tls;
  } catch (err) {
    const file = set.TEMPORAL_CONFIG_FILE ?? 'the default ~/.config/temporalio/temporal.toml';
    throw new Error(`Temporal client config (${file}, profile ${set.TEMPORAL_PROFILE ?? 'default'}): ${(err as Error).message}`);
  }
  return {
    temporalAddress: profile.address ?? '127.0.0.1:7233',
    namespace: profile.namespace ?? 'default',
    temporalTls: tls ?? undefined,
    temporalApiKey: profile.apiKey,
    temporalGrpcMeta: profile.grpcMeta,
  };
}

/** The options of a connection to the env's Temporal server, for Connection (client) and NativeConnection (worker) alike. */
export function temporalConnectionOptions(env: SupertinyEnv) {
  return { address: env.temporalAddress, tls: env.temporalTls, apiKey: env.temporalApiKey, metadata: env.temporalGrpcMeta };
}

/** The env pointed at a local dev server this process started or found: plain, no profile's TLS or key. */
export function onLocalServer(env: SupertinyEnv, address: string): SupertinyEnv {
  return { ...env, temporalAddress: address, temporalTls: undefined, temporalApiKey: undefined, temporalGrpcMeta: undefined };
}

export function readEnv(vars: EnvVars = process.env): SupertinyEnv {
  const str = (name: string, fallback: string) => fromEnv(vars, name, fallback);
  const role = str('SUPERTINY_WORKER_ROLE', 'all');
  if (role !== 'all' && role !== 'cpu' && role !== 'gpu') throw new Error(`SUPERTINY_WORKER_ROLE must be all, cpu or gpu, got ${JSON.stringify(role)}`);
  const dataDir = path.resolve(str('SUPERTINY_DATA_DIR', path.join(projectRoot, '.data')));
  const massivePath = path.resolve(str('SUPERTINY_MASSIVE_PATH', path.join(projectRoot, '..', 'shared', 'data', 'massive-en-US', 'en-US.jsonl')));
  return {
    projectRoot,
    dataDir,
    ...temporalClientSettings(vars),
    taskQueue: str('SUPERTINY_TASK_QUEUE', 'supertiny'),
    python: str('SUPERTINY_PYTHON', path.join(projectRoot, '.venv', 'bin', 'python')),
    temporalCli: str('TEMPORAL_CLI', path.join(projectRoot, '.tools', 'bin', 'temporal')),
    uiPort: intFromEnv(vars, 'TEMPORAL_UI_PORT', 8233),
    massivePath,
    teacherEndpointsFile: str('SUPERTINY_TEACHER_ENDPOINTS', '') || undefined,
    simulatorUrl: str('SUPERTINY_SIMULATOR_URL', '') || undefined,
    dataRoots: pathList(vars, 'SUPERTINY_DATA_ROOTS', [path.dirname(massivePath), path.join(projectRoot, 'examples')]),
    modelRoots: pathList(vars, 'SUPERTINY_MODEL_ROOTS', [path.join(projectRoot, '.tools'), path.join(dataDir, 'base-models')]),
    workerRole: role,
    connectTimeoutSeconds: intFromEnv(vars, 'SUPERTINY_CONNECT_TIMEOUT_S', 120),
    serveToken: str('SUPERTINY_SERVE_TOKEN', '') || undefined,
    freeTextDecoderBase: freeTextBaseFromEnv(vars),
    trainerEnv: trainerEnvironment(vars),
    secret: (name) => vars[name] || undefined,
  };
}
