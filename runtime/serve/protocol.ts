// The slice of the OpenAI chat-completions protocol the student server speaks: the request it accepts
// (tool calls only), its answer as a `tool_calls` assistant message, and OpenAI-style error bodies.
import { randomUUID } from 'node:crypto';
import type { ChatCompletion } from 'openai/resources/chat/completions';
import { z } from 'zod';
import { type Call, callArgumentsObject } from '../../tasks/call-format';
import { parseJsonBody } from '../http';
import type { StudentFamily } from '../student';

/** An error answered as `{error: {message, type, param, code}}` with an HTTP status, as OpenAI's API does. */
export class ServeError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (e.g. www-authenticate). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ServeError';
  }

  body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ServeError(400, 'invalid_request_error', message, param, code);

const TextPartSchema = z.looseObject({ type: z.string(), text: z.string().optional() });

const MessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(TextPartSchema), z.null()]).optional(),
});

const FunctionToolSchema = z.looseObject({
  type: z.literal('function'),
  function: z.looseObject({ name: z.string().min(1), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() }),
});

const NamedToolChoiceSchema = z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string().min(1) }) });

/** What the server reads of a request; other fields (temperature, seed, ...) are accepted and ignored. */
export const ChatCompletionRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(MessageSchema).min(1),
  tools: z.array(FunctionToolSchema).optional(),
  tool_choice: z.union([z.enum(['none', 'auto', 'required']), NamedToolChoiceSchema]).optional(),
  n: z.number().int().min(1).optional(),
  stream: z.boolean().nullish(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

/** Parses a request body; every problem is a 400 naming the field, as OpenAI's `param`. */
export function parseChatRequest(body: string): ChatCompletionRequest {
  let raw: unknown;
  try {
    raw = parseJsonBody(body);
  } catch (err) {
    throw invalidRequest(`We could not parse the JSON body of your request: ${(err as Error).message}`, null, 'invalid_json');
  }
  const parsed = ChatCompletionRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[') || null;
    throw invalidRequest(`${param ?? 'body'}: ${issue.message}`, param, issue.code === 'invalid_value' ? 'invalid_value' : 'invalid_type');
  }
  const request = parsed.data;
  if (request.stream) throw invalidRequest('stream=true is not supported: the student answers in one piece', 'stream', 'unsupported_parameter');
  if (request.n !== undefined && request.n > 1) throw invalidRequest('n > 1 is not supported: the student gives one answer', 'n', 'unsupported_parameter');
  if (request.tool_choice === 'none') {
    throw invalidRequest('tool_choice "none" is not supported: the student only answers with a tool call', 'tool_choice', 'unsupported_value');
  }
  return request;
}

/** `text` with each lone UTF-16 surrogate (valid in JSON, invalid in UTF-8) replaced by U+FFFD, as a tokenizer expects. */
export function wellFormed(text: string): string {
  return new TextDecoder().decode(new TextEncoder().encode(text));
}

/** The student's input: the text of the last user message, made well-formed. */
export function userInput(request: ChatCompletionRequest): string {
  return wellFormed(lastUserText(request));
}

function lastUserText(request: ChatCompletionRequest): string {
  let index = request.messages.length - 1;
  while (index >= 0 && request.messages[index].role !== 'user') index--;
  if (index < 0) throw invalidRequest('messages must contain a user message: its text is what the student answers', 'messages', 'missing_user_message');
  const { content } = request.messages[index];
  const param = `messages[${index}].content`;
  if (content === null || content === undefined) throw invalidRequest(`${param} is missing`, param);
  if (typeof content === 'string') return content;
  const other = content.find((part) => part.type !== 'text' || part.text === undefined);
  if (other) throw invalidRequest(`${param}: the student reads text only, not "${other.type}" parts`, param, 'unsupported_content');
  return content.map((part) => part.text).join('\n');
}

/**
 * The functions a request lets the student call: `tools` (all of the task's when absent) narrowed to the
 * function `tool_choice` forces. Tools the task does not have (e.g. the teacher pipeline's routing tool) are
 * ignored: the student answers with the final call directly.
 */
export function offeredFunctions(request: ChatCompletionRequest, taskFunctions: readonly string[]): Set<string> {
  const known = new Set(taskFunctions);
  let offered = request.tools ? request.tools.map((t) => t.function.name).filter((name) => known.has(name)) : [...taskFunctions];
  if (request.tools && offered.length === 0) {
    throw invalidRequest('tools offers no function this student can call (it calls the functions of its task only)', 'tools', 'no_known_function');
  }
  const choice = request.tool_choice;
  if (choice && typeof choice === 'object') {
    const name = choice.function.name;
    if (request.tools && !request.tools.some((t) => t.function.name === name)) {
      throw invalidRequest(`tool_choice names "${name}", which is not in tools`, 'tool_choice', 'invalid_value');
    }
    if (!known.has(name)) throw invalidRequest(`tool_choice names "${name}", which is not a function of the student's task`, 'tool_choice', 'invalid_value');
    offered = [name];
  }
  return new Set(offered);
}

export type AnsweredBy = 'student' | 'teacher';

/** The `supertiny` extension object of every answer. */
export interface SupertinyAnswerInfo {
  /** The student's confidence in its own call, in [0, 1] (also when the teacher answered). */
  confidence: number;
  answered_by: AnsweredBy;
  family: StudentFamily;
  /** With a cascade: the threshold below which the teacher is asked. */
  cascade_threshold?: number;
  /** With a cascade, when the teacher was asked but failed and the student's call is the answer. */
  teacher_error?: string;
  /** With `serve --deployment`: the deployment version of the student that answered (also the x-supertiny-model-version header). */
  model_version?: string;
}

export type StudentChatCompletion = ChatCompletion & { supertiny: SupertinyAnswerInfo };

export interface CompletionUsage {
  promptTokens: number;
  completionTokens: number;
}

/** The answer: one assistant message with one function tool call, finish_reason "tool_calls". */
export function toolCallCompletion(call: Call, model: string, usage: CompletionUsage, info: SupertinyAnswerInfo): StudentChatCompletion {
  return {
    id: `chatcmpl-${randomUUID()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: null,
          refusal: null,
          tool_calls: [{ id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`, type: 'function', function: { name: call.name, arguments: JSON.stringify(callArgumentsObject(call)) } }],
        },
        finish_reason: 'tool_calls',
        logprobs: null,
      },
    ],
    usage: { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens },
    supertiny: info,
  };
}
