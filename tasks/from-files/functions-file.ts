// The functions file of a task from files: a system prompt and OpenAI tool definitions whose parameters
// are JSON Schema objects over a supported subset (string, enum, number, integer, boolean; required and
// optional). JSON or YAML. Errors name the file, the line and the field, never the content.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { isIdentifier } from '../call-format';
import { TaskFileError } from './errors';

/** One parameter of an output function (the supported JSON Schema subset). */
export const ParameterSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('string'),
    description: z.string().optional(),
    enum: z.array(z.string().min(1)).min(1).optional(),
    minLength: z.number().int().min(0).optional(),
    maxLength: z.number().int().min(1).optional(),
    /** The value must occur verbatim in the input, as whole words (a span). */
    'x-span': z.boolean().optional(),
  }),
  z.strictObject({
    type: z.enum(['number', 'integer']),
    description: z.string().optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
  }),
  z.strictObject({ type: z.literal('boolean'), description: z.string().optional() }),
]);
export type Parameter = z.infer<typeof ParameterSchema>;

const identifier = z.string().refine(isIdentifier, { message: 'must be an identifier ([A-Za-z_][A-Za-z0-9_]*)' });

export const ParametersSchema = z
  .strictObject({
    type: z.literal('object'),
    description: z.string().optional(),
    properties: z.record(identifier, ParameterSchema),
    required: z.array(z.string()).optional(),
    additionalProperties: z.literal(false).optional(),
  })
  .superRefine((p, ctx) => {
    for (const [i, key] of (p.required ?? []).entries()) {
      if (!(key in p.properties)) ctx.addIssue({ code: 'custom', path: ['required', i], message: 'names a parameter that is not in properties' });
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

export const FunctionsFileSchema = z
  .strictObject({
    /** How reports name the task. */
    name: z.string().min(1).max(200).optional(),
    systemPrompt: z.string().min(1, 'must be a non-empty string'),
    tools: z
      .array(
        z.strictObject({
          type: z.literal('function'),
          function: z.strictObject({ name: identifier, description: z.string().default(''), parameters: ParametersSchema, strict: z.boolean().optional() }),
        }),
      )
      .min(1, 'must define at least one function'),
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
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new TaskFileError(`functions file ${file}: cannot read it (${err.code ?? 'error'})`);
  });
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    // The parser's message quotes the text around the error: only its position and code leave here.
    const error = doc.errors[0];
    const line = counter.linePos(error.pos[0]).line;
    throw new TaskFileError(`functions file ${name}${line ? ` line ${line}` : ''}: not valid JSON or YAML (${error.code})`);
  }
  const parsed = FunctionsFileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const line = lineOf(doc, counter, issue.path);
    throw new TaskFileError(`functions file ${name}${line ? ` line ${line}` : ''}: field ${fieldName(issue.path)}: ${issue.message}`);
  }
  return parsed.data;
}
