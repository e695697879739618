// Long item loops that survive a killed worker: each finished chunk is written to the activity's work
// folder (with a hash of its content and of the items it answers), then a heartbeat records how far we got.
// A retried attempt reuses every chunk file that verifies and redoes the missing or damaged ones.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Context } from '@temporalio/activity';
import { writeFileAtomic } from '../artifacts/atomic-write';
import type { ArtifactStore } from '../artifacts/store';
import { createLogger } from '../config/logger';
import { currentLiveness } from './liveness';

const log = createLogger('resumable');

export interface ResumableProgress {
  next: number;
  total: number;
  counts: Record<string, number>;
}

export interface ResumableResult<R> {
  results: R[];
  /** The first item this attempt had to process (items.length when every chunk was on disk). */
  resumedFrom: number;
  counts: Record<string, number>;
}

/** What a chunk file holds: the results, and hashes that prove they are whole and answer these items. */
interface ChunkFile<R> {
  items: string;
  sha256: string;
  body: { results: R[]; counts: Record<string, number> };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export async function processResumably<T, R>(options: {
  store: ArtifactStore;
  key: string;
  items: readonly T[];
  chunkSize: number;
  processChunk: (chunk: readonly T[], start: number) => Promise<{ results: R[]; counts?: Record<string, number> }>;
}): Promise<ResumableResult<R>> {
  const { store, key, items, chunkSize, processChunk } = options;
  const dir = await store.workDir(key);
  const chunkFile = (start: number) => path.join(dir, `chunk-${String(start).padStart(8, '0')}.json`);
  const itemsOf = (start: number) => items.slice(start, start + chunkSize);
  const live = currentLiveness();
  const ctx = live ? undefined : activityContext();
  const beat = (progress: ResumableProgress) => (live ? live.beat(progress) : ctx?.heartbeat(progress));

  // Every chunk file that verifies is reused, whether or not a heartbeat recorded it; the others are redone.
  let resumedFrom = items.length;
  const counts: Record<string, number> = {};
  const results: R[] = [];
  for (let start = 0; start < items.length; start += chunkSize) {
    const chunk = itemsOf(start);
    let body = await readChunk<R>(chunkFile(start), chunk);
    if (!body) {
      resumedFrom = Math.min(resumedFrom, start);
      beat({ next: start, total: items.length, counts });
      const out = await processChunk(chunk, start);
      body = { results: out.results, counts: out.counts ?? {} };
      const text = JSON.stringify(body);
      const file: ChunkFile<R> = { items: sha256(JSON.stringify(chunk)), sha256: sha256(text), body };
      await writeFileAtomic(chunkFile(start), JSON.stringify(file));
    }
    results.push(...body.results);
    addCounts(counts, body.counts);
    beat({ next: Math.min(start + chunkSize, items.length), total: items.length, counts });
  }
  return { results, resumedFrom, counts };
}

/** A chunk file's body if it is whole and answers exactly `chunk`; otherwise it is removed and redone. */
async function readChunk<R>(file: string, chunk: readonly unknown[]): Promise<ChunkFile<R>['body'] | undefined> {
  const raw = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (raw === undefined) return undefined;
  const problem = (() => {
    let saved: ChunkFile<R>;
    try {
      saved = JSON.parse(raw) as ChunkFile<R>;
    } catch (err) {
      return `not JSON (${(err as Error).message.slice(0, 80)})`;
    }
    if (!saved || typeof saved !== 'object' || !saved.body || !Array.isArray(saved.body.results)) return 'not a chunk file';
    if (saved.sha256 !== sha256(JSON.stringify(saved.body))) return 'its content does not match its hash';
    if (saved.items !== sha256(JSON.stringify(chunk))) return 'it answers other items';
    if (saved.body.results.length !== chunk.length) return `it has ${saved.body.results.length} results for ${chunk.length} items`;
    return saved;
  })();
  if (typeof problem !== 'string') return problem.body;
  log.warn(`resume file ${path.basename(file)} is damaged (${problem}): redoing that chunk`);
  await fs.rm(file, { force: true });
  return undefined;
}

function addCounts(into: Record<string, number>, from: Record<string, number>) {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
