// `supertiny import-openai FILE... --out DIR [--functions FILE] [--name NAME]`: OpenAI chat-format JSONL (and
// `serve --capture` files) into a task from files (tasks/from-files/import-openai.ts), with a summary.
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { importOpenAI, type ImportSummary } from '../tasks/from-files/import-openai';

export const IMPORT_OPENAI_USAGE = `usage: supertiny import-openai FILE [FILE...] --out DIR [--functions FILE] [--name NAME]
  FILE: JSONL, one OpenAI chat line a line ({"messages": [...], "tools": [...]}: the fine-tuning format, exported chat
  completions) or a capture line of \`supertiny serve --capture\`. Writes DIR/functions.json (the lines' tools, merged) and
  DIR/data.jsonl (the last user message as the input; gold: the assistant's first tool call, or a capture line's teacher call;
  else unlabelled; split by a hash of the input, 80/10/10, unlabelled to train): a task from files.
  --functions FILE: a functions file whose system prompt and tools come first (needed for capture lines, which carry no tools).`;

export class ImportOpenAIUsageError extends Error {
  constructor(message: string) {
    super(`${message}\n${IMPORT_OPENAI_USAGE}`);
    this.name = 'ImportOpenAIUsageError';
  }
}

const IMPORT_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  out: { type: 'string' },
  functions: { type: 'string' },
  name: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export function wantsImportHelp(args: string[]): boolean {
  return parseArgs({ args, options: IMPORT_OPTIONS, strict: false, allowPositionals: true }).values.help === true;
}

export async function importOpenAICommand(args: string[]): Promise<ImportSummary> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: IMPORT_OPTIONS, strict: true, allowPositionals: true });
  } catch (err) {
    throw new ImportOpenAIUsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new ImportOpenAIUsageError('FILE is required (one or more JSONL files)');
  if (!values.out) throw new ImportOpenAIUsageError('--out DIR is required');
  return importOpenAI({
    inputs: positionals.map((file) => path.resolve(file)),
    out: path.resolve(values.out),
    functions: values.functions === undefined ? undefined : path.resolve(values.functions),
    name: values.name,
  });
}

/** The summary a person reads after an import. */
export function importSummaryText(s: ImportSummary): string {
  const lines = [
    `read ${s.linesRead} lines (${s.chatLines} chat, ${s.captureLines} capture)`,
    `wrote ${s.examples.train + s.examples.dev + s.examples.test} examples: train ${s.examples.train}, dev ${s.examples.dev}, test ${s.examples.test}; ` +
      `${s.labelled} labelled, ${s.unlabelled} unlabelled`,
    `duplicate inputs kept once: ${s.duplicates}${s.conflictingDuplicates > 0 ? ` (${s.conflictingDuplicates} with another gold call than the one kept)` : ''}`,
    `functions (${s.functions.length}): ${s.functions.join(', ')}`,
    `system prompt: from ${s.systemPromptFrom}${s.otherSystemPrompts > 0 ? ` (${s.otherSystemPrompts} lines had another one)` : ''}`,
    `task files: ${s.functionsFile} ${s.dataFile}`,
    `use them: {"task": {"name": "from-files", "functionsPath": "${s.functionsFile}", "dataPath": "${s.dataFile}"}}`,
  ];
  return lines.join('\n') + '\n';
}
