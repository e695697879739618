// The task-spec API. A task is a function-call pipeline: intermediate tools (zod schema + code that
// executes them) lead to one final call of an output function. The spec is validated once, at definition.
import { z } from 'zod';
import {
  Call,
  callArgumentsObject,
  callFromArgumentsObject,
  isIdentifier,
  parseCall,
  printCall,
} from './call-format';
import type { CallMetrics, CallPrediction } from './metrics';

export const SPLITS = ['train', 'dev', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** Every dataset example has an id and a split; the task maps it to input text and (optionally) gold. */
export interface TaskExample {
  id: string;
  split: Split;
}

/** What an intermediate tool's code returns: the tool message content and the tools to offer next. */
export interface ToolResult {
  content: string;
  next: string[];
}

export interface TaskTool<P extends z.ZodObject = z.ZodObject> {
  description: string;
  parameters: P;
  execute(args: z.infer<P>): ToolResult;
}

/** A final output function: the answer is exactly one call of one of these. */
export interface OutputFunction {
  description: string;
  /** Parameters must accept strings: the compact call format carries JSON string values. */
  parameters: z.ZodObject;
  /**
   * For typed arguments (numbers, booleans): the JSON Schema the teacher is shown instead of the string
   * form's, and how a tool call's typed arguments become the string form that `parameters` checks.
   */
  toolSchema?: { parameters: Record<string, unknown>; toStringForm(args: Record<string, unknown>): Record<string, unknown> };
}

export interface CallFormat {
  print(call: Call): string;
  parse(text: string): { ok: true; call: Call } | { ok: false; error: string };
}

export interface VerifierResult {
  ok: boolean;
  /** Why the call failed verification (absent when ok). */
  reason?: string;
}

export interface TaskDataset<E extends TaskExample> {
  splits: readonly Split[];
  load(split: Split): Promise<E[]>;
  /** Every example of every split in source order (default: the splits one after another). */
  loadAll?(): Promise<E[]>;
}

export interface TaskSpecInput<E extends TaskExample> {
  name: string;
  /** How reports name the task (e.g. "MASSIVE en-US"); defaults to `name`. */
  displayName?: string;
  systemPrompt: string;
  /** Intermediate tools the model may call before the final call; their code runs in the client. */
  tools: Record<string, TaskTool<any>>;
  /** The final output schema: one function per kind of answer. */
  functions: Record<string, OutputFunction>;
  /** Tools or functions offered at the first step. */
  entryTools: string[];
  /** Step limit of the tool loop (model turns per sample). */
  maxSteps: number;
  /** The compact call format the student emits. */
  callFormat: CallFormat;
  /** The user message for an example. */
  input(example: E): string;
  /** The gold call, when the example is labelled. */
  gold(example: E): Call | undefined;
  /** Checks a schema-valid call against its input without labels (e.g. slot values occur in the text). */
  verify(call: Call, input: string): VerifierResult;
  /** A canonical form used for voting and training targets; defaults to slots sorted by key then value. */
  canonicalize?(call: Call, input: string): Call;
  /**
   * Arguments whose values the verifier requires to occur in the input (spans): "all", or per function.
   * The task description the trainer reads gives them the kind "span" (task-description.ts); default none.
   */
  spanArguments?: 'all' | Record<string, string[]>;
  /**
   * The output functions grouped as an entry tool routes to them (e.g. MASSIVE's scenarios): the teacher
   * simulator routes by group and confuses neighbouring functions within one. Default: no groups.
   */
  functionGroups?: Record<string, string[]>;
  metrics(predictions: readonly CallPrediction[]): CallMetrics;
  dataset: TaskDataset<E>;
}

/** An OpenAI chat-completions function tool (structurally compatible with the SDK's type). */
export interface FunctionToolDefinition {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export type CallValidation =
  | { ok: true }
  | { ok: false; kind: 'unknown_function' | 'invalid_arguments'; errors: string[] };

/** How one tool call from a model decodes: an intermediate tool, a final call, or a classified error. */
export type DecodedToolCall =
  | { kind: 'tool'; name: string; args: Record<string, unknown> }
  | { kind: 'call'; call: Call }
  | { kind: 'malformed_arguments' | 'unknown_function' | 'invalid_arguments'; name: string; error: string };

export interface TaskSpec<E extends TaskExample = TaskExample> extends Readonly<Required<Omit<TaskSpecInput<E>, 'spanArguments' | 'functionGroups'>>> {
  readonly spanArguments: Readonly<Record<string, readonly string[]>>;
  readonly functionGroups?: Readonly<Record<string, readonly string[]>>;
  readonly functionNames: readonly string[];
  readonly toolNames: readonly string[];
  /** Checks a call against the zod schema of its function (unknown function, unknown slot, non-string value). */
  validateCall(call: Call): CallValidation;
  /** OpenAI tool definitions (JSON schema from zod) for the named tools/functions. */
  toolDefinitions(names: readonly string[]): FunctionToolDefinition[];
  /** Decodes a model's tool call (name + arguments JSON text) given the names that were offered. */
  decodeToolCall(name: string, argumentsJson: string, offered: readonly string[]): DecodedToolCall;
  /** The canonical compact text of a call (what votes are counted on). */
  canonicalText(call: Call, input: string): string;
}

export class TaskSpecError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'TaskSpecError';
  }
}

const isFunction = (v: unknown) => typeof v === 'function';
const fn = (what: string) => z.custom<(...args: never[]) => unknown>(isFunction, { message: `must be a function (${what})` });
const zodObject = z.custom<z.ZodObject>((v) => v instanceof z.ZodObject, { message: 'must be a zod object schema (z.object)' });
const identifier = z.string().refine(isIdentifier, { message: 'must be an identifier ([A-Za-z_][A-Za-z0-9_]*)' });

const TaskSpecInputSchema = z
  .strictObject({
    name: z.string().min(1, 'must be a non-empty string'),
    displayName: z.string().min(1, 'must be a non-empty string').optional(),
    systemPrompt: z.string().min(1, 'must be a non-empty string'),
    tools: z.record(identifier, z.strictObject({ description: z.string(), parameters: zodObject, execute: fn('args => ToolResult') })),
    functions: z
      .record(
        identifier,
        z.strictObject({
          description: z.string(),
          parameters: zodObject,
          toolSchema: z.strictObject({ parameters: z.record(z.string(), z.unknown()), toStringForm: fn('args => args') }).optional(),
        }),
      )
      .refine((r) => Object.keys(r).length > 0, { message: 'must define at least one output function' }),
    entryTools: z.array(z.string()).min(1, 'must name at least one tool or function'),
    maxSteps: z.number().int().min(1),
    callFormat: z.strictObject({ print: fn('call => string'), parse: fn('text => parse result') }),
    input: fn('example => string'),
    gold: fn('example => Call | undefined'),
    verify: fn('(call, input) => VerifierResult'),
    canonicalize: fn('(call, input) => Call').optional(),
    spanArguments: z.union([z.literal('all'), z.record(z.string(), z.array(z.string()))]).optional(),
    functionGroups: z.record(z.string().min(1), z.array(z.string())).optional(),
    metrics: fn('predictions => CallMetrics'),
    dataset: z.strictObject({ splits: z.array(z.enum(SPLITS)), load: fn('split => Promise<examples>'), loadAll: fn('() => Promise<examples>').optional() }),
  })
  .superRefine((spec, ctx) => {
    for (const [i, name] of spec.entryTools.entries()) {
      if (!(name in spec.tools) && !(name in spec.functions)) {
        ctx.addIssue({ code: 'custom', path: ['entryTools', i], message: `names "${name}", which is neither a tool nor a function` });
      }
    }
    for (const name of Object.keys(spec.tools)) {
      if (name in spec.functions) ctx.addIssue({ code: 'custom', path: ['tools', name], message: 'is also defined as an output function' });
    }
    for (const [name, f] of Object.entries(spec.functions)) {
      const properties = stringFormProperties(f.parameters);
      for (const [key, param] of Object.entries(f.parameters.shape)) {
        if (!(properties ? admitsString(properties[key]) : (param as z.ZodType).safeParse('x').success)) {
          ctx.addIssue({
            code: 'custom',
            path: ['functions', name, 'parameters', key],
            message: 'must accept a string (the compact call format carries JSON string values)',
          });
        }
      }
    }
    if (spec.spanArguments && spec.spanArguments !== 'all') {
      for (const [name, keys] of Object.entries(spec.spanArguments)) {
        const f = spec.functions[name];
        if (!f) {
          ctx.addIssue({ code: 'custom', path: ['spanArguments', name], message: `names "${name}", which is not an output function` });
          continue;
        }
        for (const [i, key] of keys.entries()) {
          if (!(key in f.parameters.shape)) ctx.addIssue({ code: 'custom', path: ['spanArguments', name, i], message: `"${key}" is not a parameter of "${name}"` });
        }
      }
    }
    for (const [group, names] of Object.entries(spec.functionGroups ?? {})) {
      for (const [i, name] of names.entries()) {
        if (!(name in spec.functions)) ctx.addIssue({ code: 'custom', path: ['functionGroups', group, i], message: `names "${name}", which is not an output function` });
      }
    }
    for (const split of SPLITS) {
      if (!spec.dataset.splits.includes(split)) ctx.addIssue({ code: 'custom', path: ['dataset', 'splits'], message: `must include "${split}"` });
    }
  });

type JsonSchemaNode = { type?: unknown; enum?: unknown[]; const?: unknown; anyOf?: JsonSchemaNode[]; oneOf?: JsonSchemaNode[] };

/** The JSON Schema properties of a parameters object; undefined when zod cannot represent it. */
function stringFormProperties(parameters: z.ZodObject): Record<string, JsonSchemaNode> | undefined {
  try {
    return (z.toJSONSchema(parameters) as { properties?: Record<string, JsonSchemaNode> }).properties ?? {};
  } catch {
    return undefined;
  }
}

/** Whether a parameter's schema admits some string (e.g. a string, an enum of strings, a string refined to a number). */
function admitsString(node: JsonSchemaNode | undefined): boolean {
  if (!node) return false;
  if (node.type === 'string' || (Array.isArray(node.type) && node.type.includes('string'))) return true;
  if (typeof node.const === 'string' || (node.enum ?? []).some((v) => typeof v === 'string')) return true;
  return [...(node.anyOf ?? []), ...(node.oneOf ?? [])].some(admitsString);
}

function fieldOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || '(spec)';
}

function defaultCanonicalize(call: Call): Call {
  const args = [...call.args].sort((a, b) => (a.key === b.key ? (a.value < b.value ? -1 : a.value > b.value ? 1 : 0) : a.key < b.key ? -1 : 1));
  return { name: call.name, args };
}

function describeArgumentIssues(fnName: string, parameters: z.ZodObject, args: Record<string, unknown>, issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `unknown slot${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} for function "${fnName}"`;
    }
    const key = issue.path[0];
    if (typeof key === 'string' && key in args) {
      const value = args[key];
      if (Array.isArray(value) && !parameters.shape[key].safeParse(value).success && value.every((v) => typeof v === 'string')) {
        return `slot "${key}" is repeated (${value.length} values) but function "${fnName}" takes one value for it`;
      }
      const bad = Array.isArray(value) ? value.find((v) => typeof v !== 'string') : value;
      if (typeof bad !== 'string') return `slot "${key}" of function "${fnName}" has a non-string value (${bad === null ? 'null' : typeof bad})`;
      return `slot "${key}" of function "${fnName}": ${issue.message}`;
    }
    return `arguments of function "${fnName}": ${issue.message}`;
  });
}

/** Validates a task spec and returns it with the derived helpers; throws TaskSpecError naming the field. */
export function defineTask<E extends TaskExample>(input: TaskSpecInput<E>): TaskSpec<E> {
  const parsed = TaskSpecInputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = fieldOf(issue.path);
    const taskName = typeof (input as { name?: unknown })?.name === 'string' ? ` "${(input as { name: string }).name}"` : '';
    throw new TaskSpecError(field, `defineTask${taskName}: ${field} ${issue.message}`);
  }

  const functionNames = Object.keys(input.functions);
  const toolNames = Object.keys(input.tools);
  const canonicalize = input.canonicalize ?? defaultCanonicalize;
  const jsonSchemas = new Map<string, Record<string, unknown>>();

  const jsonSchemaOf = (name: string): Record<string, unknown> => {
    let schema = jsonSchemas.get(name);
    if (!schema) {
      const parameters = (input.tools[name] ?? input.functions[name]).parameters;
      const { $schema: _ignored, ...rest } = z.toJSONSchema(parameters) as Record<string, unknown>;
      schema = rest;
      jsonSchemas.set(name, schema);
    }
    return schema;
  };

  const checkArguments = (name: string, args: Record<string, unknown>): CallValidation => {
    const parameters = input.functions[name]?.parameters ?? input.tools[name]?.parameters;
    if (!parameters) return { ok: false, kind: 'unknown_function', errors: [`unknown function "${name}"`] };
    const result = parameters.safeParse(args);
    if (result.success) return { ok: true };
    return { ok: false, kind: 'invalid_arguments', errors: describeArgumentIssues(name, parameters, args, result.error.issues) };
  };

  const spanArguments: Record<string, string[]> =
    input.spanArguments === 'all'
      ? Object.fromEntries(functionNames.map((name) => [name, Object.keys(input.functions[name].parameters.shape)]))
      : { ...(input.spanArguments ?? {}) };

  const spec: TaskSpec<E> = {
    ...input,
    displayName: input.displayName ?? input.name,
    canonicalize,
    spanArguments,
    functionNames,
    toolNames,
    validateCall(call) {
      if (!(call.name in input.functions)) return { ok: false, kind: 'unknown_function', errors: [`unknown function "${call.name}"`] };
      return checkArguments(call.name, callArgumentsObject(call));
    },
    toolDefinitions(names) {
      return names.map((name) => {
        const def = input.tools[name] ?? input.functions[name];
        if (!def) throw new Error(`task "${input.name}" has no tool or function named "${name}"`);
        const typed = input.functions[name]?.toolSchema?.parameters;
        return { type: 'function', function: { name, description: def.description, parameters: typed ?? jsonSchemaOf(name) } };
      });
    },
    decodeToolCall(name, argumentsJson, offered) {
      if (!offered.includes(name)) {
        const known = name in input.functions || name in input.tools;
        return { kind: 'unknown_function', name, error: `function "${name}" ${known ? 'was not offered at this step' : 'does not exist'}` };
      }
      let args: unknown;
      try {
        args = JSON.parse(argumentsJson === '' ? '{}' : argumentsJson);
      } catch (err) {
        return { kind: 'malformed_arguments', name, error: `arguments of "${name}" are not valid JSON: ${(err as Error).message}` };
      }
      if (args === null || typeof args !== 'object' || Array.isArray(args)) {
        return { kind: 'malformed_arguments', name, error: `arguments of "${name}" must be a JSON object` };
      }
      const toolSchema = input.functions[name]?.toolSchema;
      const record = toolSchema ? toolSchema.toStringForm(args as Record<string, unknown>) : (args as Record<string, unknown>);
      const check = checkArguments(name, record);
      if (!check.ok) return { kind: check.kind, name, error: check.errors.join('; ') };
      if (name in input.tools) return { kind: 'tool', name, args: record };
      return { kind: 'call', call: callFromArgumentsObject(name, record as Record<string, string | string[]>) };
    },
    canonicalText(call, text) {
      return input.callFormat.print(canonicalize(call, text));
    },
  };
  return Object.freeze(spec);
}

/** The compact call format as a CallFormat value, for tasks that use it as is. */
export const compactCallFormat: CallFormat = Object.freeze({ print: printCall, parse: parseCall });
