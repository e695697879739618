// A trainer run stored under an output key, as every stage runs one: a trainer command in the run folder of its
// output key, its output folder stored as a directory artifact and memoised under that key. runTrainer
// heartbeats and resumes a retried attempt from the newest checkpoint in the run folder, which is the key's, so
// every attempt finds it. trainerStep, the one activity of every trainer step of the plan, is made of it.
import * as path from 'node:path';
import { writeFileAtomic } from '../../artifacts/atomic-write';
import type { ArtifactRef } from '../../artifacts/ref';
import type { TrainerStepPlan } from '../../config/trainer-steps';
import { taskDescription, taskDescriptionFile } from '../../tasks/task-description';
import type { ActivityDeps } from '../deps';
import { activityOutputKey } from '../output-keys';
import type { TaskResources } from '../task-resources';
import { baseModelPath } from '../worker-paths';
import { runTrainer, type TrainerCommand } from './trainer-process';

export interface TrainedModel extends Record<string, unknown> {
  model: ArtifactRef;
  metrics: Record<string, number>;
}

/** Where a run's config puts its inputs: copies of artifacts under the run folder's inputs/. */
export interface RunInputs {
  runDir: string;
  /** A directory artifact copied to inputs/<name>; returns its path. */
  folder(ref: ArtifactRef, name: string): Promise<string>;
  /** A file artifact copied to inputs/<name>; returns its path. */
  file(ref: ArtifactRef, name: string): Promise<string>;
}

export interface StoredTrainerRun {
  /** The output key (activityOutputKey): what the run's output depends on. */
  key: string;
  command: TrainerCommand;
  /** The trainer output to store (done.outputs[name]) and the artifact kind it is stored as. */
  output: TrainerStepPlan['output'];
  /** The command's config, its input paths put in place by `inputs`. */
  config: (inputs: RunInputs) => Promise<Record<string, unknown>>;
}

export function createStoredTrainerRun({ store, env }: Pick<ActivityDeps, 'store' | 'env'>) {
  return async function storedTrainerRun({ key, command, output, config }: StoredTrainerRun): Promise<TrainedModel> {
    const { value } = await store.memo(key, async () => {
      const runDir = await store.workDir(key);
      const inputs: RunInputs = {
        runDir,
        folder: (ref, name) => store.materializeDirectory(ref, path.join(runDir, 'inputs', name)),
        file: (ref, name) => store.materializeFile(ref, path.join(runDir, 'inputs', name)),
      };
      const done = await runTrainer({ env, command, config: await config(inputs), runDir });
      const folder = done.outputs[output.name];
      if (!folder) throw new Error(`trainer ${command} reported no "${output.name}" output (outputs: ${Object.keys(done.outputs).join(', ')})`);
      return { model: await store.putDirectory(output.kind, folder), metrics: numericMetrics(done.metrics) };
    });
    return value;
  };
}

export interface TrainerStepInput {
  plan: TrainerStepPlan;
  /** One artifact for each of the plan's input roles. */
  inputs: Record<string, ArtifactRef>;
}

/** The trainerStep activity: any trainer step of the plan, after the worker-side preparations it names. */
export function createTrainerStepActivity(deps: ActivityDeps, resources: Pick<TaskResources, 'loadTask'>) {
  const { env } = deps;
  const storedTrainerRun = createStoredTrainerRun(deps);
  return async function trainerStep({ plan, inputs }: TrainerStepInput): Promise<TrainedModel> {
    const roles = Object.keys(plan.inputs);
    const missing = roles.filter((role) => !inputs[role]);
    if (missing.length > 0) throw new Error(`trainer step ${plan.name} was given no ${missing.join(', ')} artifact`);
    // The checked real path: a config cannot point the trainer outside the worker's model roots.
    const baseModel = plan.baseModelField ? { base_model: await baseModelPath(env, { baseModelPath: String(plan.config.base_model) }, plan.baseModelField) } : {};
    const task = plan.taskFile ? taskDescriptionFile(taskDescription((await resources.loadTask({ task: plan.taskFile })).task)) : undefined;
    const hashes = Object.fromEntries(roles.map((role) => [role, inputs[role]!.sha256]));
    const key = await activityOutputKey(env.projectRoot, 'trainerStep', { plan, inputs: { ...hashes, ...baseModel, task: task?.sha256 ?? null } }, plan.name);
    return storedTrainerRun({
      key,
      command: plan.command,
      output: plan.output,
      config: async (run) => {
        const paths: Record<string, string> = {};
        for (const [role, { field, file, kind }] of Object.entries(plan.inputs)) paths[field] = await run[kind](inputs[role]!, file);
        return { ...plan.config, ...baseModel, ...paths, ...(task ? { task: await writeTaskFile(run.runDir, task.text) } : {}) };
      },
    });
  };
}

/** Writes the task description into a run folder's inputs; returns its path (the trainer field `task`). */
async function writeTaskFile(runDir: string, text: string): Promise<string> {
  const file = path.join(runDir, 'inputs', 'task.json');
  await writeFileAtomic(file, text);
  return file;
}

function numericMetrics(metrics: Record<string, unknown>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).filter((e): e is [string, number] => typeof e[1] === 'number'));
}
