// The task description: what the trainer needs to know of a task, decided here once and written as JSON
// beside the data (trainer/supertiny_trainer/student/task_description.py reads it instead of re-deriving the
// rules from tool definitions). Per output function: its JSON Schema, as the teacher sees it and ajv checks it,
// and each argument with its kind (argument-kinds.ts), its JSON type, whether it is required, an enum's values
// and a number's bounds. A compact call carries strings; `type` says how a string becomes the typed value the
// schema checks (from-files/arguments.ts toTypedForm). Golden cases both sides run: test/golden/task-rules/.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { taskArguments } from './argument-kinds';
import type { TaskSpec } from './define';

export const TASK_DESCRIPTION_FORMAT = 'supertiny-task/1';

const ArgumentDescriptionSchema = z.strictObject({
  name: z.string().min(1),
  kind: z.enum(['span', 'enum', 'number', 'boolean', 'free text']),
  /** The JSON type of the typed value: a compact call's "3" is the number 3 for a "number" or "integer" one. */
  type: z.enum(['string', 'number', 'integer', 'boolean']),
  required: z.boolean(),
  values: z.array(z.string()).min(1).optional(),
  minimum: z.number().optional(),
  maximum: z.number().optional(),
});

const FunctionDescriptionSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string(),
  /** The arguments object's JSON Schema (draft-07, checked as ajv does: no formats, unknown keys refused). */
  parameters: z.record(z.string(), z.unknown()),
  arguments: z.array(ArgumentDescriptionSchema),
});

export const TaskDescriptionSchema = z
  .strictObject({
    format: z.literal(TASK_DESCRIPTION_FORMAT),
    task: z.string().min(1),
    functions: z.array(FunctionDescriptionSchema).min(1),
  })
  .superRefine((d, ctx) => {
    const names = new Set<string>();
    for (const [i, f] of d.functions.entries()) {
      if (names.has(f.name)) ctx.addIssue({ code: 'custom', path: ['functions', i, 'name'], message: `"${f.name}" is described twice` });
      names.add(f.name);
      for (const [j, a] of f.arguments.entries()) {
        if (a.kind === 'enum' && !a.values) ctx.addIssue({ code: 'custom', path: ['functions', i, 'arguments', j, 'values'], message: 'an enum needs its values' });
      }
    }
  });

export type TaskDescription = z.infer<typeof TaskDescriptionSchema>;
export type ArgumentDescription = z.infer<typeof ArgumentDescriptionSchema>;

type JsonProperty = { type?: unknown; enum?: unknown[]; minimum?: unknown; maximum?: unknown };

const JSON_TYPES = new Set(['string', 'number', 'integer', 'boolean']);

/** The description of a task's output functions; validated, so a task that cannot be described fails here. */
export function taskDescription(task: TaskSpec<any>): TaskDescription {
  const kinds = new Map(taskArguments(task).map((a) => [`${a.function}.${a.argument}`, a.kind]));
  const functions = task.toolDefinitions(task.functionNames).map(({ function: f }) => {
    const schema = f.parameters as { properties?: Record<string, JsonProperty>; required?: string[] };
    const required = new Set(schema.required ?? []);
    const args = Object.keys(task.functions[f.name].parameters.shape).map((name): ArgumentDescription => {
      const property = schema.properties?.[name] ?? {};
      const kind = kinds.get(`${f.name}.${name}`)!;
      return {
        name,
        kind,
        type: typeof property.type === 'string' && JSON_TYPES.has(property.type) ? (property.type as ArgumentDescription['type']) : 'string',
        required: required.has(name),
        ...(kind === 'enum' && Array.isArray(property.enum) ? { values: property.enum.map(String) } : {}),
        ...(typeof property.minimum === 'number' ? { minimum: property.minimum } : {}),
        ...(typeof property.maximum === 'number' ? { maximum: property.maximum } : {}),
      };
    });
    return { name: f.name, description: f.description, parameters: f.parameters, arguments: args };
  });
  return TaskDescriptionSchema.parse({ format: TASK_DESCRIPTION_FORMAT, task: task.name, functions });
}

/** The description as the file the trainer reads, with its hash (part of the output key of the step that reads it). */
export function taskDescriptionFile(description: TaskDescription): { text: string; sha256: string } {
  const text = `${JSON.stringify(description, null, 2)}\n`;
  return { text, sha256: createHash('sha256').update(text).digest('hex') };
}

