// The data file of a task from files: JSONL, one example a line,
//   {"id": "...", "split": "train"|"dev"|"test", "input": "...", "gold": {"name": "...", "arguments": {...}}}
// Train may be unlabelled (the teacher labels it); dev and test need gold. A gold call must name a function
// of the functions file and its arguments must satisfy that function's JSON Schema (and its spans must occur
// in the input). Errors name the file, the line and the field, never the content.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { SPLITS, type Split, type TaskExample } from '../define';
import type { Call } from '../call-format';
import { fieldName } from './functions-file';
import { TaskFileError } from './errors';

export interface FileExample extends TaskExample {
  input: string;
  /** The gold call in the string form (absent for unlabelled train). */
  gold?: Call;
}

const LineSchema = z.strictObject({
  id: z.string().min(1, 'must be a non-empty string').max(200),
  split: z.enum(SPLITS, { message: `must be one of ${SPLITS.join(', ')}` }),
  input: z.string().min(1, 'must be a non-empty string'),
  gold: z
    .strictObject({
      name: z.string().min(1, 'must be a non-empty string'),
      arguments: z.record(z.string(), z.unknown()).default({}),
    })
    .optional(),
});

/** What the data file needs of the task's functions to check a gold call. */
export interface GoldChecker {
  hasFunction(name: string): boolean;
  /** Errors of typed arguments against the function's schema and spans, each naming the argument. */
  check(name: string, args: Record<string, unknown>, input: string): string[];
  /** The gold call in the string form. */
  toCall(name: string, args: Record<string, unknown>): Call;
}

export async function readDataFile(file: string, gold: GoldChecker): Promise<FileExample[]> {
  const name = path.basename(file);
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new TaskFileError(`data file ${file}: cannot read it (${err.code ?? 'error'})`);
  });
  const fail = (line: number, message: string) => new TaskFileError(`data file ${name} line ${line}: ${message}`);
  const examples: FileExample[] = [];
  const lineOfId = new Map<string, number>();
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index];
    const number = index + 1;
    if (line.trim() === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      // The parser's message quotes the line: only its number leaves here.
      throw fail(number, 'not valid JSON');
    }
    const parsed = LineSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw fail(number, `field ${fieldName(issue.path)}: ${issue.message}`);
    }
    const row = parsed.data;
    const earlier = lineOfId.get(row.id);
    if (earlier !== undefined) throw fail(number, `field id: the same id as line ${earlier}`);
    lineOfId.set(row.id, number);
    if (!row.gold) {
      if (row.split !== 'train') throw fail(number, `field gold: missing; ${row.split} examples need a gold call (only train may be unlabelled)`);
      examples.push({ id: row.id, split: row.split as Split, input: row.input });
      continue;
    }
    if (!gold.hasFunction(row.gold.name)) throw fail(number, 'field gold.name: not a function of the functions file');
    const errors = gold.check(row.gold.name, row.gold.arguments, row.input);
    if (errors.length > 0) throw fail(number, `field gold.arguments: ${errors[0]}`);
    examples.push({ id: row.id, split: row.split as Split, input: row.input, gold: gold.toCall(row.gold.name, row.gold.arguments) });
  }
  for (const split of SPLITS) {
    if (!examples.some((e) => e.split === split)) throw new TaskFileError(`data file ${name}: no ${split} examples (every split needs at least one)`);
  }
  return examples;
}
