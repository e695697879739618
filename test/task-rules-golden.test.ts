// The golden task-rule cases (test/golden/task-rules/) against the TypeScript rules: the call parser, the
// JSON Schema check (ajv), the span rule and the task description. trainer/tests/test_task_rules_golden.py
// runs the same cases against the trainer's rules; both must agree with the file.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { callArgumentsObject, parseCall, type Call } from '../tasks/call-format';
import type { TaskSpec } from '../tasks/define';
import { compileArgumentsCheck, toTypedForm } from '../tasks/from-files/arguments';
import { FunctionsFileSchema } from '../tasks/from-files/functions-file';
import { taskFromFiles } from '../tasks/from-files/task';
import { massiveTaskFromExamples, parseMassiveLine } from '../tasks/massive';
import { taskDescription, TaskDescriptionSchema } from '../tasks/task-description';

interface GoldenCase {
  name: string;
  input: string;
  output: string;
  verdict: 'parse error' | 'unknown function' | 'schema invalid' | 'not a span' | 'valid';
  parse?: { name: string; args: [string, string][] };
}

const folder = path.join(__dirname, 'golden', 'task-rules');
const goldenFiles = readdirSync(folder).filter((f) => f.endsWith('.json'));

interface GoldenFile {
  /** A functions file (a task from files), or MASSIVE lines to build the MASSIVE task from. */
  functions?: unknown;
  massive?: unknown[];
  description: unknown;
  cases: GoldenCase[];
}

/** The task of a golden file and its schema check: ajv over the typed arguments (from files) or the task's zod schemas. */
function goldenTask(golden: GoldenFile): { task: TaskSpec<any>; schemaVerdict(call: Call): 'unknown function' | 'schema invalid' | 'ok' } {
  if (golden.massive) {
    const { task } = massiveTaskFromExamples(golden.massive.map((line, i) => parseMassiveLine(JSON.stringify(line), i + 1)));
    return {
      task,
      schemaVerdict: (call) => {
        const check = task.validateCall(call);
        return check.ok ? 'ok' : check.kind === 'unknown_function' ? 'unknown function' : 'schema invalid';
      },
    };
  }
  const file = FunctionsFileSchema.parse(golden.functions);
  return {
    task: taskFromFiles(file, []),
    schemaVerdict: (call) => {
      const tool = file.tools.find((t) => t.function.name === call.name);
      if (!tool) return 'unknown function';
      const { parameters } = tool.function;
      return compileArgumentsCheck(parameters)(toTypedForm(parameters, callArgumentsObject(call))).length > 0 ? 'schema invalid' : 'ok';
    },
  };
}

describe.each(goldenFiles)('golden task rules %s', (fileName) => {
  const golden = JSON.parse(readFileSync(path.join(folder, fileName), 'utf8')) as GoldenFile;
  const { task, schemaVerdict } = goldenTask(golden);

  test('the task description is the one the trainer reads in the golden file, and it is valid', () => {
    expect(taskDescription(task)).toEqual(golden.description);
    expect(TaskDescriptionSchema.safeParse(golden.description).success).toBe(true);
  });

  test.each(golden.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const parsed = parseCall(c.output);
    let verdict: GoldenCase['verdict'];
    if (!parsed.ok) {
      verdict = 'parse error';
    } else {
      if (c.parse) expect({ name: parsed.call.name, args: parsed.call.args.map((a) => [a.key, a.value]) }).toEqual(c.parse);
      const schema = schemaVerdict(parsed.call);
      verdict = schema !== 'ok' ? schema : task.verify(parsed.call, c.input).ok ? 'valid' : 'not a span';
      // A task from files verifies schema and spans in one: its verifier accepts exactly the valid calls.
      if (golden.functions) expect(task.verify(parsed.call, c.input).ok).toBe(verdict === 'valid');
    }
    expect(verdict).toBe(c.verdict);
  });
});

describe('task descriptions both sides refuse (test/golden/task-descriptions-refused.json)', () => {
  const { cases } = JSON.parse(readFileSync(path.join(__dirname, 'golden', 'task-descriptions-refused.json'), 'utf8')) as {
    cases: { name: string; description: unknown }[];
  };
  test.each(cases.map((c) => [c.name, c.description] as const))('%s', (_name, description) => {
    expect(TaskDescriptionSchema.safeParse(description).success).toBe(false);
  });
});
