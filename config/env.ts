// The one place that reads environment variables. Everything else takes these values as arguments.
import * as path from 'node:path';

const projectRoot = path.resolve(__dirname, '..');

function fromEnv(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function pathList(name: string, fallback: string[]): string[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  return raw.split(path.delimiter).filter(Boolean).map((p) => path.resolve(p));
}

export interface SupertinyEnv {
  /** Repository root (where package.json lives). */
  projectRoot: string;
  /** Folder for the artifact store, the dev server's SQLite file and run folders. SUPERTINY_DATA_DIR. */
  dataDir: string;
  /** Temporal frontend address, host:port. TEMPORAL_ADDRESS. */
  temporalAddress: string;
  /** Temporal namespace. TEMPORAL_NAMESPACE. */
  namespace: string;
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
  /** Reads a teacher endpoint's API key from the variable the operator's endpoints file names. */
  secret(name: string): string | undefined;
}

export function readEnv(): SupertinyEnv {
  const address = fromEnv('TEMPORAL_ADDRESS', '127.0.0.1:7233');
  const role = fromEnv('SUPERTINY_WORKER_ROLE', 'all');
  if (role !== 'all' && role !== 'cpu' && role !== 'gpu') throw new Error(`SUPERTINY_WORKER_ROLE must be all, cpu or gpu, got ${JSON.stringify(role)}`);
  const dataDir = path.resolve(fromEnv('SUPERTINY_DATA_DIR', path.join(projectRoot, '.data')));
  const massivePath = path.resolve(fromEnv('SUPERTINY_MASSIVE_PATH', path.join(projectRoot, '..', 'shared', 'data', 'massive-en-US', 'en-US.jsonl')));
  return {
    projectRoot,
    dataDir,
    temporalAddress: address,
    namespace: fromEnv('TEMPORAL_NAMESPACE', 'default'),
    taskQueue: fromEnv('SUPERTINY_TASK_QUEUE', 'supertiny'),
    python: fromEnv('SUPERTINY_PYTHON', path.join(projectRoot, '.venv', 'bin', 'python')),
    temporalCli: fromEnv('TEMPORAL_CLI', path.join(projectRoot, '.tools', 'bin', 'temporal')),
    uiPort: intFromEnv('TEMPORAL_UI_PORT', 8233),
    massivePath,
    teacherEndpointsFile: fromEnv('SUPERTINY_TEACHER_ENDPOINTS', '') || undefined,
    simulatorUrl: fromEnv('SUPERTINY_SIMULATOR_URL', '') || undefined,
    dataRoots: pathList('SUPERTINY_DATA_ROOTS', [path.dirname(massivePath), path.join(projectRoot, 'examples')]),
    modelRoots: pathList('SUPERTINY_MODEL_ROOTS', [path.join(projectRoot, '.tools'), path.join(dataDir, 'base-models')]),
    workerRole: role,
    connectTimeoutSeconds: intFromEnv('SUPERTINY_CONNECT_TIMEOUT_S', 120),
    serveToken: fromEnv('SUPERTINY_SERVE_TOKEN', '') || undefined,
    secret: (name) => process.env[name] || undefined,
  };
}
