// A function's arguments in two forms. The teacher and the data file write them typed, as the JSON Schema
// says (3, true, "red"); the compact call format, the students and the metrics carry every value as a
// string ("3", "true", "red"). These are the conversions, the string form's zod schema, and the check of
// typed arguments against the JSON Schema (ajv).
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { z } from 'zod';
import type { Parameter, Parameters } from './functions-file';

const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
const INTEGER = /^-?(0|[1-9]\d*)$/;

/** The string form of a typed value: numbers and booleans as JSON writes them; anything else unchanged. */
function stringValue(value: unknown, param: Parameter | undefined): unknown {
  if (!param) return value;
  if ((param.type === 'number' || param.type === 'integer') && typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (param.type === 'boolean' && typeof value === 'boolean') return String(value);
  return value;
}

/** The typed value of a string: "3" for a number parameter is 3, "true" for a boolean one is true. */
function typedValue(value: unknown, param: Parameter | undefined): unknown {
  if (typeof value !== 'string' || !param) return value;
  if ((param.type === 'number' || param.type === 'integer') && NUMBER.test(value)) return Number(value);
  if (param.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

const mapValues = (args: Record<string, unknown>, f: (value: unknown, key: string) => unknown) =>
  Object.fromEntries(Object.entries(args).map(([key, value]) => [key, f(value, key)]));

export function toStringForm(parameters: Parameters, args: Record<string, unknown>): Record<string, unknown> {
  return mapValues(args, (value, key) => stringValue(value, parameters.properties[key]));
}

export function toTypedForm(parameters: Parameters, args: Record<string, unknown>): Record<string, unknown> {
  return mapValues(args, (value, key) => typedValue(value, parameters.properties[key]));
}

function stringFormParameter(param: Parameter): z.ZodType {
  switch (param.type) {
    case 'string': {
      if (param.enum) return z.enum(param.enum as [string, ...string[]]);
      let s = z.string();
      if (param.minLength !== undefined) s = s.min(param.minLength);
      if (param.maxLength !== undefined) s = s.max(param.maxLength);
      return s;
    }
    case 'boolean':
      return z.enum(['true', 'false']);
    default: {
      const { minimum, maximum } = param;
      const pattern = param.type === 'integer' ? INTEGER : NUMBER;
      return z
        .string()
        .regex(pattern, `must be ${param.type === 'integer' ? 'an integer' : 'a number'}`)
        .refine((s) => (minimum === undefined || Number(s) >= minimum) && (maximum === undefined || Number(s) <= maximum), {
          message: `must be in [${minimum ?? '-inf'}, ${maximum ?? 'inf'}]`,
        });
    }
  }
}

/** The zod schema of the string form (what defineTask's parameters, the grammar and the metrics see). */
export function stringFormParameters(parameters: Parameters): z.ZodObject {
  const required = new Set(parameters.required ?? []);
  const shape: Record<string, z.ZodType> = {};
  for (const [key, param] of Object.entries(parameters.properties)) {
    const type = stringFormParameter(param);
    const described = param.description ? type.describe(param.description) : type;
    shape[key] = required.has(key) ? described : described.optional();
  }
  return z.strictObject(shape);
}

const ajv = new Ajv({ allErrors: false, strict: true });
ajv.addKeyword({ keyword: 'x-span', schemaType: 'boolean' });

/** Checks typed arguments against the JSON Schema; each error names the argument, never its value. */
export type ArgumentsCheck = (args: unknown) => string[];

function describe(error: ErrorObject): string {
  const key =
    error.keyword === 'additionalProperties'
      ? String((error.params as { additionalProperty: string }).additionalProperty)
      : error.keyword === 'required'
        ? String((error.params as { missingProperty: string }).missingProperty)
        : error.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const what = error.keyword === 'additionalProperties' ? 'is not a parameter' : error.keyword === 'required' ? 'is required' : error.message ?? 'is invalid';
  return key ? `argument "${key}" ${what}` : `arguments ${what}`;
}

export function compileArgumentsCheck(parameters: Parameters): ArgumentsCheck {
  // A tool's parameters say nothing of unknown keys when additionalProperties is unset; a call is strict.
  const validate: ValidateFunction = ajv.compile({ ...parameters, additionalProperties: false });
  return (args) => (validate(args) ? [] : (validate.errors ?? []).map(describe));
}
