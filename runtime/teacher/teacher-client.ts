// Why runtime/teacher/: the live server's cascade (runtime/serve/cascade.ts) and `supertiny serve` ask the teacher
// as the prototype and evaluate activities do, and runtime must not import activities. The client (with the chat
// client and request cache) needs only config/, tasks/ and artifacts/ and no Temporal activity API, so it sits in
// the runtime layer beside the ONNX student; what needs the activity context (the spend ledger, the outage
// failure) is in activities/teacher/.
// The teacher client: runs a task's function-call pipeline against any OpenAI-compatible endpoint.
// Per input it draws n samples: the first step asks for all of them at once (`n`), then each sample
// continues on its own through the tool loop (route -> run the routing tool's code -> final call), with
// `seed` = base seed + sample index. Every model output is classified; nothing here throws for a bad
// answer, an HTTP error or a timeout.
import type {
  ChatCompletion,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import { z } from 'zod';
import { Call, callArgumentsObject } from '../../tasks/call-format';
import type { TaskExample, TaskSpec } from '../../tasks/define';
import { ChatClient, ChatClientConfigSchema, ChatClientDeps, ChatClientStats, ChatOutcome, ChatRequest } from './chat-client';

export { ChatClient, ChatClientConfigSchema, ConcurrencyLimit, retryAfterMs } from './chat-client';
export type { ChatClientConfig, ChatClientStats, ChatOutcome, ChatRequest } from './chat-client';

export const TeacherClientConfigSchema = ChatClientConfigSchema.extend({
  temperature: z.number().min(0).max(2).default(0.7),
  /** Base seed; sample i continues with seed + i. */
  seed: z.number().int().default(0),
  /**
   * Ask for the first step's samples with one `n` request (prompt paid once). false sends one request per
   * sample, so sample i's requests do not depend on the sample count: raising it later pays only for the
   * new samples (with `n`, a different count is a different first request).
   */
  useN: z.boolean().default(true),
  /** "required" forces a tool call; "auto" for endpoints that lack it. */
  toolChoice: z.enum(['required', 'auto']).default('required'),
  /** Report each input's request latency (TeacherResult.latencyMs); off for labelling, whose artifacts must not vary. */
  recordLatency: z.boolean().default(false),
  /** Ask for token logprobs (with this many alternatives per token; 0 = logprobs without alternatives). */
  topLogprobs: z.number().int().min(0).max(20).optional(),
});
export type TeacherClientConfig = z.input<typeof TeacherClientConfigSchema>;

/** One input to label: just the text (train traffic is unlabelled). */
export interface TeacherInput {
  id: string;
  text: string;
}

export const SAMPLE_OUTCOMES = [
  'ok',
  'malformed_arguments',
  'unknown_function',
  'invalid_arguments',
  'no_tool_call',
  'tool_error',
  'step_limit',
  'empty_choices',
  'http_error',
  'timeout',
  'connection_error',
] as const;
export type SampleOutcome = (typeof SAMPLE_OUTCOMES)[number];

/** A tool call as the model emitted it. */
export interface RawToolCall {
  name: string;
  arguments: string;
}

export interface TeacherSample {
  index: number;
  outcome: SampleOutcome;
  /** The validated final call (outcome "ok"), slots in the order the model gave them. */
  call?: Call;
  /** What went wrong, when outcome is not "ok". */
  error?: string;
  /** The last tool call the model made (also when it was malformed or unknown). */
  lastToolCall?: RawToolCall;
  /** Tool calls made before the final one, with their results. */
  toolSteps: { call: RawToolCall; result: string }[];
  /** Tools and functions offered at the sample's last step. */
  offered: string[];
  /** Model turns used. */
  steps: number;
  /** Logprob sum of the last turn's tokens, when logprobs were requested. */
  logprob?: number;
}

/**
 * What obtaining these labels cost, whether the answers came over HTTP now or from the request cache
 * (they were paid once, when first asked). Keeping cache provenance out of the result keeps the stage's
 * artifacts byte-identical however often it is retried or re-run; the client's stats() show cache hits.
 */
export interface TeacherUsage {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

/** Everything the teacher said about one input: plain JSON, safe to store as an artifact line. */
export interface TeacherResult {
  id: string;
  text: string;
  samples: TeacherSample[];
  usage: TeacherUsage;
  /**
   * With `recordLatency`: the summed wall time of this input's paid requests (for one sample: its routing and
   * final call, end to end), read back from the cache on a re-run; undefined when an answer lacks it.
   */
  latencyMs?: number;
}

export interface TeacherClientStats extends ChatClientStats {
  inputs: number;
  samples: number;
  outcomes: Record<SampleOutcome, number>;
}

type Conversation = ChatCompletionMessageParam[];

function lastTurnLogprob(choice: ChatCompletion.Choice | undefined): number | undefined {
  const tokens = choice?.logprobs?.content;
  return tokens ? tokens.reduce((sum, t) => sum + t.logprob, 0) : undefined;
}

export class TeacherClient<E extends TaskExample = TaskExample> {
  readonly config: z.output<typeof TeacherClientConfigSchema>;
  readonly chat: ChatClient;
  private outcomes = Object.fromEntries(SAMPLE_OUTCOMES.map((o) => [o, 0])) as Record<SampleOutcome, number>;
  private inputs = 0;

  constructor(
    readonly task: TaskSpec<E>,
    config: TeacherClientConfig,
    deps: ChatClientDeps = {},
  ) {
    this.config = TeacherClientConfigSchema.parse(config);
    this.chat = new ChatClient(config, deps);
  }

  stats(): TeacherClientStats {
    const samples = Object.values(this.outcomes).reduce((a, b) => a + b, 0);
    return { ...this.chat.stats(), inputs: this.inputs, samples, outcomes: { ...this.outcomes } };
  }

  private request(messages: Conversation, offered: readonly string[], n: number, seed: number): ChatRequest {
    const request: ChatRequest = {
      messages,
      tools: this.task.toolDefinitions(offered) as ChatCompletionTool[],
      tool_choice: this.config.toolChoice,
      temperature: this.config.temperature,
      n,
      seed,
    };
    if (this.config.topLogprobs !== undefined) {
      request.logprobs = true;
      request.top_logprobs = this.config.topLogprobs;
    }
    return request;
  }

  /** Labels one input with `samples` samples (default 1). */
  async label(input: TeacherInput, samples = 1): Promise<TeacherResult> {
    const usage: TeacherUsage = { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 };
    let latencyMs: number | undefined = 0;
    const send = async (request: ChatRequest, sampleIndex: number): Promise<ChatOutcome> => {
      const outcome = await this.chat.complete(request, sampleIndex);
      usage.requests++;
      latencyMs = outcome.ok && outcome.latencyMs !== undefined && latencyMs !== undefined ? latencyMs + outcome.latencyMs : undefined;
      if (outcome.ok) {
        usage.promptTokens += outcome.completion.usage?.prompt_tokens ?? 0;
        usage.completionTokens += outcome.completion.usage?.completion_tokens ?? 0;
      }
      return outcome;
    };

    const start: Conversation = [
      { role: 'system', content: this.task.systemPrompt },
      { role: 'user', content: input.text },
    ];
    const entry = [...this.task.entryTools];
    let firstChoices: (ChatOutcome | { ok: true; choice: ChatCompletion.Choice | undefined })[];
    if (this.config.useN && samples > 1) {
      const batch = await send(this.request(start, entry, samples, this.config.seed), 0);
      firstChoices = Array.from({ length: samples }, (_, i) => (batch.ok ? { ok: true as const, choice: batch.completion.choices?.[i] } : batch));
    } else {
      firstChoices = await Promise.all(
        Array.from({ length: samples }, async (_, i) => {
          const outcome = await send(this.request(start, entry, 1, this.config.seed + i), i);
          return outcome.ok ? { ok: true as const, choice: outcome.completion.choices?.[0] } : outcome;
        }),
      );
    }

    const results = await Promise.all(
      firstChoices.map((first, index) => this.continueSample(index, start, entry, first, (request) => send(request, index))),
    );
    this.inputs++;
    for (const s of results) this.outcomes[s.outcome]++;
    // From the token totals, not summed per request: the samples' requests finish in any order, and a
    // floating-point sum in arrival order made the same labels cost 0.0124675 or 0.012467500000000001.
    usage.costUsd = this.chat.costOf({ prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens });
    return { id: input.id, text: input.text, samples: results, usage, ...(this.config.recordLatency ? { latencyMs } : {}) };
  }

  /** Runs one sample's tool loop from its first answer to a final call or a classified failure. */
  private async continueSample(
    index: number,
    start: Conversation,
    entry: string[],
    first: ChatOutcome | { ok: true; choice: ChatCompletion.Choice | undefined },
    send: (request: ChatRequest) => Promise<ChatOutcome>,
  ): Promise<TeacherSample> {
    const sample: TeacherSample = { index, outcome: 'ok', toolSteps: [], offered: entry, steps: 0 };
    const fail = (outcome: SampleOutcome, error: string): TeacherSample => Object.assign(sample, { outcome, error });
    let messages = start;
    let answer = first;
    for (;;) {
      sample.steps++;
      if (!answer.ok) return fail(answer.kind, answer.status ? `HTTP ${answer.status}: ${answer.message}` : answer.message);
      const choice = 'choice' in answer ? answer.choice : answer.completion.choices?.[0];
      if (!choice) return fail('empty_choices', 'the response has no choice for this sample');
      sample.logprob = lastTurnLogprob(choice);
      const toolCall = choice.message?.tool_calls?.find((t): t is ChatCompletionMessageFunctionToolCall => t.type === 'function');
      if (!toolCall) {
        const text = choice.message?.content ?? '';
        return fail('no_tool_call', `the model answered without a tool call${text ? `: ${JSON.stringify(text.slice(0, 200))}` : ''}`);
      }
      const raw: RawToolCall = { name: toolCall.function.name, arguments: toolCall.function.arguments };
      sample.lastToolCall = raw;
      const decoded = this.task.decodeToolCall(raw.name, raw.arguments, sample.offered);
      if (decoded.kind === 'call') {
        sample.call = decoded.call;
        return sample;
      }
      if (decoded.kind !== 'tool') return fail(decoded.kind, decoded.error);

      let result: { content: string; next: string[] };
      try {
        result = this.task.tools[decoded.name].execute(decoded.args as never);
      } catch (err) {
        return fail('tool_error', `tool "${decoded.name}" failed: ${(err as Error).message}`);
      }
      sample.toolSteps.push({ call: raw, result: result.content });
      if (sample.steps >= this.task.maxSteps) return fail('step_limit', `no final call within ${this.task.maxSteps} steps`);
      messages = [
        ...messages,
        { role: 'assistant', content: choice.message.content ?? null, tool_calls: [{ id: toolCall.id, type: 'function', function: raw }] },
        { role: 'tool', tool_call_id: toolCall.id, content: result.content },
      ];
      sample.offered = result.next;
      answer = await send(this.request(messages, sample.offered, 1, this.config.seed + index));
    }
  }

  /** Labels many inputs, keeping about `concurrency` inputs in flight; results come back in input order. */
  async labelAll(
    inputs: readonly TeacherInput[],
    samples = 1,
    onResult?: (result: TeacherResult, position: number) => void | Promise<void>,
  ): Promise<TeacherResult[]> {
    const results: TeacherResult[] = new Array(inputs.length);
    let next = 0;
    const worker = async () => {
      while (next < inputs.length) {
        const position = next++;
        results[position] = await this.label(inputs[position], samples);
        await onResult?.(results[position], position);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.concurrency, inputs.length) }, worker));
    return results;
  }
}

export function createTeacherClient<E extends TaskExample>(task: TaskSpec<E>, config: TeacherClientConfig, deps: ChatClientDeps = {}): TeacherClient<E> {
  return new TeacherClient(task, config, deps);
}

/** The assistant message that makes `call` (for training rows): one function tool call. */
export function assistantToolCallMessage(call: Call | RawToolCall, id = 'call_0') {
  const fn = 'args' in call ? { name: call.name, arguments: JSON.stringify(callArgumentsObject(call)) } : { name: call.name, arguments: call.arguments };
  return { role: 'assistant' as const, content: null, tool_calls: [{ id, type: 'function' as const, function: fn }] };
}
