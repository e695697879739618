// Content-addressed artifact store on a local folder.
//   blobs/sha256/ab/<sha256>   immutable file contents
//   outputs/<key>.json         which refs an activity produced for a given input key
// Every write is whole (artifacts/atomic-write.ts: temporary file, fsync, rename, fsync of the folder), and
// blobs are on disk before an output record names them, so a crash or a power loss never leaves a partial
// blob or record under its final name. A record that is damaged anyway is treated as missing and redone.
import { createHash, randomUUID } from 'node:crypto';
import { FailureType, SupertinyError } from '../config/failure-types';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { createLogger } from '../config/logger';
import { copyFileAtomic, writeFileAtomic } from './atomic-write';
import { ArtifactRef, ArtifactRefSchema, blobLocation, collectRefs, SHA256_PATTERN } from './ref';
import { isPlainRelativePath, joinInside } from './confined-path';

export { collectRefs };

const log = createLogger('store');

export abstract class ArtifactError extends SupertinyError {
  constructor(
    message: string,
    readonly ref: ArtifactRef,
  ) {
    super(message);
  }
  override failureDetails(): unknown[] {
    return [this.ref];
  }
}
export class ArtifactMissingError extends ArtifactError {
  readonly failureType = FailureType.ArtifactMissing;
}
export class ArtifactCorruptedError extends ArtifactError {
  readonly failureType = FailureType.ArtifactCorrupted;
}

/** The blob a directory artifact names is not a manifest whose member paths stay inside the folder. */
export class InvalidManifestError extends SupertinyError {
  readonly failureType = FailureType.InvalidInput;
}

/** A directory artifact is stored as a manifest blob naming one blob per file, by a path inside the folder. */
const DirectoryManifestSchema = z
  .object({
    files: z
      .array(
        z
          .object({
            path: z.string().max(1024).refine(isPlainRelativePath, 'must be a relative path inside the folder (no empty, ".", ".." or absolute parts)'),
            sha256: z.string().regex(SHA256_PATTERN),
            bytes: z.number().int().nonnegative(),
          })
          .strict(),
      )
      .max(100_000)
      .refine((files) => new Set(files.map((f) => f.path)).size === files.length, 'names a path twice'),
  })
  .strict();
export type DirectoryManifest = z.infer<typeof DirectoryManifestSchema>;

export async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** A stable key for "this activity with these inputs": canonical JSON (sorted keys) hashed. */
export function outputKey(name: string, inputs: unknown): string {
  return `${name}-${createHash('sha256').update(canonicalJson(inputs)).digest('hex').slice(0, 32)}`;
}

export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}

export class ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  private blobPath(sha256: string): string {
    if (!SHA256_PATTERN.test(sha256)) throw new Error('an artifact is named by 64 lowercase hex characters');
    return path.join(this.root, blobLocation(sha256));
  }

  /**
   * Local path of a ref's blob (for child processes such as the trainer). Does not verify. Always this
   * store's blob for the ref's sha256: the ref's uri is never followed, so a ref names no other file.
   */
  pathOf(ref: ArtifactRef): string {
    return this.blobPath(ref.sha256);
  }

  /** A fresh scratch folder inside the store's volume (same filesystem, so renames are atomic). */
  async scratchDir(prefix: string): Promise<string> {
    const dir = path.join(this.root, 'tmp', `${prefix}-${randomUUID()}`);
    await fs.mkdir(dir, { recursive: true });
    return dir;
  }

  /** A stable work folder for one activity's output key: resumable work (checkpoints) lives here. */
  async workDir(key: string): Promise<string> {
    const dir = path.join(this.root, 'work', key);
    await fs.mkdir(dir, { recursive: true });
    return dir;
  }

  async putBytes(kind: string, content: Buffer | string): Promise<ArtifactRef> {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return this.putBlob(kind, { sha256, bytes: bytes.length }, (dest) => writeFileAtomic(dest, bytes));
  }

  async putJson(kind: string, value: unknown): Promise<ArtifactRef> {
    return this.putBytes(kind, JSON.stringify(value, null, 2) + '\n');
  }

  async putJsonl(kind: string, rows: readonly unknown[]): Promise<ArtifactRef> {
    return this.putBytes(kind, rows.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  /** Copies a file into the store (the source is left in place). */
  async putFile(kind: string, file: string): Promise<ArtifactRef> {
    return this.putBlob(kind, await sha256File(file), (dest) => copyFileAtomic(file, dest));
  }

  /** Writes the blob of `content` with `write` unless a whole copy is already there. */
  private async putBlob(kind: string, content: { sha256: string; bytes: number }, write: (dest: string) => Promise<void>): Promise<ArtifactRef> {
    const { sha256, bytes } = content;
    const dest = this.blobPath(sha256);
    const existing = await fs.stat(dest).catch(() => undefined);
    if (!existing || existing.size !== bytes || (await sha256File(dest)).sha256 !== sha256) await write(dest);
    return { uri: pathToFileURL(dest).href, sha256, bytes, kind };
  }

  /** Stores every file of a folder and a manifest naming them; the ref points to the manifest. */
  async putDirectory(kind: string, dir: string): Promise<ArtifactRef> {
    if (!isDirectoryKind(kind)) throw new Error(`directory artifact kinds end with "/dir", got ${JSON.stringify(kind)}`);
    const files: DirectoryManifest['files'] = [];
    for (const rel of await listFiles(dir)) {
      const ref = await this.putFile(`${kind}/file`, path.join(dir, rel));
      files.push({ path: rel, sha256: ref.sha256, bytes: ref.bytes });
    }
    return this.putJson(kind, { files } satisfies DirectoryManifest);
  }

  /** A directory artifact with one file added (or replaced), its other files shared with `dir`'s, nothing copied. */
  async withFile(dir: ArtifactRef, name: string, content: Buffer | string): Promise<ArtifactRef> {
    if (!isDirectoryKind(dir.kind)) throw new Error(`withFile needs a directory artifact, got ${JSON.stringify(dir.kind)}`);
    if (name !== path.basename(name) || name === '.' || name === '..') throw new Error(`withFile adds a file at the folder's top, got ${JSON.stringify(name)}`);
    const manifest = await this.readJson<DirectoryManifest>(dir);
    const file = await this.putBytes(`${dir.kind}/file`, content);
    const files = [...manifest.files.filter((f) => f.path !== name), { path: name, sha256: file.sha256, bytes: file.bytes }].sort((a, b) => a.path.localeCompare(b.path));
    return this.putJson(dir.kind, { files } satisfies DirectoryManifest);
  }

  /** Throws ArtifactMissingError / ArtifactCorruptedError unless the blob exists with the ref's hash. */
  async verify(ref: ArtifactRef): Promise<string> {
    ArtifactRefSchema.parse(ref);
    const file = this.pathOf(ref);
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat) throw new ArtifactMissingError(`artifact ${ref.kind} ${ref.sha256.slice(0, 12)} is missing`, ref);
    checkContent(ref, await sha256File(file));
    return file;
  }

  async readBytes(ref: ArtifactRef): Promise<Buffer> {
    const file = await this.verify(ref);
    const content = await fs.readFile(file);
    // Guard against a change between verify and read.
    if (createHash('sha256').update(content).digest('hex') !== ref.sha256) {
      throw new ArtifactCorruptedError(`artifact ${ref.kind} ${ref.sha256.slice(0, 12)} changed while being read`, ref);
    }
    return content;
  }

  async readText(ref: ArtifactRef): Promise<string> {
    return (await this.readBytes(ref)).toString('utf8');
  }

  async readJson<T = unknown>(ref: ArtifactRef): Promise<T> {
    return JSON.parse(await this.readText(ref)) as T;
  }

  async readJsonl<T = unknown>(ref: ArtifactRef): Promise<T[]> {
    const text = await this.readText(ref);
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as T);
  }

  /**
   * Copies a file artifact to `dest` and verifies the copy, not the source: a child process that reads
   * `dest` sees exactly the bytes the ref names, even if the blob is damaged a moment later.
   */
  async materializeFile(ref: ArtifactRef, dest: string): Promise<string> {
    // Only the copy is hashed: hashing the blob first as well would read every input twice.
    ArtifactRefSchema.parse(ref);
    const src = this.pathOf(ref);
    await copyFileAtomic(src, dest, async (copy) => checkContent(ref, await sha256File(copy))).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' && err.path === src) throw new ArtifactMissingError(`artifact ${ref.kind} ${ref.sha256.slice(0, 12)} is missing`, ref);
      throw err;
    });
    return dest;
  }

  /** Copies every file of a directory artifact into `dest` (created fresh), verifying each copy. */
  async materializeDirectory(ref: ArtifactRef, dest: string): Promise<string> {
    const manifest = await this.readManifest(ref);
    await fs.rm(dest, { recursive: true, force: true });
    for (const file of manifest.files) {
      try {
        await this.materializeFile(this.memberRef(ref, file), joinInside(dest, file.path));
      } catch (err) {
        throw this.asDirectoryError(ref, file, err);
      }
    }
    return dest;
  }

  /**
   * A copy of a directory artifact at `dest` that is kept between uses: reused only when it holds exactly
   * the manifest's files with their hashes, rebuilt from the store otherwise (a damaged or changed copy is
   * never trusted). The rebuild goes to a fresh folder that replaces `dest` by rename.
   */
  async ensureDirectoryCopy(ref: ArtifactRef, dest: string): Promise<{ dir: string; rebuilt: boolean; problem?: string }> {
    const manifest = await this.readManifest(ref);
    const problem = await copyProblem(manifest, dest);
    if (!problem) return { dir: dest, rebuilt: false };
    const fresh = `${dest}.${randomUUID()}.partial`;
    const old = `${dest}.${randomUUID()}.old`;
    try {
      await this.materializeDirectory(ref, fresh);
      await fs.rename(dest, old).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await fs.rename(fresh, dest);
    } finally {
      await fs.rm(fresh, { recursive: true, force: true });
      await fs.rm(old, { recursive: true, force: true });
    }
    return { dir: dest, rebuilt: true, problem: problem === 'absent' ? undefined : problem };
  }

  /** Verifies a directory artifact and all its members without copying. */
  async verifyDirectory(ref: ArtifactRef): Promise<void> {
    const manifest = await this.readManifest(ref);
    for (const file of manifest.files) await this.verifyMember(ref, file);
  }

  /** A directory artifact's manifest, whose member paths all stay inside the folder (InvalidManifestError otherwise). */
  async readManifest(ref: ArtifactRef): Promise<DirectoryManifest> {
    const text = await this.readText(ref);
    const notAManifest = (why: string) => new InvalidManifestError(`artifact ${ref.kind} ${ref.sha256.slice(0, 12)} is not a directory manifest: ${why}`);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      // The parser's message quotes the content: say only that it is not JSON.
      throw notAManifest('not JSON');
    }
    const manifest = DirectoryManifestSchema.safeParse(raw);
    if (!manifest.success) {
      throw notAManifest(manifest.error.issues.slice(0, 5).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; '));
    }
    return manifest.data;
  }

  /** A broken member breaks the directory artifact as a whole: the error names the directory ref. */
  private async verifyMember(dir: ArtifactRef, file: DirectoryManifest['files'][number]): Promise<string> {
    try {
      return await this.verify(this.memberRef(dir, file));
    } catch (err) {
      throw this.asDirectoryError(dir, file, err);
    }
  }

  private memberRef(dir: ArtifactRef, file: DirectoryManifest['files'][number]): ArtifactRef {
    return { uri: pathToFileURL(this.blobPath(file.sha256)).href, sha256: file.sha256, bytes: file.bytes, kind: `${dir.kind}/file` };
  }

  private asDirectoryError(dir: ArtifactRef, file: DirectoryManifest['files'][number], err: unknown): unknown {
    if (err instanceof ArtifactError) return new (err.constructor as typeof ArtifactMissingError)(`${err.message} (member ${file.path})`, dir);
    return err;
  }

  private outputPath(key: string): string {
    return path.join(this.root, 'outputs', `${key}.json`);
  }

  /**
   * The refs recorded for `key`, if the record is whole and all of them still verify; otherwise undefined.
   * A record that does not parse, names another key or a ref that no longer verifies is removed, so the
   * work is redone instead of failing on every attempt.
   */
  async findOutput<T extends Record<string, unknown>>(key: string): Promise<T | undefined> {
    const file = this.outputPath(key);
    const raw = await fs.readFile(file, 'utf8').catch(() => undefined);
    if (raw === undefined) return undefined;
    const problem = await this.outputRecordProblem(key, raw);
    if (typeof problem !== 'string') return problem.value as T;
    log.warn(`output record ${key} ${problem}: removed, the work is redone`);
    await fs.rm(file, { force: true });
    return undefined;
  }

  /** Why the record `raw` of `key` cannot be reused, or the record. */
  private async outputRecordProblem(key: string, raw: string): Promise<string | { value: Record<string, unknown> }> {
    let record: { key?: unknown; value?: unknown };
    try {
      record = JSON.parse(raw) as typeof record;
    } catch {
      return raw === '' ? 'is empty' : 'is not JSON (truncated?)';
    }
    if (!record || typeof record !== 'object' || record.key !== key || !record.value || typeof record.value !== 'object') return 'is not a record of this key';
    try {
      for (const ref of collectRefs(record.value)) {
        if (isDirectoryKind(ref.kind)) await this.verifyDirectory(ref);
        else await this.verify(ref);
      }
    } catch (err) {
      // A manifest that is not a manifest is as broken as a missing blob; a failing disk is not ours to hide.
      if (err instanceof ArtifactError || err instanceof InvalidManifestError || err instanceof SyntaxError || err instanceof TypeError || err instanceof z.ZodError) return `names an artifact that does not verify (${(err as Error).message})`;
      throw err;
    }
    return { value: record.value as Record<string, unknown> };
  }

  /** Records `value` as the output of `key`; its blobs are already on disk (each put is whole and flushed). */
  async recordOutput<T extends Record<string, unknown>>(key: string, value: T): Promise<T> {
    await writeFileAtomic(this.outputPath(key), JSON.stringify({ key, value, recordedAt: new Date().toISOString() }, null, 2));
    return value;
  }

  /**
   * Runs `produce` unless an output for `key` already exists and verifies. Returns the output and
   * whether it was reused, so activities can report skipped work.
   */
  async memo<T extends Record<string, unknown>>(key: string, produce: () => Promise<T>): Promise<{ value: T; reused: boolean }> {
    const existing = await this.findOutput<T>(key);
    if (existing) return { value: existing, reused: true };
    return { value: await this.recordOutput(key, await produce()), reused: false };
  }
}

/**
 * Throws ArtifactCorruptedError unless `actual` is the content the ref names. The message names what the ref
 * expects, never what was found (the found hash and size of a file would tell a caller about a file it cannot read).
 */
function checkContent(ref: ArtifactRef, actual: { sha256: string; bytes: number }): void {
  if (actual.sha256 === ref.sha256 && actual.bytes === ref.bytes) return;
  throw new ArtifactCorruptedError(`artifact ${ref.kind} ${ref.sha256.slice(0, 12)} is corrupted: its bytes are not sha256 ${ref.sha256} (${ref.bytes} bytes)`, ref);
}

/** Why the folder `dir` is not exactly the manifest's files, or undefined when it is. */
async function copyProblem(manifest: DirectoryManifest, dir: string): Promise<string | undefined> {
  const present = await listFiles(dir).catch(() => undefined);
  if (!present) return 'absent';
  const expected = new Set(manifest.files.map((f) => f.path));
  const extra = present.find((f) => !expected.has(f));
  if (extra) return `unexpected file ${extra}`;
  for (const file of manifest.files) {
    const actual = await sha256File(joinInside(dir, file.path)).catch(() => undefined);
    if (!actual) return `missing ${file.path}`;
    if (actual.sha256 !== file.sha256 || actual.bytes !== file.bytes) return `${file.path} differs from the artifact`;
  }
  return undefined;
}

export function isDirectoryKind(kind: string): boolean {
  return kind.endsWith('/dir');
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const entries = await fs.readdir(path.join(dir, prefix), { withFileTypes: true });
  const out: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? path.join(prefix, entry.name) : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}
