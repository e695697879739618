// The data file of a task from files: JSONL, one example a line,
//   {"id": "...", "split": "train"|"dev"|"test", "input": "...", "gold": {"name": "...", "arguments": {...}}}
// Train may be unlabelled (the teacher labels it); dev and test need gold. A gold call must name a function
// of the functions file and its arguments must satisfy that function's JSON Schema (and its spans must occur
// in the input). The file is read line by line within the bounds of limits.ts. Errors name the file, the
// line and the field, never the content.
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { SPLITS, type Split, type TaskExample } from '../define';
import type { Call } from '../call-format';
import { fieldName } from './functions-file';
import { TaskFileError } from './errors';
import { FROM_FILES_LIMITS, type FromFilesLimits } from './limits';

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

export async function readDataFile(file: string, gold: GoldChecker, limits: FromFilesLimits = FROM_FILES_LIMITS): Promise<FileExample[]> {
  const name = path.basename(file);
  const fail = (line: number, message: string) => new TaskFileError(`data file ${name} line ${line}: ${message}`);
  const examples: FileExample[] = [];
  const lineOfId = new Map<string, number>();
  for await (const { number, line } of linesOf(file, limits)) {
    if (line.trim() === '') continue;
    if (examples.length === limits.dataRows) throw fail(number, `more than ${limits.dataRows} examples`);
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
    if (Buffer.byteLength(row.input, 'utf8') > limits.inputBytes) throw fail(number, `field input: must be at most ${limits.inputBytes} bytes (UTF-8)`);
    const earlier = lineOfId.get(row.id);
    if (earlier !== undefined) throw fail(number, `field id: the same id as line ${earlier}`);
    lineOfId.set(row.id, number);
    let example: FileExample;
    if (!row.gold) {
      if (row.split !== 'train') throw fail(number, `field gold: missing; ${row.split} examples need a gold call (only train may be unlabelled)`);
      example = { id: row.id, split: row.split as Split, input: row.input };
    } else {
      if (!gold.hasFunction(row.gold.name)) throw fail(number, 'field gold.name: not a function of the functions file');
      const errors = gold.check(row.gold.name, row.gold.arguments, row.input);
      if (errors.length > 0) throw fail(number, `field gold.arguments: ${errors[0]}`);
      example = { id: row.id, split: row.split as Split, input: row.input, gold: gold.toCall(row.gold.name, row.gold.arguments) };
    }
    // JSON.parse keeps the last of two equal keys, so a row could say two things; checked last, when every
    // key the row keeps is a field or a parameter name (see duplicateKey), so the message quotes no content.
    const duplicate = duplicateKey(line);
    if (duplicate) throw fail(number, `field ${fieldName(duplicate)}: appears twice in the row`);
    examples.push(example);
  }
  for (const split of SPLITS) {
    if (!examples.some((e) => e.split === split)) throw new TaskFileError(`data file ${name}: no ${split} examples (every split needs at least one)`);
  }
  return examples;
}

/**
 * The lines of `file` with their numbers (from 1), read in chunks: the file and each line within `limits`
 * (dataFileBytes, dataLineBytes). `what` names the kind of file in errors.
 */
export async function* linesOf(file: string, limits: Pick<FromFilesLimits, 'dataFileBytes' | 'dataLineBytes'>, what = 'data file'): AsyncGenerator<{ number: number; line: string }> {
  const name = path.basename(file);
  const cannotRead = (err: NodeJS.ErrnoException) => new TaskFileError(`${what} ${file}: cannot read it (${err.code ?? 'error'})`);
  const tooBig = () => new TaskFileError(`${what} ${name}: larger than ${limits.dataFileBytes} bytes`);
  const { size } = await fs.stat(file).catch((err: NodeJS.ErrnoException) => {
    throw cannotRead(err);
  });
  if (size > limits.dataFileBytes) throw tooBig();
  const tooLong = (number: number) => new TaskFileError(`${what} ${name} line ${number}: longer than ${limits.dataLineBytes} bytes`);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let number = 0;
  let total = 0;
  const stream = createReadStream(file);
  const chunks = stream[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await chunks.next().catch((err: NodeJS.ErrnoException) => {
        throw cannotRead(err);
      });
      if (next.done) break;
      const chunk = next.value as Buffer;
      // Counted as read too: the file may grow after the size was checked.
      total += chunk.length;
      if (total > limits.dataFileBytes) throw tooBig();
      let start = 0;
      for (let end = chunk.indexOf(0x0a, start); end !== -1; end = chunk.indexOf(0x0a, start)) {
        pending.push(chunk.subarray(start, end));
        pendingBytes += end - start;
        number++;
        if (pendingBytes > limits.dataLineBytes) throw tooLong(number);
        yield { number, line: Buffer.concat(pending, pendingBytes).toString('utf8') };
        pending = [];
        pendingBytes = 0;
        start = end + 1;
      }
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > limits.dataLineBytes) throw tooLong(number + 1);
    }
    if (pendingBytes > 0) yield { number: number + 1, line: Buffer.concat(pending, pendingBytes).toString('utf8') };
  } finally {
    stream.destroy();
  }
}

/**
 * The path of a key that occurs twice in one object of `line` (valid JSON), or undefined. Of several, the
 * outermost: content can only hide in an object that a later duplicate replaced, whose own key is outer, so
 * the path returned of a row that passed the schema holds field and parameter names only.
 */
export function duplicateKey(line: string): string[] | undefined {
  // One entry per open object (with the keys seen so far and the latest) or array, and where it sits.
  const open: { keys: Set<string> | null; key: string; under: string }[] = [];
  let expectKey = false;
  let found: string[] | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i + 1;
      while (line.charCodeAt(end) !== 0x22) end += line.charCodeAt(end) === 0x5c /* \ */ ? 2 : 1;
      const top = open[open.length - 1];
      if (expectKey && top?.keys) {
        const raw = line.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(line.slice(i, end + 1)) as string) : raw;
        if (top.keys.has(key) && (!found || open.length < found.length)) found = [...open.slice(1).map((o) => o.under), key];
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = open[open.length - 1];
      open.push({ keys: c === 0x7b ? new Set() : null, key: '', under: parent ? (parent.keys ? parent.key : '[]') : '' });
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = Boolean(open[open.length - 1]?.keys);
    }
  }
  return found;
}
