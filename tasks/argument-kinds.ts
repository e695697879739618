// What kind of value each argument of a task's output functions takes, and so which student family can
// learn the task: the encoder predicts spans of the input and, with its value heads, enums, booleans and
// integers of a small range (trainer/ENCODER_FORMAT.md; other numbers are tagged as spans, and its training
// refuses one that is mostly not written in the input); the decoder writes any value its grammar and the
// schema allow, free text included.
import { z } from 'zod';
import type { StudentFamily } from '../config/pipeline';
import type { TaskSpec } from './define';

export type ArgumentKind = 'span' | 'enum' | 'number' | 'boolean' | 'free text';

export interface TaskArgument {
  function: string;
  argument: string;
  kind: ArgumentKind;
}

type JsonProperty = { type?: unknown; enum?: unknown };

function kindOf(property: JsonProperty | undefined, type: z.ZodType): ArgumentKind {
  if (property) {
    if (property.enum !== undefined) return 'enum';
    if (property.type === 'number' || property.type === 'integer') return 'number';
    if (property.type === 'boolean') return 'boolean';
    return 'free text';
  }
  const inner = type instanceof z.ZodOptional ? (type.unwrap() as z.ZodType) : type;
  return inner instanceof z.ZodEnum ? 'enum' : 'free text';
}

/** Every argument of every output function with its kind. */
export function taskArguments(task: Pick<TaskSpec<any>, 'functions' | 'spanArguments'>): TaskArgument[] {
  return Object.entries(task.functions).flatMap(([name, fn]) => {
    const properties = (fn.toolSchema?.parameters as { properties?: Record<string, JsonProperty> } | undefined)?.properties;
    const spans = new Set(task.spanArguments[name] ?? []);
    return Object.entries(fn.parameters.shape as Record<string, z.ZodType>).map(([key, type]) => ({
      function: name,
      argument: key,
      kind: spans.has(key) ? 'span' : kindOf(properties?.[key], type),
    }));
  });
}

/** The family the task's schema needs: the encoder when no argument is free text, else the decoder. */
export function studentFamilyFor(task: Pick<TaskSpec<any>, 'functions' | 'spanArguments'>): StudentFamily {
  return taskArguments(task).some((a) => a.kind === 'free text') ? 'decoder' : 'encoder';
}

/** Why `family` cannot learn the task (naming the argument), or undefined when it can. */
export function studentFamilyProblem(task: Pick<TaskSpec<any>, 'functions' | 'spanArguments'>, family: StudentFamily): string | undefined {
  if (family === 'decoder') return undefined;
  const first = taskArguments(task).find((a) => a.kind === 'free text');
  if (!first) return undefined;
  return (
    'the encoder student predicts spans of the input and enum, boolean and number values, and argument ' +
    `"${first.argument}" of function "${first.function}" is free text, not a span (mark a string copied from the input "x-span": true); ` +
    'this task needs transfer.student.family "decoder"'
  );
}
