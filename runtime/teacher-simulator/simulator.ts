// The TEACHER SIMULATOR's answering logic (no HTTP): it plays a large LLM on any task with gold calls by
// looking the input up in the task's labelled examples and answering through the seeded error model.
// Roles it recognises from the offered tools:
//   route  a tool with an enum parameter over the task's function groups -> {"<param>": "<group>"}
//   final  tools named after output functions (e.g. the routed group's)   -> the call with its arguments,
//          typed as the tool's JSON Schema says (number, integer, boolean)
//   judge  a tool with a `verdict` parameter; the last user message holds the lines
//          "Utterance: <text>" and "Proposed call: <compact call>"  -> {"verdict": "correct"|"incorrect"}
//   text   no tools, or tool_choice "none"                     -> the compact call as message content
import { z } from 'zod';
import { canonicalJson } from '../../artifacts/store';
import { Call, callArgumentsObject, parseCall, printCall } from '../../tasks/call-format';
import { isExactMatch } from '../../tasks/metrics';
import { AnnotationIndex, KnownAnswer, type SimulatorKnowledge } from './annotations';
import {
  AnswerCandidate,
  Candidate,
  DEFAULT_ERROR_MODEL,
  ErrorModelConfig,
  ErrorModelConfigSchema,
  UtteranceProfile,
  rateAtTemperature,
  sampleCandidate,
  utteranceProfile,
} from './error-model';
import { SeededRandom, sha256Hex } from './random';
import { countTokens, estimateTokens, tokenLogprobs, TokenLogprob } from './tokens';

const MessageSchema = z.looseObject({
  role: z.string(),
  content: z.union([z.string(), z.null(), z.array(z.looseObject({ type: z.string(), text: z.string().optional() }))]).optional(),
  tool_calls: z.array(z.looseObject({ function: z.looseObject({ name: z.string(), arguments: z.string() }) })).optional(),
});

export const ChatRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(MessageSchema).min(1),
  tools: z
    .array(
      z.looseObject({
        type: z.literal('function'),
        function: z.looseObject({ name: z.string().min(1), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() }),
      }),
    )
    .optional(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string() }) })])
    .optional(),
  n: z.number().int().min(1).max(128).optional(),
  temperature: z.number().min(0).max(2).optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stream: z.boolean().nullable().optional(),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export type SimulatorRole = 'route' | 'final' | 'judge' | 'text' | 'unsupported';

/** What one choice of a response was, for stats and tests (the wire response is standard OpenAI). */
export type ChoiceKind = AnswerCandidate['kind'] | 'correct_route' | 'confused_route' | 'malformed_arguments' | 'unknown_function' | 'judge' | 'unsupported';

export interface SimulatedCompletion {
  role: SimulatorRole;
  known: boolean;
  choiceKinds: ChoiceKind[];
  body: Record<string, unknown>;
}

/** sha256 of the canonical JSON of a request body: the simulator's notion of "the same request". */
export function contentHash(body: unknown): string {
  return sha256Hex(canonicalJson(body));
}

function messageText(content: z.infer<typeof MessageSchema>['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? '').join('');
  return '';
}

function lineValue(text: string, label: string): string | undefined {
  const line = text.split('\n').find((l) => l.trimStart().toLowerCase().startsWith(label.toLowerCase()));
  return line === undefined ? undefined : line.trimStart().slice(label.length).trim();
}

type JsonSchema = { properties?: Record<string, JsonSchema>; enum?: unknown[]; type?: unknown; anyOf?: JsonSchema[]; items?: JsonSchema };

function acceptsArray(schema: JsonSchema | undefined): boolean {
  return !!schema && (schema.type === 'array' || (schema.anyOf ?? []).some((s) => s.type === 'array'));
}

/** A value as the property's JSON type: "3" for a number parameter is 3, "true" for a boolean one is true. */
function typedValue(value: unknown, schema: JsonSchema | undefined): unknown {
  if (typeof value !== 'string' || !schema) return value;
  if ((schema.type === 'number' || schema.type === 'integer') && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  if (schema.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

/** Keeps the arguments the offered function declares, collapsing repeats it cannot take as a list, typed as declared. */
function fitToTool(call: Call, parameters: JsonSchema | undefined): Record<string, unknown> {
  const args = callArgumentsObject(call);
  const properties = parameters?.properties;
  if (!properties) return args;
  const fitted: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (!(key in properties)) continue;
    fitted[key] = typedValue(Array.isArray(value) && !acceptsArray(properties[key]) ? value[0] : value, properties[key]);
  }
  return fitted;
}

/** How a malformed arguments string looks: truncated, single-quoted, trailing comma, unquoted keys. */
function corruptJson(json: string, rng: SeededRandom): string {
  switch (rng.int(4)) {
    case 0:
      return json.slice(0, Math.max(1, json.length - 1 - rng.int(Math.min(6, json.length - 1))));
    case 1:
      return json.replace(/"/g, "'");
    case 2:
      return json.length > 2 ? `${json.slice(0, -1)},}` : '{,}';
    default:
      return json.replace(/"([A-Za-z_]+)":/g, '$1:') === json ? `${json}}` : json.replace(/"([A-Za-z_]+)":/g, '$1:');
  }
}

/** A plausible function that does not exist: the name's parts reversed (alarm_set -> set_alarm). */
export function inventedFunctionName(name: string): string {
  const parts = name.split('_');
  return parts.length > 1 ? [...parts].reverse().join('_') : `${name}_v2`;
}

export interface TeacherSimulatorCoreOptions {
  seed: string | number;
  model: string;
  errorModel: ErrorModelConfig;
}

export class TeacherSimulator {
  readonly index: AnnotationIndex;
  readonly errorModel: ErrorModelConfig;
  private readonly profiles = new Map<string, UtteranceProfile>();
  private readonly toolTokenCounts = new Map<string, number>();

  private readonly routeGroups: ReadonlySet<string>;

  constructor(
    readonly knowledge: SimulatorKnowledge,
    readonly options: { seed: string | number; model: string; errorModel?: Partial<ErrorModelConfig> },
  ) {
    this.index = new AnnotationIndex(knowledge);
    this.routeGroups = new Set(Object.keys(knowledge.functionsByGroup).filter((g) => g !== ''));
    this.errorModel = ErrorModelConfigSchema.parse({ ...DEFAULT_ERROR_MODEL, ...options.errorModel });
  }

  /** Token estimate of the tool definitions, memoized: a run offers the same few tool sets again and again. */
  private toolTokens(tools: unknown[]): number {
    const text = JSON.stringify(tools);
    let count = this.toolTokenCounts.get(text);
    if (count === undefined) {
      count = countTokens(text);
      if (this.toolTokenCounts.size > 1000) this.toolTokenCounts.clear();
      this.toolTokenCounts.set(text, count);
    }
    return count;
  }

  profileOf(answer: KnownAnswer): UtteranceProfile {
    let profile = this.profiles.get(answer.utterance);
    if (!profile) {
      profile = utteranceProfile(answer, this.index, this.errorModel, this.options.seed);
      this.profiles.set(answer.utterance, profile);
    }
    return profile;
  }

  /** Answers a validated chat request. Deterministic given (seed, request content, choice index). */
  complete(request: ChatRequest, hash = contentHash(request)): SimulatedCompletion {
    const userMessages = request.messages.filter((m) => m.role === 'user');
    const userText = messageText(userMessages[userMessages.length - 1]?.content ?? '');
    const tools = request.tools ?? [];
    const parametersOf = (name: string) => tools.find((t) => t.function.name === name)?.function.parameters as JsonSchema | undefined;
    const choice = request.tool_choice;
    const forced = typeof choice === 'object' ? choice.function.name : undefined;
    const candidates = choice === 'none' ? [] : forced ? [forced] : tools.map((t) => t.function.name);

    const groups = this.routeGroups;
    const judgeTool = candidates.find((n) => parametersOf(n)?.properties?.verdict);
    const intentTools = candidates.filter((n) => n in this.knowledge.parametersOf);
    const routeTool = candidates
      .filter((name) => !intentTools.includes(name))
      .map((name) => ({ name, param: Object.entries(parametersOf(name)?.properties ?? {}).find(([, p]) => (p.enum ?? []).some((v) => groups.has(String(v)))) }))
      .find((r) => r.param);

    const utterance = lineValue(userText, 'Utterance:') ?? userText;
    const answer = this.index.answerFor(utterance);
    const hasToolResult = request.messages.some((m) => m.role === 'tool');
    const role: SimulatorRole =
      tools.length === 0 || choice === 'none'
        ? 'text'
        : judgeTool
          ? 'judge'
          : intentTools.length > 0 && (!routeTool || hasToolResult || intentTools.includes(answer.gold.name))
            ? 'final'
            : routeTool
              ? 'route'
              : 'unsupported';

    const temperature = request.temperature ?? 1;
    const n = request.n ?? 1;
    const topLogprobs = request.logprobs ? (request.top_logprobs ?? 0) : 0;
    const profile = this.profileOf(answer);
    const choices: Record<string, unknown>[] = [];
    const choiceKinds: ChoiceKind[] = [];
    let completionTokens = 0;

    for (let c = 0; c < n; c++) {
      const rng = new SeededRandom(this.options.seed, hash, c);
      let emitted: { name: string; args: string; kind: ChoiceKind; decision?: Decision } | { content: string; kind: ChoiceKind; decision?: Decision };
      if (role === 'text') {
        const { chosen, probability } = sampleCandidate(profile.answers, temperature, rng);
        emitted = { content: printCall(this.knowledge.canonicalize(chosen.value, answer.utterance)), kind: chosen.kind, decision: decisionAt(0, probability) };
      } else if (role === 'judge') {
        emitted = { name: judgeTool!, args: JSON.stringify(this.judge(userText, parametersOf(judgeTool!), rng)), kind: 'judge' };
      } else if (role === 'route') {
        const { name, param } = routeTool!;
        const allowed = new Set((param![1].enum ?? []).map(String));
        const routes = profile.routes.filter((r) => allowed.has(r.value));
        const pool: Candidate<string>[] = routes.length > 0 ? routes : [{ value: [...allowed][0], mass: 1 }];
        const drawn = sampleCandidate(pool, temperature, rng);
        const render = (scenario: string) => JSON.stringify({ [param![0]]: scenario });
        emitted = {
          name,
          args: render(drawn.chosen.value),
          kind: drawn.chosen.value === answer.group ? 'correct_route' : 'confused_route',
          decision: divergence(render(drawn.chosen.value), pool.map((r, i) => ({ text: render(r.value), probability: drawn.distribution[i] }))),
        };
      } else if (role === 'final') {
        const fitting = profile.answers.filter((a) => intentTools.includes(a.value.name));
        const pool = fitting.length > 0 ? fitting : [this.fallbackAnswer(answer, intentTools, parametersOf)];
        const drawn = sampleCandidate(pool, temperature, rng);
        const render = (call: Call) => JSON.stringify(fitToTool(this.knowledge.canonicalize(call, answer.utterance), parametersOf(call.name)));
        const args = render(drawn.chosen.value);
        emitted = {
          name: drawn.chosen.value.name,
          args,
          kind: drawn.chosen.kind,
          decision: divergence(args, pool.map((a, i) => ({ text: render(a.value), probability: drawn.distribution[i] }))),
        };
      } else {
        emitted = { content: "None of the offered tools is one of the task's functions, a router over its groups or a judge: the teacher simulator cannot answer.", kind: 'unsupported' };
      }

      // Format errors, more frequent at higher temperature.
      if ('name' in emitted && role !== 'judge') {
        const u = rng.next();
        const malformed = rateAtTemperature(this.errorModel.malformedArgumentsRate, temperature);
        if (u < malformed) emitted = { ...emitted, args: corruptJson(emitted.args, rng), kind: 'malformed_arguments' };
        else if (u < malformed + rateAtTemperature(this.errorModel.unknownFunctionRate, temperature) && !forced) {
          emitted = { ...emitted, name: inventedFunctionName(emitted.name), kind: 'unknown_function' };
        }
      }

      choiceKinds.push(emitted.kind);
      const generated = 'name' in emitted ? emitted.args : emitted.content;
      const tokens = 'name' in emitted ? countTokens(emitted.name) + countTokens(emitted.args) + 3 : countTokens(emitted.content);
      completionTokens += tokens;
      const logprobs: { content: TokenLogprob[]; refusal: null } | null = request.logprobs
        ? { content: tokenLogprobs(generated, topLogprobs, rng, emitted.decision ? [emitted.decision] : []), refusal: null }
        : null;
      const message =
        'name' in emitted
          ? {
              role: 'assistant',
              content: null,
              refusal: null,
              tool_calls: [{ id: `call_${sha256Hex(`${hash}:${c}`).slice(0, 24)}`, type: 'function', function: { name: emitted.name, arguments: emitted.args } }],
            }
          : { role: 'assistant', content: emitted.content, refusal: null };
      choices.push({ index: c, message, logprobs, finish_reason: 'name' in emitted ? 'tool_calls' : 'stop' });
    }

    const promptTokens =
      request.messages.reduce(
        (sum, m) => sum + 4 + countTokens(messageText(m.content)) + (m.tool_calls ?? []).reduce((s, t) => s + countTokens(t.function.name + t.function.arguments), 0),
        0,
      ) + (tools.length > 0 ? this.toolTokens(tools) : 0);
    return {
      role,
      known: answer.known,
      choiceKinds,
      body: {
        id: `chatcmpl-sim-${hash.slice(0, 24)}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: request.model,
        system_fingerprint: `teacher-simulator-${String(this.options.seed)}`,
        choices,
        usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
      },
    };
  }

  /** When routing went wrong and none of the model's beliefs is offered: the offered function that fits best. */
  private fallbackAnswer(answer: KnownAnswer, offered: string[], parametersOf: (n: string) => JsonSchema | undefined): AnswerCandidate {
    const types = new Set(answer.gold.args.map((a) => a.key));
    const score = (name: string) => Object.keys(parametersOf(name)?.properties ?? {}).filter((k) => types.has(k)).length;
    const best = Math.max(...offered.map(score));
    const name = new SeededRandom(this.options.seed, 'fallback', answer.utterance, offered.join(',')).pick(offered.filter((o) => score(o) === best));
    return { value: { name, args: answer.gold.args }, mass: 1, kind: 'neighbour_intent' };
  }

  private judge(userText: string, parameters: JsonSchema | undefined, rng: SeededRandom): Record<string, string> {
    const utterance = lineValue(userText, 'Utterance:');
    const proposed = parseCall(lineValue(userText, 'Proposed call:') ?? '');
    let correct = false;
    let reason = 'The proposed call could not be read.';
    if (utterance !== undefined && proposed.ok) {
      const truth = this.index.answerFor(utterance);
      correct = isExactMatch(truth.gold, proposed.call);
      reason = correct ? 'The function and every slot match the request.' : 'The function or a slot does not match the request.';
    }
    const truthful = rng.next() < (correct ? this.errorModel.judgeTruePositiveRate : this.errorModel.judgeTrueNegativeRate);
    const verdict = truthful === correct ? 'correct' : 'incorrect';
    const result: Record<string, string> = { verdict };
    if (parameters?.properties?.reason) result.reason = truthful ? reason : 'Looks plausible.';
    return result;
  }
}

interface Decision {
  offset: number;
  probability: number;
  alternatives: { token: string; probability: number }[];
}

function decisionAt(offset: number, probability: number): Decision {
  return { offset, probability, alternatives: [] };
}

/** Where the chosen text first departs from the alternatives, with their tokens at that point. */
function divergence(chosen: string, options: { text: string; probability: number }[]): Decision | undefined {
  const chosenProbability = options.filter((o) => o.text === chosen).reduce((s, o) => s + o.probability, 0);
  const others = options.filter((o) => o.text !== chosen);
  if (others.length === 0) return undefined;
  const firstDiff = (a: string, b: string) => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
  };
  const offset = Math.min(...others.map((o) => firstDiff(chosen, o.text)));
  const tokenAt = (text: string) => {
    let pos = 0;
    for (const t of estimateTokens(text)) {
      if (offset < pos + t.length) return t;
      pos += t.length;
    }
    return '';
  };
  const alternatives = new Map<string, number>();
  for (const o of others.filter((o) => firstDiff(chosen, o.text) === offset)) alternatives.set(tokenAt(o.text), (alternatives.get(tokenAt(o.text)) ?? 0) + o.probability);
  return { offset, probability: chosenProbability, alternatives: [...alternatives].map(([token, probability]) => ({ token, probability })) };
}

