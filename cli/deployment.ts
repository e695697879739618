// The deployment commands (runtime/deployments.ts: DIR/versions/<id>/, DIR/current.json, DIR/history.jsonl):
//   supertiny deploy --deployment DIR --model FOLDER      checks a student folder, then starts DIR with it or adds and promotes it
//   supertiny rollback --deployment DIR [--reason TEXT]   points DIR back at the version served before
//   supertiny deployment status --deployment DIR          the current version, the previous ones, the last switches
// A running `supertiny serve --deployment DIR` follows every switch.
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULT_TASK_NAME } from '../config/pipeline';
import {
  addVersion,
  DeploymentError,
  initDeployment,
  listVersions,
  promote,
  readCurrent,
  readHistory,
  readVersionInfo,
  rollback,
  type CurrentPointer,
  type VersionInfo,
} from '../runtime/deployments';
import { warmUp } from '../runtime/serve';
import { loadStudent } from '../runtime/student';
import { loadBuiltInTask } from '../tasks/built-in';
import type { TaskFiles } from '../tasks/registry';

export const DEPLOY_USAGE = `usage: supertiny deploy --deployment DIR --model FOLDER [--task NAME [--task-data FILE] [--task-functions FILE]] [--model-file model.onnx] [--reason TEXT]
  Checks that FOLDER (a report's student folder) loads with the task and answers, then makes DIR a deployment serving it (a new DIR)
  or adds it to DIR as a version and promotes it. The task defaults to the one DIR's current version recorded, else "${DEFAULT_TASK_NAME}";
  a version of another task or student family than the current one is refused. \`supertiny serve --deployment DIR\` follows the switch.`;
export const ROLLBACK_USAGE = `usage: supertiny rollback --deployment DIR [--reason TEXT]
  Points DIR/current.json back at the version served before the current one (recorded in DIR/history.jsonl).`;
export const DEPLOYMENT_STATUS_USAGE = `usage: supertiny deployment status --deployment DIR [--history 10]
  The version DIR serves, the versions served before it, every stored version and the last switches.`;

export class DeploymentUsageError extends Error {
  constructor(message: string, usage: string) {
    super(`${message}\n${usage}`);
    this.name = 'DeploymentUsageError';
  }
}

const COMMON = { help: { type: 'boolean', short: 'h' }, deployment: { type: 'string' } } as const satisfies ParseArgsConfig['options'];
const DEPLOY_OPTIONS = {
  ...COMMON,
  model: { type: 'string' },
  task: { type: 'string' },
  'task-data': { type: 'string' },
  'task-functions': { type: 'string' },
  'model-file': { type: 'string', default: 'model.onnx' },
  reason: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];
const ROLLBACK_OPTIONS = { ...COMMON, reason: { type: 'string' } } as const satisfies ParseArgsConfig['options'];
const STATUS_OPTIONS = { ...COMMON, history: { type: 'string', default: '10' } } as const satisfies ParseArgsConfig['options'];

function parse<const O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, usage: string) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new DeploymentUsageError((err as Error).message, usage);
  }
}

function requireDir(values: { deployment?: string | boolean }, usage: string): string {
  if (typeof values.deployment !== 'string') throw new DeploymentUsageError('--deployment DIR is required', usage);
  return path.resolve(values.deployment);
}

/** Whether the arguments ask for a command's usage (`--help` or `-h` anywhere). */
export function wantsHelp(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

export interface DeployResult {
  dir: string;
  version: string;
  /** init: DIR had no deployment; promote: the version is served now; unchanged: it already was. */
  action: 'init' | 'promote' | 'unchanged';
  previous: string | undefined;
  task: string;
  family: string;
}

/** `supertiny deploy`: checks the student folder as serve would, then initialises the deployment or promotes it. */
export async function deploy(args: string[]): Promise<DeployResult> {
  const values = parse(args, DEPLOY_OPTIONS, DEPLOY_USAGE);
  const dir = requireDir(values, DEPLOY_USAGE);
  if (typeof values.model !== 'string') throw new DeploymentUsageError('--model FOLDER is required (a student folder, e.g. a report\'s student/)', DEPLOY_USAGE);
  const folder = path.resolve(values.model);
  const current = await readCurrent(dir);
  const currentInfo = current ? await readVersionInfo(dir, current.version) : undefined;
  const taskName = values.task ?? currentInfo?.task ?? DEFAULT_TASK_NAME;
  if (currentInfo?.task !== undefined && currentInfo.task !== taskName) {
    throw new DeploymentError(`${dir} serves task "${currentInfo.task}" (version ${current!.version}); ${folder} is deployed for task "${taskName}": a deployment's versions must be of one task`);
  }
  const files: TaskFiles = {};
  if (typeof values['task-data'] === 'string') files.data = path.resolve(values['task-data']);
  if (typeof values['task-functions'] === 'string') files.functions = path.resolve(values['task-functions']);
  const task = await loadBuiltInTask(taskName, files);
  // The check serve makes before a swap, made before the pointer moves: a folder that would be refused is not deployed.
  let family: string;
  try {
    const student = await loadStudent(folder, { task, modelFile: values['model-file'], threads: 1 });
    try {
      family = student.family;
      await warmUp(student);
    } finally {
      await student.release();
    }
  } catch (err) {
    throw new DeploymentError(`${folder} is not deployed: ${(err as Error).message}`);
  }
  if (currentInfo?.family !== undefined && currentInfo.family !== family) {
    throw new DeploymentError(`${dir} serves a ${currentInfo.family} student (version ${current!.version}); ${folder} is a ${family} student: a deployment's versions must be of one family`);
  }
  const info = { task: taskName, family };
  if (!current) {
    const pointer = await initDeployment(dir, folder, info);
    return { dir, version: pointer.version, action: 'init', previous: undefined, task: taskName, family };
  }
  const version = await addVersion(dir, folder, info);
  const pointer = await promote(dir, version, values.reason ?? `supertiny deploy ${folder}`);
  return { dir, version, action: version === current.version ? 'unchanged' : 'promote', previous: pointer.previous[0], task: taskName, family };
}

/** `supertiny rollback`: the pointer back to the version served before. */
export async function rollbackDeployment(args: string[]): Promise<CurrentPointer & { from: string }> {
  const values = parse(args, ROLLBACK_OPTIONS, ROLLBACK_USAGE);
  const dir = requireDir(values, ROLLBACK_USAGE);
  const current = await readCurrent(dir);
  if (!current) throw new DeploymentError(`${dir} has no current.json: nothing is deployed there`);
  const pointer = await rollback(dir, values.reason ?? 'supertiny rollback');
  return { ...pointer, from: current.version };
}

export interface DeploymentStatusReport {
  dir: string;
  current: CurrentPointer;
  versions: { id: string; current: boolean; info?: VersionInfo }[];
  history: Awaited<ReturnType<typeof readHistory>>;
}

/** `supertiny deployment status`: what DIR serves, what it served before, what it stores. */
export async function deploymentStatus(args: string[]): Promise<DeploymentStatusReport> {
  const values = parse(args, STATUS_OPTIONS, DEPLOYMENT_STATUS_USAGE);
  const dir = requireDir(values, DEPLOYMENT_STATUS_USAGE);
  const count = Number(values.history);
  if (!Number.isInteger(count) || count < 0) throw new DeploymentUsageError(`--history must be a non-negative integer, got ${JSON.stringify(values.history)}`, DEPLOYMENT_STATUS_USAGE);
  const current = await readCurrent(dir);
  if (!current) throw new DeploymentError(`${dir} has no current.json: nothing is deployed there (start one with \`supertiny deploy --deployment ${dir} --model FOLDER\`)`);
  const { path: _folder, ...pointer } = current;
  const versions = await Promise.all(
    (await listVersions(dir)).map(async (id) => ({ id, current: id === current.version, info: await readVersionInfo(dir, id) })),
  );
  return { dir, current: pointer, versions, history: count === 0 ? [] : await readHistory(dir, count) };
}

/** The status as an operator reads it. */
export function formatDeploymentStatus(report: DeploymentStatusReport): string {
  const { current } = report;
  const describe = (info: VersionInfo | undefined) =>
    info ? [info.task && `task ${info.task}`, info.family, `added ${info.addedAt}`, `from ${info.source}`].filter(Boolean).join(', ') : 'no deployment-version.json';
  const lines = [
    `deployment ${report.dir}`,
    `current:  ${current.version} (since ${current.switchedAt}: ${current.reason})`,
    `previous: ${current.previous.length ? current.previous.join(', ') : '(none: rollback has nowhere to go)'}`,
    `versions (${report.versions.length}):`,
    ...report.versions.map((v) => `  ${v.current ? '*' : ' '} ${v.id}  ${describe(v.info)}`),
  ];
  if (report.history.length) {
    lines.push(`last ${report.history.length} switch${report.history.length === 1 ? '' : 'es'}:`);
    lines.push(...report.history.map((h) => `  ${h.time}  ${h.action.padEnd(8)} ${h.from ?? '-'} -> ${h.to}  (${h.reason})`));
  }
  return `${lines.join('\n')}\n`;
}
