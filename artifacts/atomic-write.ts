// Writes that are whole: the content goes to a temporary file in the destination's folder, the file is
// flushed to disk (fsync), renamed over the final name, and the folder is flushed so that the rename itself
// survives a power loss. A crash at any moment leaves the old file or the new one under the final name (or
// nothing, for a new file), never a part of either; a leftover `*.partial` file is only ever garbage.
// Every file the TypeScript side stores goes through here.
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, promises as fs, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

// Windows cannot open a folder to flush it; there the rename is as durable as NTFS makes it.
const canSyncFolders = process.platform !== 'win32';

/** The temporary name a write of `file` uses until it is renamed into place. */
function partialPathOf(file: string): string {
  return `${file}.${randomUUID()}.partial`;
}

/** Writes `content` to `file` whole (folders are created as needed). */
export async function writeFileAtomic(file: string, content: string | Uint8Array): Promise<void> {
  await replaceFile(file, (tmp) => fs.writeFile(tmp, content, { flag: 'wx' }));
}

/**
 * Copies `source` to `file` whole. `check` runs on the finished copy before it replaces `file` (a throw
 * leaves `file` as it was), so a caller can verify exactly the bytes that will be published.
 */
export async function copyFileAtomic(source: string, file: string, check?: (copy: string) => Promise<void>): Promise<void> {
  await replaceFile(file, async (tmp) => {
    await fs.copyFile(source, tmp);
    await check?.(tmp);
  });
}

/**
 * The same steps, synchronously: for a write that must be on disk before the event loop runs anything else
 * (a paid teacher answer). Blocks for two fsyncs.
 */
export function writeFileAtomicSync(file: string, content: string | Uint8Array): void {
  const dir = path.dirname(file);
  const folders = foldersToSync(dir, mkdirSync(dir, { recursive: true }));
  const tmp = partialPathOf(file);
  try {
    writeFileSync(tmp, content, { flag: 'wx' });
    syncPathSync(tmp);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (canSyncFolders) folders.forEach(syncPathSync);
}

async function replaceFile(file: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const dir = path.dirname(file);
  const folders = foldersToSync(dir, await fs.mkdir(dir, { recursive: true }));
  const tmp = partialPathOf(file);
  try {
    await fill(tmp);
    await syncPath(tmp);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  if (canSyncFolders) for (const folder of folders) await syncPath(folder);
}

/**
 * The folders whose entries a write into `dir` changes: `dir` itself, and when mkdir had to create folders
 * (`created` is the first one), each new folder and the parent of the first, so that the path survives too.
 */
function foldersToSync(dir: string, created: string | undefined): string[] {
  const folders = [dir];
  if (created === undefined) return folders;
  for (let folder = dir; folder !== created && folder !== path.dirname(folder); ) {
    folder = path.dirname(folder);
    folders.push(folder);
  }
  folders.push(path.dirname(created));
  return folders;
}

/** fsync of a file or a folder (a read-only descriptor is enough on POSIX systems). */
async function syncPath(target: string): Promise<void> {
  const handle = await fs.open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function syncPathSync(target: string): void {
  const fd = openSync(target, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
