// Per-worker resources that are expensive to build and safe to share between activities: the loaded
// task (MASSIVE and its derived schema), the default teacher endpoint, loaded ONNX students.
import { createLogger } from '../config/logger';
import type { PipelineConfig } from '../config/pipeline';
import type { Call } from '../tasks/call-format';
import { loadMassiveTask, type MassiveTask } from '../tasks/massive';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import type { ActivityDeps } from './deps';

const log = createLogger('resources');

export interface LoadedMassive extends MassiveTask {
  /** Gold calls of every example; used for statistics and scoring, never for training. */
  goldById: Map<string, Call>;
}

export interface TaskResources {
  massive(config: PipelineConfig): Promise<LoadedMassive>;
  /** The config's teacher URL, else the worker's default, else a teacher simulator started on demand. */
  teacherBaseURL(config: PipelineConfig): Promise<string>;
  close(): Promise<void>;
}

export function createTaskResources(deps: ActivityDeps): TaskResources {
  const tasks = new Map<string, Promise<LoadedMassive>>();
  let simulator: Promise<RunningTeacherSimulator> | undefined;
  return {
    massive(config) {
      const file = config.task.dataPath ?? deps.env.massivePath;
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
    async teacherBaseURL(config) {
      const configured = config.teacher.baseURL ?? deps.teacherBaseURL ?? deps.env.teacherUrl;
      if (configured) return configured;
      simulator ??= startTeacherSimulator({ massivePath: config.task.dataPath ?? deps.env.massivePath, model: config.teacher.model }).then((s) => {
        log.info(`no teacher endpoint configured: started the teacher SIMULATOR at ${s.url}`);
        return s;
      });
      return (await simulator).url;
    },
    async close() {
      if (simulator) await (await simulator).close();
    },
  };
}
