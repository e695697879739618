// Pay once for the teacher: every chat request is cached on disk under sha256 of
// (model, messages, tools, parameters, sample index). Files are written to a temporary name and renamed,
// so a crash never leaves a partial entry and concurrent writers of the same key are harmless.
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { canonicalJson } from '../../artifacts/store';

export interface RequestCacheKeyParts {
  model: string;
  messages: unknown;
  tools: unknown;
  /** Every other request parameter (temperature, n, seed, tool_choice, logprobs...). */
  parameters: Record<string, unknown>;
  sampleIndex: number;
}

export function requestCacheKey(parts: RequestCacheKeyParts): string {
  return createHash('sha256')
    .update(canonicalJson({ model: parts.model, messages: parts.messages, tools: parts.tools ?? null, parameters: parts.parameters, sampleIndex: parts.sampleIndex }))
    .digest('hex');
}

export class RequestCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
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

  async put(key: string, value: unknown): Promise<void> {
    const file = this.fileOf(key);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomUUID()}.partial`;
    await fs.writeFile(tmp, JSON.stringify({ key, value, savedAt: new Date().toISOString() }));
    await fs.rename(tmp, file);
  }
}
