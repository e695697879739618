// Per-worker resources that are expensive to build and safe to share between activities: the registered
// tasks and the loaded one a config names, the teacher endpoints, the teacher simulator.
import { promises as fs } from 'node:fs';
import { sha256File } from '../artifacts/store';
import { createLogger } from '../config/logger';
import { SIMULATOR_ENDPOINT, simulatorEndpoint, type Prices, type TeacherEndpoint } from '../config/endpoints';
import { InvalidConfigError } from '../config/pipeline';
import type { TaskRef } from '../config/plan';
import type { Call } from '../tasks/call-format';
import type { TaskSpec } from '../tasks/define';
import { BUILT_IN_TASKS } from '../tasks/built-in';
import { TaskRegistry, taskFingerprint, type TaskDefinition, type TaskFiles } from '../tasks/registry';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import type { ActivityDeps } from './deps';
import { taskFiles } from './worker-paths';
import { InvalidInputError } from './failures';
import { teacherBudgetUsd } from './teacher/spend-ledger';

const log = createLogger('resources');

/** The task a config names, loaded from its files. */
export interface LoadedTask {
  definition: TaskDefinition;
  task: TaskSpec<any>;
  /** The real paths it was loaded from (checked against the data roots), for the report. */
  files: TaskFiles;
  /** The sha256 of each file's bytes the task was loaded from: what output keys name, never the path. */
  hashes: TaskFileHashes;
  /** Gold calls of every labelled example; used for statistics and scoring, never for training. */
  goldById: Map<string, Call>;
  /** Labelled train examples (the teacher simulator can answer only those it has gold for). */
  labelledTrain: number;
  /** taskFingerprint(task): part of the output keys of the activities that use the task. */
  fingerprint: string;
}

/** The teacher a config asks for, resolved against the worker's endpoints. Holds the key: never log or store it. */
export interface ResolvedTeacher {
  /** The endpoint's name in the worker's list. */
  endpoint: string;
  baseURL: string;
  apiKey: string;
  model: string;
  prices: Prices;
  simulated: boolean;
  /** Header for the per-request idempotency key (the endpoint's setting); null sends none. */
  idempotencyHeader: string | null;
  /**
   * What the endpoint's answers depend on, for output and request-cache keys: its name and URL (the
   * built-in simulator's port changes every start, so it is named only). Never contains the key.
   */
  identity: string;
}

export interface TaskFileHashes {
  data?: string;
  functions?: string;
}

/** What the resources read of a config or of a plan part: the task, and the teacher's endpoint, model and budget. */
export interface TaskSource {
  task: TaskRef;
}
export interface TeacherSource extends TaskSource {
  teacher: { endpoint: string; model: string; maxSpendUsd?: number };
}

export interface TaskResources {
  /** The registered task the config names (InvalidConfigError listing the registered names otherwise). */
  taskDefinition(source: TaskSource): TaskDefinition;
  /** The config's task, loaded once per worker and content of its files (an edited file is loaded again). */
  loadTask(source: TaskSource): Promise<LoadedTask>;
  /** The worker's endpoints (the simulator included). */
  endpoints(): readonly TeacherEndpoint[];
  /**
   * Checks that the config's endpoint and model exist on this worker (InvalidConfigError otherwise) without
   * starting anything; returns the endpoint.
   */
  checkTeacher(source: Omit<TeacherSource, 'task'>, model?: string): TeacherEndpoint;
  /** The config's endpoint with `model` (default: teacher.model); starts the simulator on first use. */
  teacher(source: TeacherSource, model?: string): Promise<ResolvedTeacher>;
  /** Stops the simulator this worker started and drops the loaded tasks; a later use starts afresh. */
  close(): Promise<void>;
}

async function loadTaskFrom(definition: TaskDefinition, files: TaskFiles, hashes: TaskFileHashes): Promise<LoadedTask> {
  const task = await definition.load(files);
  const goldById = new Map<string, Call>();
  let labelledTrain = 0;
  for (const split of task.dataset.splits) {
    for (const example of await task.dataset.load(split)) {
      const gold = task.gold(example);
      if (!gold) continue;
      goldById.set(example.id, gold);
      if (split === 'train') labelledTrain++;
    }
  }
  return { definition, task, files, hashes, goldById, labelledTrain, fingerprint: taskFingerprint(task) };
}

/** A file's content hash, and what stat said of it when it was hashed. */
interface FileVersion {
  kind: keyof TaskFiles;
  file: string;
  sha256: string;
  stat: string;
  /** Whether the file changed so shortly before it was statted that a later change could leave stat equal. */
  racy: boolean;
}

/** A task loaded from files, with the versions of the files it holds the rows of. */
interface CachedTask {
  loaded: LoadedTask;
  versions: FileVersion[];
}

/** Timestamps can be as coarse as this: a change within it of an earlier one may not show up in stat. */
const TIMESTAMP_GRANULARITY_MS = 2_000;
const FIELDS = { data: 'task.dataPath', functions: 'task.functionsPath' } as const;

async function fileStat(file: string): Promise<{ stat: string; racy: boolean }> {
  const s = await fs.stat(file, { bigint: true });
  // ctime moves on every write and cannot be set back, so (ino, size, mtime, ctime) equal means unwritten,
  // except within one timestamp tick of the look (the "racy" case git's index has too): then the bytes decide.
  const racy = Number(s.ctimeMs) > Date.now() - TIMESTAMP_GRANULARITY_MS;
  return { stat: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`, racy };
}

async function fileVersion(kind: keyof TaskFiles, file: string): Promise<FileVersion> {
  try {
    const seen = await fileStat(file);
    return { kind, file, sha256: (await sha256File(file)).sha256, ...seen };
  } catch (err) {
    throw new InvalidInputError(`${FIELDS[kind]}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

async function fileVersions(files: TaskFiles): Promise<FileVersion[]> {
  const kinds = (['data', 'functions'] as const).filter((kind) => files[kind] !== undefined);
  return Promise.all(kinds.map((kind) => fileVersion(kind, files[kind]!)));
}

const sameVersions = (a: readonly FileVersion[], b: readonly FileVersion[]) =>
  a.length === b.length && a.every((v, i) => v.sha256 === b[i].sha256 && v.stat === b[i].stat);

/** Attempts at loading a task whose files keep changing while they are read. */
const LOAD_ATTEMPTS = 3;

/**
 * Loads the task and the versions of the files it was loaded from. The files are hashed before and after the
 * load: a file written meanwhile is loaded again, so the rows always belong to the hashes they are keyed by.
 */
async function loadVersioned(definition: TaskDefinition, files: TaskFiles): Promise<CachedTask> {
  for (let attempt = 1; ; attempt++) {
    const before = await fileVersions(files);
    const loaded = await loadTaskFrom(definition, files, Object.fromEntries(before.map((v) => [v.kind, v.sha256])));
    const after = await fileVersions(files);
    if (sameVersions(before, after)) return { loaded, versions: after };
    // Retryable: an editor still writing the file is done in a moment.
    if (attempt === LOAD_ATTEMPTS) throw new Error(`the files of task "${definition.name}" changed while being read, ${LOAD_ATTEMPTS} times: try again when they are written`);
    log.warn(`a file of task "${definition.name}" changed while being read: reading it again`);
  }
}

/** Whether every file still holds the bytes the task was loaded from (re-hashed unless stat proves it). */
async function unchanged(cached: CachedTask): Promise<boolean> {
  for (const [i, version] of cached.versions.entries()) {
    const now = await fileStat(version.file).catch(() => undefined);
    if (!now) return false;
    if (now.stat === version.stat && !version.racy) continue;
    const current = await fileVersion(version.kind, version.file).catch(() => undefined);
    if (current?.sha256 !== version.sha256) return false;
    cached.versions[i] = current; // the same bytes (touched, or racy before): remember the new stat
  }
  return true;
}

export function createTaskResources(deps: ActivityDeps): TaskResources {
  const registry = deps.tasks ?? new TaskRegistry(BUILT_IN_TASKS);
  // One entry per task and paths, holding the rows of the files' current bytes.
  const tasks = new Map<string, Promise<CachedTask>>();
  // One simulator per task: it answers from that task's gold calls.
  const simulators = new Map<string, Promise<RunningTeacherSimulator>>();
  const endpoints = deps.endpoints ?? [simulatorEndpoint()];
  const checkTeacher = (config: Omit<TeacherSource, 'task'>, model = config.teacher.model): TeacherEndpoint => {
    const endpoint = endpoints.find((e) => e.name === config.teacher.endpoint);
    if (!endpoint) {
      throw new InvalidConfigError([
        { path: 'teacher.endpoint', message: `no endpoint "${config.teacher.endpoint}" on this worker; it has ${endpoints.map((e) => `"${e.name}"`).join(', ')}` },
      ]);
    }
    if (!endpoint.models.includes(model)) {
      const field = model === config.teacher.model ? 'teacher.model' : 'teacher.judge.model';
      throw new InvalidConfigError([
        { path: field, message: `endpoint "${endpoint.name}" does not serve "${model}"; its models are ${endpoint.models.map((m) => `"${m}"`).join(', ')}` },
      ]);
    }
    // The budget is the config's, within the operator's cap: whoever starts a workflow spends the operator's key.
    const cap = endpoint.maxSpendUsdPerPipeline;
    if (cap !== undefined && teacherBudgetUsd(config) > cap) {
      throw new InvalidConfigError([
        { path: 'teacher.maxSpendUsd', message: `${teacherBudgetUsd(config)} is over the ${cap} USD that endpoint "${endpoint.name}" allows a pipeline (its maxSpendUsdPerPipeline)` },
      ]);
    }
    return endpoint;
  };
  const taskDefinition = (config: TaskSource) => registry.require(config.task.name);
  const loadTask = async (config: TaskSource): Promise<LoadedTask> => {
    const definition = taskDefinition(config);
    const files = await taskFiles(config, deps.env, definition);
    const id = JSON.stringify([definition.name, files.data ?? null, files.functions ?? null]);
    const cached = tasks.get(id);
    if (cached) {
      // A load that failed fails those that joined it; it is not kept.
      const entry = await cached;
      if (await unchanged(entry)) return entry.loaded;
      // Edited in place: the old rows are dropped, never served under the new bytes' hash.
      if (tasks.get(id) !== cached) return loadTask(config);
    }
    const loading = loadVersioned(definition, files);
    tasks.set(id, loading);
    loading.catch(() => tasks.get(id) === loading && tasks.delete(id));
    return (await loading).loaded;
  };
  return {
    taskDefinition,
    loadTask,
    endpoints: () => endpoints,
    checkTeacher,
    async teacher(config, model = config.teacher.model) {
      const endpoint = checkTeacher(config, model);
      let baseURL = endpoint.baseURL;
      if (!baseURL) {
        baseURL = deps.simulatorBaseURL ?? deps.env.simulatorUrl;
        if (!baseURL) {
          const { task, fingerprint } = await loadTask(config);
          let simulator = simulators.get(fingerprint);
          if (!simulator) {
            simulator = startTeacherSimulator({ task, model }).then((s) => {
              log.info(`endpoint "${SIMULATOR_ENDPOINT}": started the teacher SIMULATOR for task "${task.name}" at ${s.url}`);
              return s;
            });
            simulator.catch(() => simulators.delete(fingerprint));
            simulators.set(fingerprint, simulator);
          }
          baseURL = (await simulator).url;
        }
      }
      return {
        endpoint: endpoint.name,
        baseURL,
        apiKey: endpoint.apiKey ?? 'sk-no-key',
        model,
        prices: endpoint.prices,
        simulated: endpoint.simulated,
        idempotencyHeader: endpoint.idempotencyHeader,
        identity: endpoint.simulated ? SIMULATOR_ENDPOINT : `${endpoint.name}@${endpoint.baseURL}`,
      };
    },
    async close() {
      const started = [...simulators.values()];
      simulators.clear();
      tasks.clear();
      // A simulator that failed to start holds nothing.
      for (const running of await Promise.all(started.map((s) => s.catch(() => undefined)))) {
        if (!running) continue;
        await running.close();
        log.info(`endpoint "${SIMULATOR_ENDPOINT}": stopped the teacher SIMULATOR at ${running.url}`);
      }
    },
  };
}
