// What kind of value each argument of a task's output functions takes, and so which student family can
// learn the task: the encoder predicts spans of the input and, with its value heads, enums, booleans and
// integers of a small range (trainer/ENCODER_FORMAT.md; other numbers are tagged as spans, and its training
// refuses one that is mostly not written in the input); the decoder writes any value its grammar and the
// schema allow, free text included.
import { z } from 'zod';
import type { DecoderBaseName } from '../config/decoder-bases';
import type { StudentFamily, StudentFamilyChoice } from '../config/pipeline';
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

/**
 * Whether the encoder student can express an argument: the one rule that decides which family a task needs
 * (studentFamilyChoice, studentFamilyProblem). The encoder tags spans of the input and predicts enums,
 * booleans and numbers with its value heads (or as spans); free text needs the decoder.
 */
export function encoderCanExpress(argument: TaskArgument): boolean {
  return argument.kind !== 'free text';
}

type SchemaOf = Pick<TaskSpec<any>, 'functions' | 'spanArguments'>;

/** The first argument the encoder cannot express, a free-text one first (the one the decoder is needed for most plainly). */
function firstInexpressible(task: SchemaOf): TaskArgument | undefined {
  const args = taskArguments(task).filter((a) => !encoderCanExpress(a));
  return args.find((a) => a.kind === 'free text') ?? args[0];
}

const describeKind = (a: TaskArgument) => (a.kind === 'free text' ? 'free text, not a span' : `a${a.kind === 'enum' ? 'n' : ''} ${a.kind}`);

/**
 * The family chosen for a task from its schema when the config names none: the encoder (small and fast)
 * when it can express every argument of every output function, else the decoder, with the reason in words;
 * the decoder starting from `decoderBase` where one is given (the worker's freeTextDecoderBase).
 */
export function studentFamilyChoice(task: SchemaOf, decoderBase?: DecoderBaseName): StudentFamilyChoice {
  const blocker = firstInexpressible(task);
  if (blocker) {
    const why = `argument ${blocker.function}.${blocker.argument} is ${describeKind(blocker)}, which the encoder student cannot express`;
    return decoderBase === undefined
      ? { family: 'decoder', chosenFrom: 'task schema', reason: why }
      : { family: 'decoder', base: decoderBase, chosenFrom: 'task schema', reason: `${why}; it starts from the pretrained ${decoderBase} base` };
  }
  const args = taskArguments(task);
  const functions = Object.keys(task.functions).length;
  const kinds = [...new Set(args.map((a) => (a.kind === 'span' ? 'a span of the input' : describeKind(a))))];
  return {
    family: 'encoder',
    chosenFrom: 'task schema',
    reason:
      args.length === 0
        ? `no output function takes an argument`
        : `every argument of the ${functions} output function${functions === 1 ? '' : 's'} is ${kinds.join(' or ')}, which the encoder student expresses`,
  };
}

/** The family the task's schema needs: the encoder when it can express every argument, else the decoder. */
export function studentFamilyFor(task: SchemaOf): StudentFamily {
  return studentFamilyChoice(task).family;
}

/** Why `family` cannot learn the task (naming the argument), or undefined when it can. */
export function studentFamilyProblem(task: SchemaOf, family: StudentFamily): string | undefined {
  if (family === 'decoder') return undefined;
  const first = firstInexpressible(task);
  if (!first) return undefined;
  return (
    `the encoder student predicts spans of the input and enum, boolean and number values, and argument "${first.argument}" ` +
    `of function "${first.function}" is ${describeKind(first)} (mark a string copied from the input "x-span": true); this task needs transfer.student.family "decoder" ` +
    '(or leave the family out: it is then chosen from the task\'s schema)'
  );
}
