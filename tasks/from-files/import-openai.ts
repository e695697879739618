// `supertiny import-openai`: OpenAI chat-format JSONL (the fine-tuning format and exported chat completions:
// `messages`, `tools`, the assistant's `tool_calls`) and capture files of `serve --capture`, turned into the
// two files of a task from files (functions.json, data.jsonl) that loadTaskFromFiles reads.
//   input  the text of the line's last user message
//   gold   the first tool call of the first assistant message after it (a capture line: the teacher's call,
//          never the student's own); none: unlabelled
//   split  by a hash of the input (sha256: 80% train, 10% dev, 10% test), so a re-import keeps every split;
//          unlabelled examples go to train, since the loader needs gold in dev and test
// A bad line is refused with the file, the line and the field, never its content.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../artifacts/atomic-write';
import { CAPTURE_FORMAT, CaptureLineSchema } from '../capture-line';
import type { Split } from '../define';
import { linesOf } from './data-file';
import { TaskFileError } from './errors';
import { fieldName, FunctionsFileSchema, readFunctionsFile, ToolSchema, type FunctionsFile, type Parameters, type Tool } from './functions-file';
import { FROM_FILES_LIMITS } from './limits';
import { toTypedForm } from './arguments';
import { goldCheckerOf, loadTaskFromFiles } from './task';

export class ImportOpenAIError extends TaskFileError {}

export const FUNCTIONS_FILE = 'functions.json';
export const DATA_FILE = 'data.jsonl';
/** The system prompt when neither the lines nor --functions give one. */
export const DEFAULT_SYSTEM_PROMPT = "Call the one function that fits the user's request.";
/** One line of an import file: conversations with tool definitions are longer than a data row. */
const IMPORT_LINE_BYTES = 4 * 1024 * 1024;

const TextPartSchema = z.looseObject({ type: z.string(), text: z.string().optional() });
const ContentSchema = z.union([z.string(), z.array(TextPartSchema), z.null()]).optional();

const ToolCallSchema = z.looseObject({
  type: z.string(),
  function: z.looseObject({ name: z.string(), arguments: z.string() }).optional(),
});

const MessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: ContentSchema,
  tool_calls: z.array(ToolCallSchema).nullish(),
});

/** A chat line: what the importer reads of it; other keys (metadata, parallel_tool_calls, ...) are left alone. */
const ChatLineSchema = z.looseObject({
  messages: z.array(MessageSchema).min(1, 'must hold at least one message'),
  tools: z.array(z.unknown()).optional(),
});

export interface ImportOptions {
  /** JSONL files: OpenAI chat lines and capture lines, mixed as they come. */
  inputs: string[];
  /** The folder the task's files are written to. */
  out: string;
  /** A functions file (JSON or YAML) whose system prompt and tools come first; capture lines carry no tools. */
  functions?: string;
  /** The task's name in reports. Default: the out folder's name. */
  name?: string;
}

export interface ImportSummary {
  linesRead: number;
  chatLines: number;
  captureLines: number;
  examples: Record<Split, number>;
  labelled: number;
  unlabelled: number;
  /** Lines whose input an earlier line had (kept once). */
  duplicates: number;
  /** Of those, lines whose gold call differed from the one kept. */
  conflictingDuplicates: number;
  functions: string[];
  /** Where the system prompt came from: `--functions`, `FILE:LINE`, or `default`. */
  systemPromptFrom: string;
  /** Lines whose system message differed from the one kept. */
  otherSystemPrompts: number;
  functionsFile: string;
  dataFile: string;
}

interface ToolEntry {
  tool: Tool;
  /** Where it was first defined: `FILE:LINE` or the --functions file's name. */
  from: string;
}

interface PendingGold {
  name: string;
  args: Record<string, unknown>;
  /** Capture calls carry their arguments in the string form ("3"); chat tool calls are typed (3). */
  stringForm: boolean;
  /** The field named when the call is refused, e.g. `messages[2].tool_calls[0]`. */
  field: string;
}

interface PendingExample {
  input: string;
  gold?: PendingGold;
  where: string;
}

/** A JSON value with its object keys sorted, so that two equal schemas compare equal as text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

const issuePath = (prefix: readonly PropertyKey[], issue: z.core.$ZodIssue) => fieldName([...prefix, ...issue.path]);

/** The split of an input: the first 32 bits of its sha256, as a fraction, cut at 0.8 and 0.9. */
export function splitOf(input: string): Split {
  const fraction = createHash('sha256').update(input, 'utf8').digest().readUInt32BE(0) / 2 ** 32;
  return fraction < 0.8 ? 'train' : fraction < 0.9 ? 'dev' : 'test';
}

const exampleId = (input: string) => `ex-${createHash('sha256').update(input, 'utf8').digest('hex').slice(0, 16)}`;

/** The text of a message's content (text parts joined by newlines, as serve reads them), or an error. */
function textOf(content: z.infer<typeof ContentSchema>, field: string): string | { error: string } {
  if (content === null || content === undefined) return { error: `${field} is missing` };
  if (typeof content === 'string') return content;
  const other = content.findIndex((part) => part.type !== 'text' || part.text === undefined);
  if (other >= 0) return { error: `${field}[${other}]: only text parts can be an input, not "${content[other].type}"` };
  return content.map((part) => part.text).join('\n');
}

export async function importOpenAI(options: ImportOptions): Promise<ImportSummary> {
  const tools = new Map<string, ToolEntry>();
  /** The functions of --functions: a chat line's gold may call them without defining them. */
  const given = new Set<string>();
  let systemPrompt: { text: string; from: string } | undefined;
  let otherSystemPrompts = 0;
  if (options.functions) {
    const file = await readFunctionsFile(options.functions);
    const from = path.basename(options.functions);
    for (const tool of file.tools) {
      tools.set(tool.function.name, { tool, from });
      given.add(tool.function.name);
    }
    systemPrompt = { text: file.systemPrompt, from: '--functions' };
  }
  const examples = new Map<string, PendingExample>();
  const summary = { linesRead: 0, chatLines: 0, captureLines: 0, duplicates: 0, conflictingDuplicates: 0 };

  /** Adds a line's tools to the set: a new function, or one defined before with the same parameters. */
  const mergeTool = (raw: unknown, index: number, at: string, lineTools: Set<string>) => {
    const field = ['tools', index];
    if (!raw || typeof raw !== 'object' || (raw as { type?: unknown }).type !== 'function') {
      const type = raw && typeof raw === 'object' ? (raw as { type?: unknown }).type : undefined;
      throw new ImportOpenAIError(`${at}: ${fieldName([...field, 'type'])}: only function tools can be a task's functions${typeof type === 'string' ? `, not "${type}"` : ''}`);
    }
    // OpenAI lets a function omit its parameters: it takes none.
    const fn = (raw as { function?: unknown }).function;
    const withParameters = fn && typeof fn === 'object' && !('parameters' in fn) ? { ...raw, function: { ...fn, parameters: { type: 'object', properties: {} } } } : raw;
    const parsed = ToolSchema.safeParse(withParameters);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ImportOpenAIError(`${at}: ${issuePath(field, issue)}: ${issue.message}`);
    }
    const tool = parsed.data;
    const name = tool.function.name;
    lineTools.add(name);
    const known = tools.get(name);
    if (!known) {
      tools.set(name, { tool, from: at });
      return;
    }
    if (canonical(known.tool.function.parameters) !== canonical(tool.function.parameters)) {
      throw new ImportOpenAIError(`${at}: ${fieldName([...field, 'function', 'parameters'])}: function "${name}" has other parameters than on ${known.from}; the two cannot be merged`);
    }
  };

  const addExample = (input: string, gold: PendingGold | undefined, where: string, inputField: string) => {
    if (input.trim() === '') throw new ImportOpenAIError(`${where}: ${inputField} is empty`);
    if (Buffer.byteLength(input, 'utf8') > FROM_FILES_LIMITS.inputBytes) {
      throw new ImportOpenAIError(`${where}: ${inputField}: longer than ${FROM_FILES_LIMITS.inputBytes} bytes (UTF-8), a task input's limit`);
    }
    const earlier = examples.get(input);
    if (!earlier) {
      if (examples.size === FROM_FILES_LIMITS.dataRows) throw new ImportOpenAIError(`${where}: more than ${FROM_FILES_LIMITS.dataRows} distinct inputs`);
      examples.set(input, { input, gold, where });
      return;
    }
    summary.duplicates++;
    if (!earlier.gold && gold) {
      // A label for an input seen unlabelled before: the example becomes labelled.
      earlier.gold = gold;
      earlier.where = where;
    } else if (earlier.gold && gold && canonical([earlier.gold.name, earlier.gold.args]) !== canonical([gold.name, gold.args])) {
      summary.conflictingDuplicates++;
    }
  };

  const readChatLine = (raw: unknown, at: string) => {
    const parsed = ChatLineSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ImportOpenAIError(`${at}: ${issuePath([], issue)}: ${issue.message}`);
    }
    const line = parsed.data;
    for (const legacy of ['functions', 'function_call']) {
      if ((raw as Record<string, unknown>)[legacy] !== undefined) throw new ImportOpenAIError(`${at}: ${legacy}: the legacy functions format is not supported; give the functions as tools`);
    }
    const lineTools = new Set<string>();
    (line.tools ?? []).forEach((tool, i) => mergeTool(tool, i, at, lineTools));
    const system = line.messages.findIndex((m) => m.role === 'system' || m.role === 'developer');
    if (system >= 0) {
      const text = textOf(line.messages[system].content, `messages[${system}].content`);
      if (typeof text !== 'string') throw new ImportOpenAIError(`${at}: ${text.error}`);
      if (!systemPrompt && text.trim() !== '') systemPrompt = { text, from: at };
      else if (systemPrompt && text !== systemPrompt.text) otherSystemPrompts++;
    }
    let user = line.messages.length - 1;
    while (user >= 0 && line.messages[user].role !== 'user') user--;
    if (user < 0) throw new ImportOpenAIError(`${at}: messages: no user message (the input is the last user message's text)`);
    const input = textOf(line.messages[user].content, `messages[${user}].content`);
    if (typeof input !== 'string') throw new ImportOpenAIError(`${at}: ${input.error}`);
    const answer = line.messages.findIndex((m, i) => i > user && m.role === 'assistant' && (m.tool_calls?.length ?? 0) > 0);
    let gold: PendingGold | undefined;
    if (answer >= 0) {
      const field = `messages[${answer}].tool_calls[0]`;
      const call = line.messages[answer].tool_calls![0];
      if (call.type !== 'function' || !call.function) throw new ImportOpenAIError(`${at}: ${field}.type: only function calls can be gold, not "${call.type}"`);
      let args: unknown;
      try {
        args = JSON.parse(call.function.arguments);
      } catch {
        throw new ImportOpenAIError(`${at}: ${field}.function.arguments is not JSON`);
      }
      if (!args || typeof args !== 'object' || Array.isArray(args)) throw new ImportOpenAIError(`${at}: ${field}.function.arguments is not a JSON object`);
      if (!lineTools.has(call.function.name) && !given.has(call.function.name)) {
        throw new ImportOpenAIError(`${at}: ${field}.function.name: "${call.function.name}" is not a function of the line's tools`);
      }
      gold = { name: call.function.name, args: args as Record<string, unknown>, stringForm: false, field };
    }
    addExample(input, gold, at, `messages[${user}].content`);
    summary.chatLines++;
  };

  const readCaptureLine = (raw: unknown, at: string) => {
    const parsed = CaptureLineSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ImportOpenAIError(`${at}: capture line: ${issuePath([], issue)}: ${issue.message}`);
    }
    const line = parsed.data;
    // The teacher's call is a label; the student's own call is what a refresh would correct, never gold.
    const gold = line.teacher_call ? { name: line.teacher_call.name, args: line.teacher_call.arguments, stringForm: true, field: 'teacher_call' } : undefined;
    addExample(line.input, gold, at, 'input');
    summary.captureLines++;
  };

  for (const input of options.inputs) {
    const name = path.basename(input);
    for await (const { number, line } of linesOf(input, { dataFileBytes: FROM_FILES_LIMITS.dataFileBytes, dataLineBytes: IMPORT_LINE_BYTES }, 'import file')) {
      if (line.trim() === '') continue;
      summary.linesRead++;
      const at = `${name}:${number}`;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        throw new ImportOpenAIError(`${at}: not valid JSON`);
      }
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ImportOpenAIError(`${at}: not a JSON object`);
      const format = (raw as { format?: unknown }).format;
      if (typeof format === 'string' && format.startsWith('supertiny-capture/')) {
        if (format !== CAPTURE_FORMAT) throw new ImportOpenAIError(`${at}: format: this version reads ${CAPTURE_FORMAT} capture lines, not "${format}"`);
        readCaptureLine(raw, at);
      } else {
        readChatLine(raw, at);
      }
    }
  }

  if (tools.size === 0) {
    throw new ImportOpenAIError(
      summary.captureLines > 0 && summary.chatLines === 0
        ? 'no tool definitions: capture lines carry none; pass --functions FILE (the served task\'s functions file)'
        : 'no tool definitions: no line has `tools`; pass --functions FILE',
    );
  }
  if (tools.size > FROM_FILES_LIMITS.tools) throw new ImportOpenAIError(`${tools.size} functions: a task from files has at most ${FROM_FILES_LIMITS.tools}`);
  const merged = FunctionsFileSchema.safeParse({
    name: (options.name ?? path.basename(path.resolve(options.out))).slice(0, 200) || undefined,
    systemPrompt: systemPrompt?.text ?? DEFAULT_SYSTEM_PROMPT,
    tools: [...tools.values()].map((t) => t.tool),
  });
  if (!merged.success) {
    const issue = merged.error.issues[0];
    const from = issue.path[0] === 'systemPrompt' ? ` (the system prompt of ${systemPrompt?.from})` : '';
    throw new ImportOpenAIError(`${FUNCTIONS_FILE}: field ${issuePath([], issue)}: ${issue.message}${from}`);
  }
  const functionsFile: FunctionsFile = merged.data;
  // The loader's own check of a gold call (schema and spans), against the merged functions.
  const checker = goldCheckerOf(functionsFile);
  const parametersOf = new Map<string, Parameters>(functionsFile.tools.map((t) => [t.function.name, t.function.parameters]));
  const rows: { id: string; split: Split; input: string; gold?: { name: string; arguments: Record<string, unknown> } }[] = [];
  for (const example of examples.values()) {
    const { gold } = example;
    if (!gold) {
      rows.push({ id: exampleId(example.input), split: 'train', input: example.input });
      continue;
    }
    if (!checker.hasFunction(gold.name)) {
      throw new ImportOpenAIError(`${example.where}: ${gold.field}: "${gold.name}" is not one of the functions (${[...tools.keys()].join(', ')})`);
    }
    const args = gold.stringForm ? toTypedForm(parametersOf.get(gold.name)!, gold.args) : gold.args;
    const errors = checker.check(gold.name, args, example.input);
    if (errors.length > 0) {
      const argumentsField = gold.stringForm ? `${gold.field}.arguments` : `${gold.field}.function.arguments`;
      throw new ImportOpenAIError(`${example.where}: ${argumentsField}: ${errors[0]} (function "${gold.name}")`);
    }
    rows.push({ id: exampleId(example.input), split: splitOf(example.input), input: example.input, gold: { name: gold.name, arguments: args } });
  }
  const count = (split: Split) => rows.filter((r) => r.split === split).length;
  const labelled = rows.filter((r) => r.gold).length;
  for (const split of ['train', 'dev', 'test'] as const) {
    if (count(split) === 0) {
      throw new ImportOpenAIError(
        `no ${split} example: ${labelled} of ${rows.length} distinct inputs are labelled, and the split by hash put none in ${split}; ` +
          'a task from files needs every split (dev and test with gold): import more labelled lines',
      );
    }
  }

  const functionsPath = path.join(options.out, FUNCTIONS_FILE);
  const dataPath = path.join(options.out, DATA_FILE);
  await writeFileAtomic(functionsPath, JSON.stringify(functionsFile, null, 2) + '\n');
  await writeFileAtomic(dataPath, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  // What was written must load: the loader is the judge of its own format.
  await loadTaskFromFiles({ functions: functionsPath, data: dataPath });
  return {
    ...summary,
    examples: { train: count('train'), dev: count('dev'), test: count('test') },
    labelled,
    unlabelled: rows.length - labelled,
    functions: [...tools.keys()],
    systemPromptFrom: systemPrompt?.from ?? 'default',
    otherSystemPrompts,
    functionsFile: functionsPath,
    dataFile: dataPath,
  };
}
