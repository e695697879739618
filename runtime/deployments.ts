// A deployment folder: the student versions a service has served and the pointer to the one it serves now.
//   DIR/versions/<id>/    a student folder (what `supertiny serve --model` takes), copied in whole, never changed
//   DIR/current.json      { version, previous: [ids, newest first], switchedAt, reason }, replaced atomically
//   DIR/history.jsonl     one line per switch: { time, action: init|promote|rollback, from, to, reason }
// `serve --deployment DIR` follows current.json; a refresh adds a version and promotes it; `supertiny rollback`
// switches back to the version served before. Every switch is one atomic rename of current.json, so a
// reader sees the old pointer or the new one, never half of one.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../artifacts/atomic-write';

export const CURRENT_FILE = 'current.json';
export const HISTORY_FILE = 'history.jsonl';
export const VERSIONS_DIR = 'versions';
/** Written into each version folder: where it came from. */
export const VERSION_INFO_FILE = 'deployment-version.json';

const VERSION_ID = /^[a-z0-9][a-z0-9-]{0,80}$/;

export const CurrentPointerSchema = z.object({
  version: z.string().regex(VERSION_ID),
  previous: z.array(z.string().regex(VERSION_ID)),
  switchedAt: z.string(),
  reason: z.string(),
});
export type CurrentPointer = z.infer<typeof CurrentPointerSchema>;

export interface HistoryLine {
  time: string;
  action: 'init' | 'promote' | 'rollback';
  from: string | null;
  to: string;
  reason: string;
}

export class DeploymentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeploymentError';
  }
}

export function versionFolder(dir: string, version: string): string {
  if (!VERSION_ID.test(version)) throw new DeploymentError(`not a version id: ${JSON.stringify(version)}`);
  return path.join(dir, VERSIONS_DIR, version);
}

/** The pointer, or undefined when the folder has none yet; a damaged pointer is an error that names the file. */
/** A JSON file of the deployment parsed with `schema`, or undefined when it is missing; a damaged one is an error naming it. */
async function readJsonFile<T>(file: string, schema: z.ZodType<T>): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return schema.parse(JSON.parse(text));
  } catch (err) {
    throw new DeploymentError(`${file} is damaged: ${(err as Error).message.split('\n')[0]}`);
  }
}

export async function readCurrent(dir: string): Promise<(CurrentPointer & { path: string }) | undefined> {
  const parsed = await readJsonFile(path.join(dir, CURRENT_FILE), CurrentPointerSchema);
  return parsed && { ...parsed, path: versionFolder(dir, parsed.version) };
}

/** The versions stored in the folder, oldest first (ids start with their creation time). */
export async function listVersions(dir: string): Promise<string[]> {
  const names = await fs.readdir(path.join(dir, VERSIONS_DIR)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names.filter((n) => VERSION_ID.test(n)).sort();
}

async function folderDigest(folder: string): Promise<string> {
  const hash = createHash('sha256');
  for (const name of (await fs.readdir(folder)).sort()) {
    const stat = await fs.stat(path.join(folder, name));
    if (!stat.isFile()) continue;
    hash.update(name).update('\0').update(await fs.readFile(path.join(folder, name))).update('\0');
  }
  return hash.digest('hex');
}

/**
 * Copies a student folder into the deployment as a new version (a temporary folder renamed into place, so a
 * version that exists is whole) and returns its id: creation time and the content's digest. The same content
 * added twice gives the version already there.
 */
export async function addVersion(dir: string, studentFolder: string, info: Record<string, unknown> = {}): Promise<string> {
  const stat = await fs.stat(studentFolder).catch(() => undefined);
  if (!stat?.isDirectory()) throw new DeploymentError(`not a student folder: ${studentFolder}`);
  const digest = await folderDigest(studentFolder);
  for (const existing of await listVersions(dir)) {
    if (existing.endsWith(`-${digest.slice(0, 12)}`)) return existing;
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase();
  const id = `${stamp}-${digest.slice(0, 12)}`;
  const versions = path.join(dir, VERSIONS_DIR);
  await fs.mkdir(versions, { recursive: true });
  const temp = path.join(versions, `.tmp-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(temp);
  try {
    for (const name of await fs.readdir(studentFolder)) {
      const source = path.join(studentFolder, name);
      if ((await fs.stat(source)).isFile()) await fs.copyFile(source, path.join(temp, name));
    }
    await writeFileAtomic(path.join(temp, VERSION_INFO_FILE), `${JSON.stringify({ id, digest, source: path.resolve(studentFolder), addedAt: new Date().toISOString(), ...info }, null, 2)}\n`);
    await fs.rename(temp, path.join(versions, id));
  } catch (err) {
    await fs.rm(temp, { recursive: true, force: true });
    throw err;
  }
  return id;
}

async function appendHistory(dir: string, line: HistoryLine): Promise<void> {
  const handle = await fs.open(path.join(dir, HISTORY_FILE), 'a');
  try {
    await handle.write(`${JSON.stringify(line)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Points the deployment at `version` (which must be stored); the version served until now goes onto `previous`. */
export async function promote(dir: string, version: string, reason: string): Promise<CurrentPointer> {
  await fs.access(versionFolder(dir, version)).catch(() => {
    throw new DeploymentError(`no version ${version} in ${dir}`);
  });
  const current = await readCurrent(dir);
  if (current?.version === version) return current;
  const next: CurrentPointer = {
    version,
    previous: current ? [current.version, ...current.previous.filter((v) => v !== version)].slice(0, 50) : [],
    switchedAt: new Date().toISOString(),
    reason,
  };
  await writeFileAtomic(path.join(dir, CURRENT_FILE), `${JSON.stringify(next, null, 2)}\n`);
  await appendHistory(dir, { time: next.switchedAt, action: current ? 'promote' : 'init', from: current?.version ?? null, to: version, reason });
  return next;
}

/** Points the deployment back at the version served before the current one. */
export async function rollback(dir: string, reason: string): Promise<CurrentPointer> {
  const current = await readCurrent(dir);
  if (!current) throw new DeploymentError(`${dir} has no ${CURRENT_FILE}: nothing is deployed there`);
  const [back, ...rest] = current.previous;
  if (back === undefined) throw new DeploymentError(`${dir}: version ${current.version} is the first one deployed; there is nothing to roll back to`);
  await fs.access(versionFolder(dir, back)).catch(() => {
    throw new DeploymentError(`${dir}: the previous version ${back} is no longer stored`);
  });
  const next: CurrentPointer = { version: back, previous: rest, switchedAt: new Date().toISOString(), reason };
  await writeFileAtomic(path.join(dir, CURRENT_FILE), `${JSON.stringify(next, null, 2)}\n`);
  await appendHistory(dir, { time: next.switchedAt, action: 'rollback', from: current.version, to: back, reason });
  return next;
}

/** Makes `dir` a deployment serving `studentFolder` when it has no pointer yet; returns the pointer either way. */
export async function initDeployment(dir: string, studentFolder: string, info: Record<string, unknown> = {}): Promise<CurrentPointer> {
  const current = await readCurrent(dir);
  if (current) return current;
  const version = await addVersion(dir, studentFolder, info);
  return promote(dir, version, 'first deployment');
}

/** deployment-version.json: where a version came from; `task` and `family` when the writer recorded them. */
export const VersionInfoSchema = z.looseObject({
  id: z.string(),
  digest: z.string(),
  source: z.string(),
  addedAt: z.string(),
  task: z.string().optional(),
  family: z.string().optional(),
});
export type VersionInfo = z.infer<typeof VersionInfoSchema>;

/** A version's deployment-version.json, or undefined when it has none; a damaged one is an error naming the file. */
export async function readVersionInfo(dir: string, version: string): Promise<VersionInfo | undefined> {
  return readJsonFile(path.join(versionFolder(dir, version), VERSION_INFO_FILE), VersionInfoSchema);
}

/** The last `count` switches of history.jsonl, oldest first ([] without a history); a damaged line is an error naming it. */
export async function readHistory(dir: string, count = Number.POSITIVE_INFINITY): Promise<HistoryLine[]> {
  const file = path.join(dir, HISTORY_FILE);
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const lines = text.split('\n').map((line, i) => ({ line, number: i + 1 })).filter(({ line }) => line.trim() !== '');
  return lines.slice(Math.max(0, lines.length - count)).map(({ line, number }) => {
    try {
      return JSON.parse(line) as HistoryLine;
    } catch (err) {
      throw new DeploymentError(`${file} line ${number} is damaged: ${(err as Error).message}`);
    }
  });
}
