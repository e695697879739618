// The files of an exported student folder (written by the trainer's `export` and `quantize` commands):
// the ONNX graph, tokenizer.json, supertiny.json (the decoder's text template or the encoder's label spaces,
// trainer/ENCODER_FORMAT.md) and, for a decoder, onnx_io.json (the graph's I/O).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { StudentModelError } from './errors';

/** supertiny.json: prompt = prompt_prefix + utterance + prompt_suffix; the answer ends with eos_token. */
export const StudentTemplateSchema = z.looseObject({
  prompt_prefix: z.string(),
  prompt_suffix: z.string(),
  eos_token: z.string().min(1),
  pad_token: z.string().min(1).optional(),
  target_format: z.literal('compact_call').optional(),
});
export type StudentTemplate = z.infer<typeof StudentTemplateSchema>;

/** onnx_io.json: the KV-cache graph contract ("supertiny-onnx-kv-cache/1"). */
export const OnnxIoSchema = z.looseObject({
  format: z.literal('supertiny-onnx-kv-cache/1'),
  num_layers: z.number().int().positive(),
  num_kv_heads: z.number().int().positive(),
  head_dim: z.number().int().positive(),
  vocab_size: z.number().int().positive(),
  max_position_embeddings: z.number().int().positive(),
  inputs: z.array(z.string()),
  outputs: z.array(z.string()),
  past_key: z.string().includes('{i}'),
  past_value: z.string().includes('{i}'),
  present_key: z.string().includes('{i}'),
  present_value: z.string().includes('{i}'),
  eos_token_id: z.number().int().nonnegative().optional(),
  pad_token_id: z.number().int().nonnegative().optional(),
});
export type OnnxIo = z.infer<typeof OnnxIoSchema>;

export const TEMPLATE_FILE = 'supertiny.json';
export const ONNX_IO_FILE = 'onnx_io.json';

export const STUDENT_FAMILIES = ['encoder', 'decoder'] as const;
export type StudentFamily = (typeof STUDENT_FAMILIES)[number];

/** Only the family of supertiny.json; a decoder's template predates the field, so absent means decoder. */
const FamilySchema = z.looseObject({ family: z.enum(STUDENT_FAMILIES).optional() });

const BIO_TAG = /^[BI]-[A-Za-z_][A-Za-z0-9_]*$/;
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an identifier ([A-Za-z_][A-Za-z0-9_]*)');
const unique = (list: readonly string[]) => new Set(list).size === list.length;

/** The encoder's supertiny.json ("supertiny-encoder/1", trainer/ENCODER_FORMAT.md). */
export const EncoderLabelsSchema = z
  .looseObject({
    format: z.literal('supertiny-encoder/1'),
    family: z.literal('encoder'),
    max_length: z.number().int().min(3),
    intents: z.array(identifier).min(1).refine(unique, 'must not repeat an intent'),
    tags: z
      .array(z.string())
      .min(1)
      .refine((tags) => tags[0] === 'O', 'must start with "O" (tag 0)')
      .refine((tags) => tags.slice(1).every((t) => BIO_TAG.test(t)), 'must be "O" then B-<slot> / I-<slot> tags')
      .refine(unique, 'must not repeat a tag'),
    intent_slots: z.record(z.string(), z.array(identifier).refine(unique, 'must not repeat a slot')),
    /** Per intent, the slots a call may name more than once (absent in folders written before it). */
    intent_repeatable: z.record(z.string(), z.array(identifier)).optional(),
    /** Classifiers of closed-set arguments (enum, boolean, small integer range); absent without any. */
    value_heads: z
      .array(
        z.looseObject({
          function: identifier,
          argument: identifier,
          kind: z.enum(['enum', 'boolean', 'integer']),
          values: z.array(z.string()).min(1).refine(unique, 'must not repeat a value'),
          required: z.boolean(),
          offset: z.number().int().nonnegative(),
        }),
      )
      .optional(),
    /** Per intent, its slots whose spans must be numbers ("integer" or "number"); absent without any. */
    number_slots: z.record(z.string(), z.record(z.string(), z.enum(['integer', 'number']))).optional(),
    /** Every training span covered whole words: a word's tokens share one span or none (absent: false). */
    word_spans: z.boolean().optional(),
  })
  .superRefine((labels, ctx) => {
    for (const [intent, slots] of Object.entries(labels.number_slots ?? {})) {
      for (const slot of Object.keys(slots)) {
        if (!labels.intent_slots[intent]?.includes(slot)) ctx.addIssue({ code: 'custom', path: ['number_slots', intent, slot], message: 'is not one of the intent\'s slots' });
      }
    }
    let offset = 0;
    for (const [i, head] of (labels.value_heads ?? []).entries()) {
      if (!labels.intents.includes(head.function)) ctx.addIssue({ code: 'custom', path: ['value_heads', i, 'function'], message: `names "${head.function}", which is not in intents` });
      else if (labels.intent_slots[head.function]?.includes(head.argument)) ctx.addIssue({ code: 'custom', path: ['value_heads', i, 'argument'], message: `"${head.argument}" is also a tagged slot of "${head.function}"` });
      if (head.offset !== offset) ctx.addIssue({ code: 'custom', path: ['value_heads', i, 'offset'], message: `must be ${offset} (the heads' logits are contiguous, in order)` });
      offset += 1 + head.values.length;
    }
    for (const intent of labels.intents) {
      if (!(intent in labels.intent_slots)) ctx.addIssue({ code: 'custom', path: ['intent_slots', intent], message: 'is missing (every intent needs its list of slots, [] for none)' });
    }
    for (const intent of Object.keys(labels.intent_slots)) {
      if (!labels.intents.includes(intent)) ctx.addIssue({ code: 'custom', path: ['intent_slots', intent], message: 'names an intent that is not in intents' });
    }
  });
export type EncoderLabels = z.infer<typeof EncoderLabelsSchema>;

export async function requireFolder(folder: string): Promise<void> {
  const stat = await fs.stat(folder).catch(() => undefined);
  if (!stat?.isDirectory()) throw new StudentModelError('missing_file', `student model folder not found: ${folder}`, folder);
}

export async function requireFile(folder: string, name: string, what: string): Promise<string> {
  const file = path.join(folder, name);
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat?.isFile()) throw new StudentModelError('missing_file', `student model folder ${folder} has no ${name} (${what})`, file);
  return file;
}

export async function readJsonFile<S extends z.ZodType>(folder: string, name: string, what: string, schema: S): Promise<z.infer<S>> {
  const file = await requireFile(folder, name, what);
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new StudentModelError('invalid_file', `${file} is not valid JSON: ${(err as Error).message}`, file, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StudentModelError('invalid_file', `${file}: field ${issue.path.join('.') || '(root)'} ${issue.message}`, file);
  }
  return parsed.data;
}

export function readTemplate(folder: string): Promise<StudentTemplate> {
  return readJsonFile(folder, TEMPLATE_FILE, 'the student text template', StudentTemplateSchema);
}

export function readOnnxIo(folder: string): Promise<OnnxIo> {
  return readJsonFile(folder, ONNX_IO_FILE, 'the ONNX graph I/O description', OnnxIoSchema);
}

export function readEncoderLabels(folder: string): Promise<EncoderLabels> {
  return readJsonFile(folder, TEMPLATE_FILE, "the encoder's label spaces", EncoderLabelsSchema);
}

export async function readStudentFamily(folder: string): Promise<StudentFamily> {
  const { family } = await readJsonFile(folder, TEMPLATE_FILE, 'the student description', FamilySchema);
  return family ?? 'decoder';
}

/** "missing inputs a, b; unexpected outputs c": how a session's tensor names differ from the needed ones. */
export function graphNameProblems(
  needInputs: readonly string[],
  needOutputs: readonly string[],
  inputNames: readonly string[],
  outputNames: readonly string[],
): string[] {
  const problems: string[] = [];
  const compare = (kind: string, need: readonly string[], have: readonly string[]) => {
    const missing = need.filter((n) => !have.includes(n));
    const extra = have.filter((n) => !need.includes(n));
    if (missing.length) problems.push(`missing ${kind} ${missing.join(', ')}`);
    if (extra.length) problems.push(`unexpected ${kind} ${extra.join(', ')}`);
  };
  compare('inputs', needInputs, inputNames);
  compare('outputs', needOutputs, outputNames);
  return problems;
}

/** Names of the cache tensors of each layer, in onnx_io.json's templates. */
export interface CacheNames {
  pastKey: string[];
  pastValue: string[];
  presentKey: string[];
  presentValue: string[];
}

export function cacheNames(io: OnnxIo): CacheNames {
  const layers = Array.from({ length: io.num_layers }, (_, i) => String(i));
  return {
    pastKey: layers.map((i) => io.past_key.replace('{i}', i)),
    pastValue: layers.map((i) => io.past_value.replace('{i}', i)),
    presentKey: layers.map((i) => io.present_key.replace('{i}', i)),
    presentValue: layers.map((i) => io.present_value.replace('{i}', i)),
  };
}

/**
 * Checks that the session's inputs and outputs are the ones the runtime feeds and reads;
 * the error names the missing and the unexpected tensors.
 */
export function checkGraphNames(
  modelFile: string,
  io: OnnxIo,
  inputNames: readonly string[],
  outputNames: readonly string[],
  inputShapes: ReadonlyMap<string, readonly (number | string)[]> = new Map(),
): void {
  const cache = cacheNames(io);
  const needIn = ['input_ids', 'attention_mask', 'position_ids', ...cache.pastKey.flatMap((k, i) => [k, cache.pastValue[i]])];
  const needOut = ['logits', ...cache.presentKey.flatMap((k, i) => [k, cache.presentValue[i]])];
  const problems = graphNameProblems(needIn, needOut, inputNames, outputNames);
  // Past tensors are [batch, kv_heads, past, head_dim]; the graph fixes kv_heads and head_dim.
  for (const name of [...cache.pastKey, ...cache.pastValue]) {
    const shape = inputShapes.get(name);
    if (!shape || shape.length !== 4) continue;
    const [, heads, , dim] = shape;
    if ((typeof heads === 'number' && heads !== io.num_kv_heads) || (typeof dim === 'number' && dim !== io.head_dim)) {
      problems.push(`input ${name} has shape [${shape.join(', ')}], ${ONNX_IO_FILE} says [batch, ${io.num_kv_heads}, past, ${io.head_dim}]`);
      break;
    }
  }
  if (problems.length) {
    throw new StudentModelError(
      'io_mismatch',
      `${modelFile} does not match ${ONNX_IO_FILE} (${io.num_layers} layers): ${problems.join('; ')}`,
      modelFile,
    );
  }
}
