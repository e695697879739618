// Long item loops that survive a killed worker: each finished chunk is written to the activity's work
// folder, then a heartbeat records how far we got. A retried attempt starts at the heartbeat's index.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Context } from '@temporalio/activity';
import type { ArtifactStore } from '../artifacts/store';

export interface ResumableProgress {
  next: number;
  total: number;
  counts: Record<string, number>;
}

export interface ResumableResult<R> {
  results: R[];
  resumedFrom: number;
  counts: Record<string, number>;
}

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
  const ctx = inActivity() ? Context.current() : undefined;
  const details = ctx?.info.heartbeatDetails as ResumableProgress | undefined;

  // Trust the heartbeat only as far as the chunk files really exist.
  let resumedFrom = 0;
  const counts: Record<string, number> = {};
  const results: R[] = [];
  if (details && Number.isInteger(details.next)) {
    for (let start = 0; start < Math.min(details.next, items.length); start += chunkSize) {
      const saved = await fs.readFile(chunkFile(start), 'utf8').catch(() => undefined);
      if (saved === undefined) break;
      const chunk = JSON.parse(saved) as { results: R[]; counts: Record<string, number> };
      results.push(...chunk.results);
      addCounts(counts, chunk.counts);
      resumedFrom = start + chunkSize;
    }
    resumedFrom = Math.min(resumedFrom, items.length);
  }

  for (let start = resumedFrom; start < items.length; start += chunkSize) {
    if (ctx) ctx.heartbeat({ next: start, total: items.length, counts } satisfies ResumableProgress);
    const out = await processChunk(items.slice(start, start + chunkSize), start);
    const chunkCounts = out.counts ?? {};
    const tmp = `${chunkFile(start)}.partial`;
    await fs.writeFile(tmp, JSON.stringify({ results: out.results, counts: chunkCounts }));
    await fs.rename(tmp, chunkFile(start));
    results.push(...out.results);
    addCounts(counts, chunkCounts);
    if (ctx) ctx.heartbeat({ next: Math.min(start + chunkSize, items.length), total: items.length, counts } satisfies ResumableProgress);
  }
  return { results, resumedFrom, counts };
}

function addCounts(into: Record<string, number>, from: Record<string, number>) {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function inActivity(): boolean {
  try {
    Context.current();
    return true;
  } catch {
    return false;
  }
}
