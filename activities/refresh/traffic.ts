// The traffic a refresh learns from: captured requests (`serve --capture DIR`, one JSONL line per request)
// or a task-from-files data file ({id, split, input, gold?}), as one file or a folder of *.jsonl files.
// Inputs are deduplicated by their text and split by a stable hash into the part the candidate trains on
// and a fresh slice it is compared on; an input of the task's frozen splits (dev, test) is never used.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { z } from 'zod';
import { CAPTURE_FORMAT } from '../../runtime/serve/capture';
import { InvalidInputError } from '../failures';

/**
 * One captured request, as `supertiny serve --capture` writes it (runtime/serve/capture.ts: CaptureLineSchema,
 * format "supertiny-capture/1"). Read permissively: fields this side does not read (model version, the
 * teacher's call, anything a later format adds) are kept and ignored; the refresh asks the teacher itself,
 * through the request cache.
 */
export const CaptureLineSchema = z.looseObject({
  format: z.literal(CAPTURE_FORMAT),
  id: z.string().min(1).max(200),
  time: z.string().max(100),
  /** The user's text the student answered. */
  input: z.string().min(1),
  student_confidence: z.number().optional(),
  cascaded: z.boolean(),
  /** The teacher's call when the cascade asked and it answered: a label the refresh does not pay for again. */
  teacher_call: z.looseObject({ name: z.string().min(1).max(200), arguments: z.record(z.string(), z.unknown()) }).optional(),
});
export type CaptureLine = z.infer<typeof CaptureLineSchema>;

/** A line of a task-from-files data file (tasks/from-files/data-file.ts); gold is not read (the teacher labels). */
export const DataFileLineSchema = z.looseObject({
  id: z.string().min(1).max(200),
  split: z.string().optional(),
  input: z.string().min(1),
});

export interface TrafficInput {
  id: string;
  text: string;
  /** The teacher's answer serve captured for this text (the cascade asked it), if any. */
  teacherCall?: { name: string; arguments: Record<string, unknown> };
}

export interface TrafficCounts {
  files: number;
  lines: number;
  /** Lines of the capture shape and of the data-file shape. */
  captured: number;
  dataFileLines: number;
  /** Captured lines the cascade sent to the teacher, and distinct inputs whose captured line holds its call. */
  cascaded: number;
  teacherAnswered: number;
  /** Distinct input texts, and lines that repeated an earlier text. */
  unique: number;
  duplicates: number;
  /** Distinct texts that are in the task's dev or test split: never trained on nor compared on. */
  inFrozenSplits: number;
  /** Distinct texts that are not among the task's train inputs either. */
  newExamples: number;
}

/** Most bytes of one input text, as for a task from files. */
const MAX_INPUT_BYTES = 16_384;
const MAX_LINE_BYTES = 1 << 20;
/** Most distinct inputs one refresh reads (they are held in memory): more is refused, never cut silently. */
export const MAX_TRAFFIC_INPUTS = 1_000_000;

/** The text's stable place in [0, 1): the same text falls on the same side of every split, on every worker. */
export function stableFraction(text: string): number {
  return createHash('sha256').update(`refresh-split\0${text}`).digest().readUInt32BE(0) / 2 ** 32;
}

/** An input's id inside a refresh: named by its text, so the same request captured twice is one example. */
export function trafficId(text: string): string {
  return `traffic-${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
}

/** The JSONL files of `source`: the file itself, or the folder's *.jsonl files (not its subfolders) in name order. */
export async function trafficFiles(source: string): Promise<string[]> {
  const stat = await fs.stat(source);
  if (stat.isFile()) return [source];
  const names = (await fs.readdir(source, { withFileTypes: true })).filter((e) => e.isFile() && e.name.endsWith('.jsonl')).map((e) => e.name);
  if (names.length === 0) throw new InvalidInputError(`traffic: ${source} holds no *.jsonl file`);
  return names.sort().map((n) => path.join(source, n));
}

export interface ReadTraffic {
  inputs: TrafficInput[];
  counts: Omit<TrafficCounts, 'inFrozenSplits' | 'newExamples'>;
}

/**
 * Every input of the traffic files, deduplicated by text (first occurrence kept, in file and line order). A line
 * that is neither shape is refused with its file, line and field; an empty line is skipped. `tick` is called at
 * each file and every 10,000 lines (a heartbeat).
 */
export async function readTrafficFiles(files: readonly string[], tick: (file: string) => void = () => undefined): Promise<ReadTraffic> {
  const seen = new Set<string>();
  const inputs: TrafficInput[] = [];
  const counts = { files: files.length, lines: 0, captured: 0, dataFileLines: 0, cascaded: 0, teacherAnswered: 0, unique: 0, duplicates: 0 };
  const byText = new Map<string, TrafficInput>();
  for (const file of files) {
    tick(file);
    const name = path.basename(file);
    let number = 0;
    const lines = readline.createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of lines) {
      number += 1;
      if (number % 10_000 === 0) tick(file);
      if (line.trim() === '') continue;
      const fail = (message: string) => new InvalidInputError(`traffic file ${name} line ${number}: ${message}`);
      if (Buffer.byteLength(line, 'utf8') > MAX_LINE_BYTES) throw fail(`longer than ${MAX_LINE_BYTES} bytes`);
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        throw fail('not valid JSON'); // the parser's message would quote the line
      }
      const captured = raw !== null && typeof raw === 'object' && 'format' in raw;
      const parsed = (captured ? CaptureLineSchema : DataFileLineSchema).safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const shape = captured ? 'a captured request (serve --capture)' : 'a data file line {id, split, input}';
        throw fail(`field ${issue.path.join('.') || '(line)'}: ${issue.message} (read as ${shape})`);
      }
      const text = parsed.data.input.trim();
      if (text === '') throw fail('field input: is blank');
      if (Buffer.byteLength(text, 'utf8') > MAX_INPUT_BYTES) throw fail(`field input: longer than ${MAX_INPUT_BYTES} bytes`);
      counts.lines += 1;
      if (captured) {
        counts.captured += 1;
        if ((parsed.data as CaptureLine).cascaded) counts.cascaded += 1;
      } else {
        counts.dataFileLines += 1;
      }
      const teacherCall = captured ? (parsed.data as CaptureLine).teacher_call : undefined;
      if (seen.has(text)) {
        counts.duplicates += 1;
        // A repeat may carry the teacher's answer its first occurrence lacked.
        const first = byText.get(text)!;
        if (teacherCall && !first.teacherCall) {
          first.teacherCall = { name: teacherCall.name, arguments: teacherCall.arguments };
          counts.teacherAnswered += 1;
        }
        continue;
      }
      if (inputs.length === MAX_TRAFFIC_INPUTS) throw fail(`more than ${MAX_TRAFFIC_INPUTS} distinct inputs: refresh from fewer files (e.g. the newest captures)`);
      seen.add(text);
      const input: TrafficInput = { id: trafficId(text), text, ...(teacherCall ? { teacherCall: { name: teacherCall.name, arguments: teacherCall.arguments } } : {}) };
      if (teacherCall) counts.teacherAnswered += 1;
      byText.set(text, input);
      inputs.push(input);
    }
  }
  counts.unique = inputs.length;
  if (inputs.length === 0) throw new InvalidInputError(`traffic: ${files.length} file(s) and not one input in them`);
  return { inputs, counts };
}

export interface TrafficSplit {
  /** Inputs the candidate trains on (with the task's train data). */
  train: TrafficInput[];
  /** The fresh slice: never trained on; deployed and candidate are compared on it against the teacher's labels. */
  fresh: TrafficInput[];
  inFrozenSplits: number;
  newExamples: number;
}

/**
 * Drops the inputs of the frozen splits, then splits the rest by stableFraction: below `freshShare` is fresh.
 * An input already in the task's train data goes to train (the deployed student saw it: not fresh).
 */
export function splitTraffic(inputs: readonly TrafficInput[], options: { freshShare: number; frozenTexts: ReadonlySet<string>; trainTexts: ReadonlySet<string> }): TrafficSplit {
  const out: TrafficSplit = { train: [], fresh: [], inFrozenSplits: 0, newExamples: 0 };
  for (const input of inputs) {
    if (options.frozenTexts.has(input.text)) {
      out.inFrozenSplits += 1;
      continue;
    }
    const known = options.trainTexts.has(input.text);
    if (!known) out.newExamples += 1;
    (known || stableFraction(input.text) >= options.freshShare ? out.train : out.fresh).push(input);
  }
  return out;
}
