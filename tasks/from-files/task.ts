// A task from files, for users who do not write TypeScript: `task: { name: "from-files", functionsPath,
// dataPath }`. One step: the teacher answers with one call of one of the functions. The verifier comes from
// the schema: arguments must satisfy the function's JSON Schema, and a string argument marked
// "x-span": true must occur in the input, as whole words.
import { callArgumentsObject, callFromArgumentsObject, normalizeSlotValue, type Call } from '../call-format';
import { compactCallFormat, defineTask, type OutputFunction, type TaskSpec, type VerifierResult } from '../define';
import { callMetrics } from '../metrics';
import type { TaskDefinition } from '../registry';
import { spanOffsets } from '../spans';
import { compileArgumentsCheck, stringFormParameters, toStringForm, toTypedForm, type ArgumentsCheck } from './arguments';
import { readDataFile, type FileExample, type GoldChecker } from './data-file';
import { TaskFileError } from './errors';
import { readFunctionsFile, type FunctionsFile, type Parameters } from './functions-file';

interface FunctionRules {
  parameters: Parameters;
  check: ArgumentsCheck;
  spans: string[];
}

function rulesOf(file: FunctionsFile): Map<string, FunctionRules> {
  return new Map(
    file.tools.map(({ function: f }) => [
      f.name,
      {
        parameters: f.parameters,
        check: compileArgumentsCheck(f.parameters),
        spans: Object.entries(f.parameters.properties)
          .filter(([, p]) => p.type === 'string' && p['x-span'])
          .map(([key]) => key),
      },
    ]),
  );
}

/** Errors of typed arguments: the JSON Schema (ajv), then every span argument must occur in the input. */
function argumentErrors(rules: FunctionRules, typed: Record<string, unknown>, input: string): string[] {
  const errors = rules.check(typed);
  if (errors.length > 0) return errors;
  for (const key of rules.spans) {
    const value = typed[key];
    if (typeof value === 'string' && spanOffsets(input, normalizeSlotValue(value)).length === 0) return [`argument "${key}" is not a span of the input`];
  }
  return [];
}

/** The JSON Schema the teacher sees: the file's, with the span mark said in words instead of a custom keyword. */
function teacherSchema(parameters: Parameters): Record<string, unknown> {
  const properties = Object.fromEntries(
    Object.entries(parameters.properties).map(([key, p]) => {
      if (p.type !== 'string' || !p['x-span']) return [key, p];
      const { 'x-span': _span, ...rest } = p;
      return [key, { ...rest, description: `${rest.description ? `${rest.description} ` : ''}Copy it verbatim from the request.`.trim() }];
    }),
  );
  return { ...parameters, properties, additionalProperties: false };
}

/** Builds the task from a checked functions file and data file. */
export function taskFromFiles(file: FunctionsFile, examples: FileExample[], rules = rulesOf(file)): TaskSpec<FileExample> {
  const functions: Record<string, OutputFunction> = Object.fromEntries(
    file.tools.map(({ function: f }) => [
      f.name,
      {
        description: f.description,
        parameters: stringFormParameters(f.parameters),
        toolSchema: { parameters: teacherSchema(f.parameters), toStringForm: (args: Record<string, unknown>) => toStringForm(f.parameters, args) },
      },
    ]),
  );
  const spanArguments = Object.fromEntries([...rules].filter(([, r]) => r.spans.length > 0).map(([name, r]) => [name, r.spans]));
  return defineTask<FileExample>({
    name: 'from-files',
    displayName: file.name ?? 'task from files',
    systemPrompt: file.systemPrompt,
    tools: {},
    functions,
    entryTools: Object.keys(functions),
    maxSteps: 1,
    callFormat: compactCallFormat,
    input: (e) => e.input,
    gold: (e) => e.gold,
    verify(call: Call, input: string): VerifierResult {
      const r = rules.get(call.name);
      if (!r) return { ok: false, reason: `unknown function "${call.name}"` };
      const errors = argumentErrors(r, toTypedForm(r.parameters, callArgumentsObject(call)), input);
      return errors.length === 0 ? { ok: true } : { ok: false, reason: errors.join('; ') };
    },
    spanArguments,
    metrics: callMetrics,
    dataset: {
      splits: ['train', 'dev', 'test'],
      load: async (split) => examples.filter((e) => e.split === split),
      loadAll: async () => examples,
    },
  });
}

/** How the data file checks a gold call against a checked functions file (the importer checks with it too). */
export function goldCheckerOf(file: FunctionsFile, rules = rulesOf(file)): GoldChecker {
  return {
    hasFunction: (name) => rules.has(name),
    check: (name, args, input) => argumentErrors(rules.get(name)!, args, input),
    toCall: (name, args) => callFromArgumentsObject(name, toStringForm(rules.get(name)!.parameters, args) as Record<string, string>),
  };
}

/** Loads a task from its functions file and data file (each error names the file, line and field). */
export async function loadTaskFromFiles(files: { functions: string; data: string }): Promise<TaskSpec<FileExample>> {
  const file = await readFunctionsFile(files.functions);
  const rules = rulesOf(file);
  return taskFromFiles(file, await readDataFile(files.data, goldCheckerOf(file, rules)), rules);
}

/** The registered "from-files" task: `task: { name: "from-files", functionsPath, dataPath }`. */
export const fromFilesTaskDefinition: TaskDefinition = {
  name: 'from-files',
  files: { data: 'required', functions: 'required' },
  load: async ({ data, functions }) => {
    if (!data || !functions) throw new TaskFileError('a task from files needs task.functionsPath and task.dataPath');
    return loadTaskFromFiles({ data, functions });
  },
};
