// Per-worker resources that are expensive to build and safe to share between activities: the registered
// tasks and the loaded one a config names, the teacher endpoints, the teacher simulator.
import { createLogger } from '../config/logger';
import { SIMULATOR_ENDPOINT, simulatorEndpoint, type Prices, type TeacherEndpoint } from '../config/endpoints';
import { InvalidConfigError } from '../config/pipeline';
import type { PipelineConfig } from '../config/pipeline';
import type { Call } from '../tasks/call-format';
import type { TaskSpec } from '../tasks/define';
import { BUILT_IN_TASKS } from '../tasks/built-in';
import { TaskRegistry, taskFingerprint, type TaskDefinition, type TaskFiles } from '../tasks/registry';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import type { ActivityDeps } from './deps';
import { taskFiles } from './config-check';
import { teacherBudgetUsd } from './prototype/spend-ledger';

const log = createLogger('resources');

/** The task a config names, loaded from its files. */
export interface LoadedTask {
  definition: TaskDefinition;
  task: TaskSpec<any>;
  /** The real paths it was loaded from (checked against the data roots), for output keys and the report. */
  files: TaskFiles;
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

export interface TaskResources {
  /** The registered task the config names (InvalidConfigError listing the registered names otherwise). */
  taskDefinition(config: PipelineConfig): TaskDefinition;
  /** The config's task, loaded once per worker and set of files. */
  loadTask(config: PipelineConfig): Promise<LoadedTask>;
  /** The worker's endpoints (the simulator included). */
  endpoints(): readonly TeacherEndpoint[];
  /**
   * Checks that the config's endpoint and model exist on this worker (InvalidConfigError otherwise) without
   * starting anything; returns the endpoint.
   */
  checkTeacher(config: PipelineConfig, model?: string): TeacherEndpoint;
  /** The config's endpoint with `model` (default: teacher.model); starts the simulator on first use. */
  teacher(config: PipelineConfig, model?: string): Promise<ResolvedTeacher>;
  /** Stops the simulator this worker started and drops the loaded tasks; a later use starts afresh. */
  close(): Promise<void>;
}

async function loadTaskFrom(definition: TaskDefinition, files: TaskFiles): Promise<LoadedTask> {
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
  return { definition, task, files, goldById, labelledTrain, fingerprint: taskFingerprint(task) };
}

export function createTaskResources(deps: ActivityDeps): TaskResources {
  const registry = deps.tasks ?? new TaskRegistry(BUILT_IN_TASKS);
  const tasks = new Map<string, Promise<LoadedTask>>();
  // One simulator per task: it answers from that task's gold calls.
  const simulators = new Map<string, Promise<RunningTeacherSimulator>>();
  const endpoints = deps.endpoints ?? [simulatorEndpoint()];
  const checkTeacher = (config: PipelineConfig, model = config.teacher.model): TeacherEndpoint => {
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
  const taskDefinition = (config: PipelineConfig) => registry.require(config.task.name);
  const loadTask = async (config: PipelineConfig): Promise<LoadedTask> => {
    const definition = taskDefinition(config);
    const files = await taskFiles(config, deps.env, definition);
    const id = JSON.stringify([definition.name, files.data ?? null, files.functions ?? null]);
    let loaded = tasks.get(id);
    if (!loaded) {
      loaded = loadTaskFrom(definition, files);
      loaded.catch(() => tasks.delete(id));
      tasks.set(id, loaded);
    }
    return loaded;
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
