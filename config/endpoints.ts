// Teacher endpoints belong to the worker's operator: URL, the variable that holds the key, the models a
// pipeline may ask for and their prices. A pipeline config only names an endpoint, so whoever starts a
// workflow can never send the worker's key (or any environment variable) to a URL of their choosing.
import { promises as fs } from 'node:fs';
import * as YAML from 'yaml';
import { z } from 'zod';
import { FailureType, SupertinyError } from './failure-types';

/** The endpoint served by the built-in teacher SIMULATOR (started in the worker on first use). */
export const SIMULATOR_ENDPOINT = 'simulator';
export const SIMULATOR_MODEL = 'teacher-simulator';

const endpointName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, dot, dash and underscore only');

export const PricesSchema = z
  .object({
    inputPerMTok: z.number().min(0).max(10_000).describe('USD per million prompt tokens'),
    outputPerMTok: z.number().min(0).max(10_000).describe('USD per million completion tokens'),
  })
  .strict();
export type Prices = z.infer<typeof PricesSchema>;

/** A host name that never leaves the machine: a key sent to it in clear text stays on it. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export const TeacherEndpointSchema = z
  .object({
    name: endpointName.refine((n) => n !== SIMULATOR_ENDPOINT, `"${SIMULATOR_ENDPOINT}" is the built-in teacher simulator`),
    baseURL: z
      .string()
      .max(2048)
      .url()
      // Each check passes a string that is not a URL: url() has said so already.
      .refine((u) => !URL.canParse(u) || /^https?:$/.test(new URL(u).protocol), 'must be an http:// or https:// URL')
      // URLs are described in errors, logs and keys: a secret in one would travel with it. The key belongs in apiKeyEnv.
      .refine((u) => !URL.canParse(u) || (!new URL(u).search && !new URL(u).hash), 'must not have a query string or fragment (a key belongs in apiKeyEnv)')
      .refine((u) => !URL.canParse(u) || (!new URL(u).username && !new URL(u).password), 'must not hold a user name or password (a key belongs in apiKeyEnv)'),
    allowInsecure: z
      .boolean()
      .default(false)
      .describe('send the key over plain http:// to a host that is not loopback (a private network the operator trusts)'),
    apiKeyEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name (A-Z, 0-9, _)')
      .optional()
      .describe('the variable that holds the key; unset for endpoints without auth'),
    models: z.array(z.string().min(1).max(200)).min(1).max(100).describe('models a pipeline may ask this endpoint for'),
    prices: PricesSchema.default({ inputPerMTok: 0, outputPerMTok: 0 }),
    idempotencyHeader: z
      .union([z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name'), z.literal(false)])
      .default('Idempotency-Key')
      .describe('header carrying each request\'s idempotency key (the same for every resend of one request); false sends none'),
    maxSpendUsdPerPipeline: z
      .number()
      .min(0)
      .max(1_000_000)
      .optional()
      .describe("the highest teacher.maxSpendUsd a pipeline may set for this endpoint (a config asking more is refused before anything is paid)"),
  })
  .strict()
  .superRefine((e, ctx) => {
    const url = URL.canParse(e.baseURL) ? new URL(e.baseURL) : undefined;
    if (url?.protocol === 'http:' && e.apiKeyEnv && !e.allowInsecure && !isLoopbackHost(url.hostname)) {
      ctx.addIssue({
        code: 'custom',
        path: ['baseURL'],
        message: `would send the key in ${e.apiKeyEnv} in clear text to ${url.hostname}: use https://, a loopback host, or allowInsecure: true`,
      });
    }
  });
export type TeacherEndpointSpec = z.infer<typeof TeacherEndpointSchema>;

export const TeacherEndpointsFileSchema = z
  .object({ endpoints: z.array(TeacherEndpointSchema).max(100) })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    file.endpoints.forEach((e, i) => {
      if (seen.has(e.name)) ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'name'], message: `duplicate endpoint name "${e.name}"` });
      seen.add(e.name);
    });
  });

/** An endpoint with its key read: lives only in the worker process, never in history, logs or artifacts. */
export interface TeacherEndpoint {
  name: string;
  /** undefined for the simulator: the worker starts one on first use. */
  baseURL?: string;
  apiKey?: string;
  models: string[];
  prices: Prices;
  simulated: boolean;
  /** Header for the per-request idempotency key; null sends none. */
  idempotencyHeader: string | null;
  /** The operator's cap on a pipeline's teacher.maxSpendUsd; unset = the config's schema bound. */
  maxSpendUsdPerPipeline?: number;
}

/** The simulator's prices are a stand-in (a small hosted model's list price) so that reports show a cost. */
export const SIMULATOR_PRICES: Prices = { inputPerMTok: 0.15, outputPerMTok: 0.6 };

export function simulatorEndpoint(): TeacherEndpoint {
  return { name: SIMULATOR_ENDPOINT, models: [SIMULATOR_MODEL], prices: SIMULATOR_PRICES, simulated: true, idempotencyHeader: 'Idempotency-Key' };
}

export class EndpointConfigError extends SupertinyError {
  readonly failureType = FailureType.InvalidConfig;
}

/**
 * Checks the operator's endpoint list and reads each key from the environment (`secret`). Throws
 * EndpointConfigError naming the field; the simulator is always available as "simulator".
 */
export function resolveTeacherEndpoints(raw: unknown, secret: (name: string) => string | undefined, source = 'teacher endpoints'): TeacherEndpoint[] {
  const parsed = TeacherEndpointsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new EndpointConfigError(`${source}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const endpoints = parsed.data.endpoints.map((e): TeacherEndpoint => {
    const apiKey = e.apiKeyEnv ? secret(e.apiKeyEnv) : undefined;
    if (e.apiKeyEnv && !apiKey) throw new EndpointConfigError(`${source}: endpoint "${e.name}" reads its key from ${e.apiKeyEnv}, which is not set`);
    return {
      name: e.name,
      baseURL: e.baseURL,
      apiKey,
      models: e.models,
      prices: e.prices,
      simulated: false,
      idempotencyHeader: e.idempotencyHeader === false ? null : e.idempotencyHeader,
      ...(e.maxSpendUsdPerPipeline !== undefined ? { maxSpendUsdPerPipeline: e.maxSpendUsdPerPipeline } : {}),
    };
  });
  return [simulatorEndpoint(), ...endpoints];
}

/** Reads the operator's endpoints file (JSON or YAML: `{ endpoints: [...] }`). */
export async function loadTeacherEndpoints(file: string | undefined, secret: (name: string) => string | undefined): Promise<TeacherEndpoint[]> {
  if (!file) return [simulatorEndpoint()];
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new EndpointConfigError(`cannot read the teacher endpoints file ${file}: ${err.code ?? err.message}`);
  });
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch {
    throw new EndpointConfigError(`the teacher endpoints file ${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}`);
  }
  return resolveTeacherEndpoints(raw, secret, file);
}

/**
 * Every key the worker holds (the endpoints' and `others`, e.g. the Temporal API key), longest first, so that
 * error messages and logs can be scrubbed of them.
 */
export function secretsOf(endpoints: readonly TeacherEndpoint[], ...others: (string | undefined)[]): string[] {
  return [...endpoints.map((e) => e.apiKey), ...others]
    .filter((k): k is string => !!k && k.length >= 4)
    .sort((a, b) => b.length - a.length);
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('[redacted]');
  return out;
}

/** Shapes of credentials that text from outside may carry (an endpoint's echo, a masked key, a signed URL). */
const CREDENTIAL_SHAPES: [RegExp, string][] = [
  [/\b(Bearer|Basic)\s+(?!\[redacted\])[^\s"',;]+/gi, '$1 [redacted]'],
  [/\b(sk|rk|pk)-[A-Za-z0-9_*.-]{8,}/g, '[redacted]'],
  [/([?&#](?:api[-_]?key|key|token|access_token|sig|signature|password|secret)=)[^&#\s"']+/gi, '$1[redacted]'],
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1'],
];

/**
 * Text that leaves the worker (a failure's message, stack or details; an endpoint's error text) with the
 * worker's secrets removed, and whatever has the shape of a credential: a bearer token, an OpenAI-style key
 * (masked ones too), a key in a URL's query, a URL's user name and password.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = redact(text, secrets);
  for (const [shape, replacement] of CREDENTIAL_SHAPES) out = out.replace(shape, replacement);
  return out;
}
