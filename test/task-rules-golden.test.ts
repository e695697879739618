// The golden task-rule cases (test/golden/task-rules/) against the TypeScript rules: the call parser, the
// JSON Schema check (ajv), the span rule and the task description. trainer/tests/test_task_rules_golden.py
// runs the same cases against the trainer's rules; both must agree with the file.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { callArgumentsObject, parseCall } from '../tasks/call-format';
import { compileArgumentsCheck, toTypedForm } from '../tasks/from-files/arguments';
import { FunctionsFileSchema } from '../tasks/from-files/functions-file';
import { taskFromFiles } from '../tasks/from-files/task';
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

describe.each(goldenFiles)('golden task rules %s', (fileName) => {
  const golden = JSON.parse(readFileSync(path.join(folder, fileName), 'utf8')) as { functions: unknown; description: unknown; cases: GoldenCase[] };
  const file = FunctionsFileSchema.parse(golden.functions);
  const task = taskFromFiles(file, []);

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
      const tool = file.tools.find((t) => t.function.name === parsed.call.name);
      if (!tool) {
        verdict = 'unknown function';
      } else {
        const { parameters } = tool.function;
        const schemaErrors = compileArgumentsCheck(parameters)(toTypedForm(parameters, callArgumentsObject(parsed.call)));
        verdict = schemaErrors.length > 0 ? 'schema invalid' : task.verify(parsed.call, c.input).ok ? 'valid' : 'not a span';
      }
      // The task's own verifier accepts exactly the valid calls.
      expect(task.verify(parsed.call, c.input).ok).toBe(verdict === 'valid');
    }
    expect(verdict).toBe(c.verdict);
  });
});
