// Pay once for the teacher: every chat request is cached on disk under sha256 of
// (endpoint, model, messages, tools, parameters, sample index). Entries are written whole (temporary file,
// fsync, rename, fsync of the folder), so a crash never leaves a partial entry and concurrent writers of the
// same key are harmless; an entry damaged anyway is a miss (the request is sent again, with its idempotency key).
// A per-key lock file (created with O_EXCL) makes an overlapping attempt in another process wait for the
// first one's answer instead of paying for the same request again.
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../artifacts/atomic-write';
import { canonicalJson } from '../../artifacts/store';

export interface RequestCacheKeyParts {
  /** Who answers: the endpoint's identity (name and URL), so one endpoint's answers never serve another. */
  endpoint: string;
  model: string;
  messages: unknown;
  tools: unknown;
  /** Every other request parameter (temperature, n, seed, tool_choice, logprobs...). */
  parameters: Record<string, unknown>;
  sampleIndex: number;
}

export function requestCacheKey(parts: RequestCacheKeyParts): string {
  return createHash('sha256')
    .update(
      canonicalJson({
        endpoint: parts.endpoint,
        model: parts.model,
        messages: parts.messages,
        tools: parts.tools ?? null,
        parameters: parts.parameters,
        sampleIndex: parts.sampleIndex,
      }),
    )
    .digest('hex');
}

export interface RequestCacheOptions {
  /** A lock whose file was not refreshed for this long belongs to a dead holder (ms). */
  staleLockMs?: number;
  /** How often a waiter looks for the holder's answer (ms). */
  pollMs?: number;
}

/** The right to send one request: held until the answer is on disk or the request failed for good. */
export interface RequestLease {
  release(): Promise<void>;
}

interface LockOwner {
  host: string;
  pid: number;
  token: string;
}

export class RequestCache {
  readonly dir: string;
  private readonly staleLockMs: number;
  private readonly pollMs: number;

  constructor(dir: string, options: RequestCacheOptions = {}) {
    this.dir = path.resolve(dir);
    this.staleLockMs = options.staleLockMs ?? 20_000;
    this.pollMs = options.pollMs ?? 100;
  }

  private fileOf(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  /** The cached value, or undefined when absent or unreadable (an unreadable entry is treated as a miss). */
  async get<T>(key: string): Promise<T | undefined> {
    const raw = await fs.readFile(this.fileOf(key), 'utf8').catch(() => undefined);
    if (raw === undefined) return undefined;
    try {
      const entry = JSON.parse(raw) as { key: string; value: T };
      return entry.key === key ? entry.value : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Synchronous on purpose: a paid answer goes to disk before the event loop runs anything else, which keeps
   * the window in which a SIGKILL loses it (answer received, not yet on disk) as short as the disk allows.
   */
  async put(key: string, value: unknown): Promise<void> {
    writeFileAtomicSync(this.fileOf(key), JSON.stringify({ key, value, savedAt: new Date().toISOString() }));
  }

  /**
   * Either the answer another holder of `key` put on disk meanwhile, or the lease to send the request.
   * While another live process holds the key this waits (polling), so a request is paid once even when
   * two attempts of one activity overlap. A lock left by a dead process is taken over.
   */
  async claim<T>(key: string, signal?: AbortSignal): Promise<{ value: T } | { lease: RequestLease }> {
    const lockFile = `${this.fileOf(key)}.lock`;
    await fs.mkdir(path.dirname(lockFile), { recursive: true });
    const owner: LockOwner = { host: os.hostname(), pid: process.pid, token: randomUUID() };
    let delay = this.pollMs;
    for (;;) {
      signal?.throwIfAborted();
      const value = await this.get<T>(key);
      if (value !== undefined) return { value };
      const handle = await fs.open(lockFile, 'wx').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') return undefined;
        throw err;
      });
      if (handle) {
        await handle.writeFile(JSON.stringify(owner));
        await handle.close();
        // The holder may have finished between our get() and open(): its answer is on disk by now.
        const late = await this.get<T>(key);
        if (late !== undefined) {
          await this.releaseLock(lockFile, owner);
          return { value: late };
        }
        return { lease: this.leaseOf(lockFile, owner) };
      }
      if (await this.isStale(lockFile)) {
        await this.breakLock(lockFile);
        continue;
      }
      await abortableDelay(delay, signal);
      delay = Math.min(1000, delay * 1.5);
    }
  }

  private leaseOf(lockFile: string, owner: LockOwner): RequestLease {
    // Keeps the lock fresh while the request (with its retries and Retry-After waits) runs.
    const refresh = setInterval(() => {
      const now = new Date();
      fs.utimes(lockFile, now, now).catch(() => undefined);
    }, Math.max(50, this.staleLockMs / 4));
    refresh.unref();
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(refresh);
        await this.releaseLock(lockFile, owner);
      },
    };
  }

  /** Removes the lock only while it is still ours (a waiter may have broken it as stale). */
  private async releaseLock(lockFile: string, owner: LockOwner): Promise<void> {
    const current = await readOwner(lockFile);
    if (current?.token === owner.token) await fs.rm(lockFile, { force: true });
  }

  private async isStale(lockFile: string): Promise<boolean> {
    const stat = await fs.stat(lockFile).catch(() => undefined);
    if (!stat) return false; // gone: the next round may take it
    if (Date.now() - stat.mtimeMs > this.staleLockMs) return true;
    const holder = await readOwner(lockFile);
    // Written but unreadable for a while: a holder that died between open and write.
    if (!holder) return Date.now() - stat.mtimeMs > Math.min(this.staleLockMs, 2000);
    return holder.host === os.hostname() && !processAlive(holder.pid);
  }

  /** Moves a stale lock aside atomically; if what moved was a fresh lock taken meanwhile, it goes back. */
  private async breakLock(lockFile: string): Promise<void> {
    const aside = `${lockFile}.${randomUUID()}.stale`;
    const moved = await fs.rename(lockFile, aside).then(() => true, () => false);
    if (!moved) return;
    const stat = await fs.stat(aside).catch(() => undefined);
    const holder = await readOwner(aside);
    const fresh = stat && Date.now() - stat.mtimeMs <= this.staleLockMs && holder && !(holder.host === os.hostname() && !processAlive(holder.pid));
    if (fresh) await fs.link(aside, lockFile).catch(() => undefined);
    await fs.rm(aside, { force: true });
  }
}

async function readOwner(lockFile: string): Promise<LockOwner | undefined> {
  const raw = await fs.readFile(lockFile, 'utf8').catch(() => undefined);
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as LockOwner;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `work`'s result, or a rejection with the signal's reason as soon as it aborts (work is left to settle). */
export function untilAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
