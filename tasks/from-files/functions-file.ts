// The functions file of a task from files: a system prompt and OpenAI tool definitions whose parameters
// are JSON Schema objects over a supported subset (string, enum, number, integer, boolean; required and
// optional), within the bounds of limits.ts. JSON or YAML. Errors name the file, the line and the field, never
// the content.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';
import { isIdentifier } from '../call-format';
import { TaskFileError } from './errors';
import { atMostBytes, FROM_FILES_LIMITS as LIMITS } from './limits';

const description = z.string().refine(...atMostBytes(LIMITS.descriptionBytes));

/** One parameter of an output function (the supported JSON Schema subset). */
export const ParameterSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('string'),
    description: description.optional(),
    enum: z.array(z.string().min(1)).min(1).max(LIMITS.enumValues, `must have at most ${LIMITS.enumValues} values`).optional(),
    minLength: z.number().int().min(0).optional(),
    maxLength: z.number().int().min(1).optional(),
    /** The value must occur verbatim in the input, as whole words (a span). */
    'x-span': z.boolean().optional(),
  }),
  z.strictObject({
    type: z.enum(['number', 'integer']),
    description: description.optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
  }),
  z.strictObject({ type: z.literal('boolean'), description: description.optional() }),
]);
export type Parameter = z.infer<typeof ParameterSchema>;

const identifier = z.string().refine(isIdentifier, { message: 'must be an identifier ([A-Za-z_][A-Za-z0-9_]*)' });

export const ParametersSchema = z
  .strictObject({
    type: z.literal('object'),
    description: description.optional(),
    properties: z
      .record(identifier, ParameterSchema)
      .refine((properties) => Object.keys(properties).length <= LIMITS.parametersPerFunction, { message: `must have at most ${LIMITS.parametersPerFunction} parameters` }),
    required: z.array(z.string()).optional(),
    additionalProperties: z.literal(false).optional(),
  })
  .superRefine((p, ctx) => {
    for (const [i, key] of (p.required ?? []).entries()) {
      // Own keys only: `in` would take "constructor" and its like from Object.prototype.
      if (!Object.hasOwn(p.properties, key)) ctx.addIssue({ code: 'custom', path: ['required', i], message: 'names a parameter that is not in properties' });
    }
    for (const [key, param] of Object.entries(p.properties)) {
      if (param.type === 'string' && param['x-span'] && param.enum) {
        ctx.addIssue({ code: 'custom', path: ['properties', key, 'x-span'], message: 'an enum parameter cannot also be a span' });
      }
      if ((param.type === 'number' || param.type === 'integer') && param.minimum !== undefined && param.maximum !== undefined && param.minimum > param.maximum) {
        ctx.addIssue({ code: 'custom', path: ['properties', key, 'minimum'], message: 'is above maximum' });
      }
    }
  });
export type Parameters = z.infer<typeof ParametersSchema>;

/** One OpenAI function tool definition, as the functions file holds it. */
export const ToolSchema = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({ name: identifier, description: description.default(''), parameters: ParametersSchema, strict: z.boolean().optional() }),
});
export type Tool = z.infer<typeof ToolSchema>;

export const FunctionsFileSchema = z
  .strictObject({
    /** How reports name the task. */
    name: z.string().min(1).max(200).optional(),
    systemPrompt: z.string().min(1, 'must be a non-empty string').refine(...atMostBytes(LIMITS.systemPromptBytes)),
    tools: z
      .array(ToolSchema)
      .min(1, 'must define at least one function')
      .max(LIMITS.tools, `must define at most ${LIMITS.tools} functions`),
  })
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    for (const [i, tool] of file.tools.entries()) {
      if (seen.has(tool.function.name)) ctx.addIssue({ code: 'custom', path: ['tools', i, 'function', 'name'], message: 'names a function defined earlier in the file' });
      seen.add(tool.function.name);
    }
  });
export type FunctionsFile = z.infer<typeof FunctionsFileSchema>;

/** The line (1-based) of the node at `fieldPath`, or of its nearest ancestor that exists. */
function lineOf(doc: Document, counter: LineCounter, fieldPath: readonly PropertyKey[]): number | undefined {
  for (let n = fieldPath.length; n >= 0; n--) {
    const node = doc.getIn(fieldPath.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return counter.linePos(node.range[0]).line;
  }
  return undefined;
}

export function fieldName(fieldPath: readonly PropertyKey[]): string {
  return fieldPath.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || '(root)';
}

/** Reads and checks a functions file (JSON or YAML: YAML is read as a superset of JSON). */
export async function readFunctionsFile(file: string): Promise<FunctionsFile> {
  const name = path.basename(file);
  const bytes = await readAtMost(file, LIMITS.functionsFileBytes).catch((err: NodeJS.ErrnoException) => {
    throw new TaskFileError(`functions file ${file}: cannot read it (${err.code ?? 'error'})`);
  });
  if (!bytes) throw new TaskFileError(`functions file ${name}: larger than ${LIMITS.functionsFileBytes} bytes`);
  const text = bytes.toString('utf8');
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    // The parser's message quotes the text around the error: only its position and code leave here.
    const error = doc.errors[0];
    const line = counter.linePos(error.pos[0]).line;
    throw new TaskFileError(`functions file ${name}${line ? ` line ${line}` : ''}: not valid JSON or YAML (${error.code})`);
  }
  // As a key, `__proto__` would set a prototype instead of naming a field: the parameter would vanish unseen.
  let proto: number | undefined;
  visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key) || pair.key.value !== '__proto__') return undefined;
      proto = pair.key.range ? counter.linePos(pair.key.range[0]).line : 0;
      return visit.BREAK;
    },
  });
  if (proto !== undefined) throw new TaskFileError(`functions file ${name}${proto ? ` line ${proto}` : ''}: the key __proto__ is refused (it cannot name a field or a parameter)`);
  const parsed = FunctionsFileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const line = lineOf(doc, counter, issue.path);
    throw new TaskFileError(`functions file ${name}${line ? ` line ${line}` : ''}: field ${fieldName(issue.path)}: ${issue.message}`);
  }
  return parsed.data;
}

/** The bytes of `file`, or undefined when it holds more than `limit` (never more than limit + 1 are read). */
async function readAtMost(file: string, limit: number): Promise<Buffer | undefined> {
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.alloc(limit + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return length > limit ? undefined : buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}
