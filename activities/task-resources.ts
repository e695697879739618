// Per-worker resources that are expensive to build and safe to share between activities: the loaded
// task (MASSIVE and its derived schema), the default teacher endpoint, loaded ONNX students.
import { createLogger } from '../config/logger';
import { SIMULATOR_ENDPOINT, simulatorEndpoint, type Prices, type TeacherEndpoint } from '../config/endpoints';
import { InvalidConfigError } from '../config/pipeline';
import type { PipelineConfig } from '../config/pipeline';
import type { Call } from '../tasks/call-format';
import { loadMassiveTask, type MassiveTask } from '../tasks/massive';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import type { ActivityDeps } from './deps';
import { taskDataPath } from './config-check';

const log = createLogger('resources');

export interface LoadedMassive extends MassiveTask {
  /** Gold calls of every example; used for statistics and scoring, never for training. */
  goldById: Map<string, Call>;
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
  /**
   * What the endpoint's answers depend on, for output and request-cache keys: its name and URL (the
   * built-in simulator's port changes every start, so it is named only). Never contains the key.
   */
  identity: string;
}

export interface TaskResources {
  massive(config: PipelineConfig): Promise<LoadedMassive>;
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

export function createTaskResources(deps: ActivityDeps): TaskResources {
  const tasks = new Map<string, Promise<LoadedMassive>>();
  let simulator: Promise<RunningTeacherSimulator> | undefined;
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
    return endpoint;
  };
  return {
    async massive(config) {
      const file = await taskDataPath(config, deps.env);
      let loaded = tasks.get(file);
      if (!loaded) {
        loaded = loadMassiveTask({ massivePath: file }).then((m) => ({
          ...m,
          goldById: new Map(m.examples.map((e) => [e.id, m.task.gold(e)!])),
        }));
        loaded.catch(() => tasks.delete(file));
        tasks.set(file, loaded);
      }
      return loaded;
    },
    endpoints: () => endpoints,
    checkTeacher,
    async teacher(config, model = config.teacher.model) {
      const endpoint = checkTeacher(config, model);
      let baseURL = endpoint.baseURL;
      if (!baseURL) {
        baseURL = deps.simulatorBaseURL ?? deps.env.simulatorUrl;
        if (!baseURL) {
          const massivePath = await taskDataPath(config, deps.env);
          simulator ??= startTeacherSimulator({ massivePath, model }).then((s) => {
            log.info(`endpoint "${SIMULATOR_ENDPOINT}": started the teacher SIMULATOR at ${s.url}`);
            return s;
          });
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
        identity: endpoint.simulated ? SIMULATOR_ENDPOINT : `${endpoint.name}@${endpoint.baseURL}`,
      };
    },
    async close() {
      const started = simulator;
      simulator = undefined;
      tasks.clear();
      // A simulator that failed to start holds nothing.
      const running = await started?.catch(() => undefined);
      if (running) {
        await running.close();
        log.info(`endpoint "${SIMULATOR_ENDPOINT}": stopped the teacher SIMULATOR at ${running.url}`);
      }
    },
  };
}
