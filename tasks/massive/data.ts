// MASSIVE en-US (CC BY 4.0, Amazon): one utterance per JSONL line with its scenario, intent and annotated
// slots, e.g. "wake me up at [time : five am] [date : this week]".
import { promises as fs } from 'node:fs';
import { FailureType, SupertinyError } from '../../config/failure-types';
import { z } from 'zod';
import { SPLITS, Split, TaskExample } from '../define';

export interface MassiveSlot {
  type: string;
  value: string;
}

export interface MassiveExample extends TaskExample {
  utterance: string;
  scenario: string;
  intent: string;
  /** In order of appearance in the utterance. */
  slots: MassiveSlot[];
}

const MassiveLineSchema = z.object({
  id: z.string().min(1),
  partition: z.enum(SPLITS),
  scenario: z.string().min(1),
  intent: z.string().min(1),
  utt: z.string(),
  annot_utt: z.string(),
});

/** Splits "wake me up at [time : five am]" into the plain utterance and its slots; throws if malformed. */
export function parseAnnotation(annotated: string): { utterance: string; slots: MassiveSlot[] } {
  const slots: MassiveSlot[] = [];
  let utterance = '';
  let i = 0;
  while (i < annotated.length) {
    const open = annotated.indexOf('[', i);
    if (open < 0) {
      utterance += annotated.slice(i);
      break;
    }
    const close = annotated.indexOf(']', open);
    if (close < 0) throw new Error(`unclosed "[" at column ${open + 1} of annot_utt`);
    const inner = annotated.slice(open + 1, close);
    const sep = inner.indexOf(' : ');
    if (sep < 0 || inner.includes('[')) throw new Error(`slot without "type : value" at column ${open + 1} of annot_utt`);
    const type = inner.slice(0, sep).trim();
    const value = inner.slice(sep + 3).trim();
    utterance += annotated.slice(i, open) + value;
    slots.push({ type, value });
    i = close + 1;
  }
  return { utterance, slots };
}

/** A bad line of the data file: names the line and field, never quotes the content. */
export class MassiveDataError extends SupertinyError {
  readonly failureType = FailureType.InvalidInput;
}

export function parseMassiveLine(line: string, lineNumber: number): MassiveExample {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    // The parser's message quotes the line: a config may point at any file, so its content stays out.
    throw new MassiveDataError(`MASSIVE line ${lineNumber}: not valid JSON`);
  }
  const parsed = MassiveLineSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MassiveDataError(`MASSIVE line ${lineNumber}: field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const row = parsed.data;
  let annotation: ReturnType<typeof parseAnnotation>;
  try {
    annotation = parseAnnotation(row.annot_utt);
  } catch (err) {
    throw new MassiveDataError(`MASSIVE line ${lineNumber}: field annot_utt: ${(err as Error).message}`);
  }
  const { utterance, slots } = annotation;
  if (utterance !== row.utt) throw new MassiveDataError(`MASSIVE line ${lineNumber}: field annot_utt does not spell field utt`);
  return { id: row.id, split: row.partition as Split, utterance, scenario: row.scenario, intent: row.intent, slots };
}

const loaded = new Map<string, Promise<MassiveExample[]>>();

/** All examples of the file in file order (memoized per path: the file is read once per process). */
export function loadMassiveExamples(file: string): Promise<MassiveExample[]> {
  let examples = loaded.get(file);
  if (!examples) {
    examples = fs.readFile(file, 'utf8').then((text) =>
      text
        .split('\n')
        .map((line, index) => ({ line, index }))
        .filter(({ line }) => line.trim() !== '')
        .map(({ line, index }) => parseMassiveLine(line, index + 1)),
    );
    examples.catch(() => loaded.delete(file));
    loaded.set(file, examples);
  }
  return examples;
}
