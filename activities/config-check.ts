// What the schema cannot check because it depends on the worker: the task is registered here and its files
// load, the teacher endpoint and models exist here, and every path a config names lies inside the operator's roots. Runs as the pipeline's first
// activity, so a bad config fails before the teacher is paid; path checks run again where paths are used.
import { InvalidConfigError, parsePipelineConfig, studentFamilyGiven, type PipelineConfig, type StudentFamilyChoice } from '../config/pipeline';
import { pipelinePlan, type PipelinePlan } from '../config/plan';
import type { DecoderBaseName } from '../config/decoder-bases';
import type { SupertinyEnv } from '../config/env';
import type { TaskResources } from './task-resources';
import { baseModelPath } from './worker-paths';
import { studentFamilyChoice, studentFamilyProblem } from '../tasks/argument-kinds';

/**
 * The config resolved with the family chosen from its task's schema, when `input` (the config as the user wrote
 * it) names no student family; the config as it is otherwise. A chosen decoder starts from `decoderBase` (the
 * worker's SUPERTINY_FREE_TEXT_BASE) unless the config gives its own baseModelPath. A setting the chosen family refuses is an
 * InvalidConfigError that says the family was chosen and why.
 */
export async function resolveStudentFamily(
  config: PipelineConfig,
  input: unknown,
  resources: TaskResources,
  decoderBase?: DecoderBaseName,
): Promise<{ config: PipelineConfig; studentFamily?: StudentFamilyChoice }> {
  if (input === undefined || studentFamilyGiven(input)) return { config };
  resources.taskDefinition(config);
  const { task } = await resources.loadTask(config);
  // A config with its own model folder (baseModelPath) starts from it, not from a registry base.
  const ownFolder = (input as { transfer?: { student?: { baseModelPath?: unknown } } }).transfer?.student?.baseModelPath !== undefined;
  const studentFamily = studentFamilyChoice(task, ownFolder ? undefined : decoderBase);
  try {
    return { config: parsePipelineConfig(input, studentFamily.family, studentFamily.base), studentFamily };
  } catch (err) {
    if (!(err instanceof InvalidConfigError)) throw err;
    const note = ` (the config names no student family, and "${studentFamily.family}" was chosen from the task's schema: ${studentFamily.reason}; name transfer.student.family to choose another)`;
    throw new InvalidConfigError(err.issues.map((issue) => ({ ...issue, message: issue.message + note })));
  }
}

/**
 * The plan of `input` (the config as the user wrote it), resolved and checked on this worker: the schema, the
 * student family (from the task's schema when the config names none), and every worker-side check.
 */
export async function resolvePlan(input: unknown, env: SupertinyEnv, resources: TaskResources): Promise<PipelinePlan> {
  const { config, studentFamily } = await checkConfigOnWorker(parsePipelineConfig(input), env, resources, input);
  return pipelinePlan(config, studentFamily);
}

/**
 * Every worker-side check of a config; throws InvalidConfigError (non-retryable) naming the field. With
 * `input`, the config as the user wrote it, a config that names no student family gets the family its task's
 * schema needs (resolveStudentFamily); the checks run on the resolved config, which is returned with the choice.
 */
export async function checkConfigOnWorker(
  provisional: PipelineConfig,
  env: SupertinyEnv,
  resources: TaskResources,
  input?: unknown,
): Promise<{ config: PipelineConfig; studentFamily?: StudentFamilyChoice }> {
  resources.taskDefinition(provisional);
  const { config, studentFamily } = await resolveStudentFamily(provisional, input, resources, env.freeTextDecoderBase);
  const teacher = resources.checkTeacher(config);
  if (config.teacher.judge.enabled) resources.checkTeacher(config, config.teacher.judge.model);
  const { task } = await resources.loadTask(config);
  const familyProblem = studentFamilyProblem(task, config.transfer.student.family);
  if (familyProblem) throw new InvalidConfigError([{ path: 'transfer.student.family', message: familyProblem }]);
  if (teacher.simulated) {
    // The simulator answers from gold calls: an unlabelled input would get a guess, not a teacher's answer.
    const train = (await task.dataset.load('train')).slice(0, config.task.trainLimit);
    const unlabelled = train.filter((e) => !task.gold(e)).length;
    if (unlabelled > 0) {
      throw new InvalidConfigError([
        {
          path: 'teacher.endpoint',
          message: `the teacher simulator answers from gold calls, and ${unlabelled} of the ${train.length} train inputs of task "${config.task.name}" have none: name a real teacher endpoint (SUPERTINY_TEACHER_ENDPOINTS) or label the train inputs`,
        },
      ]);
    }
  }
  await baseModelPath(env, config.transfer.student, 'transfer.student.baseModelPath');
  if (config.transfer.steps.includes('kd')) await baseModelPath(env, config.transfer.kdTeacher, 'transfer.kdTeacher.baseModelPath');
  return studentFamily ? { config, studentFamily } : { config };
}
