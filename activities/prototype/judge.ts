// LLM-as-judge: a second model reads the utterance and a proposed call and says whether it is right.
// It has its own client (cache, retries, cost). Its agreement with gold labels is measured on a small
// labelled dev sample (calibrateJudge) before any of its verdicts is used (see applyJudge).
import type { ChatCompletionMessageFunctionToolCall, ChatCompletionTool } from 'openai/resources/chat/completions';
import { z } from 'zod';
import { Call } from '../../tasks/call-format';
import type { TaskExample, TaskSpec } from '../../tasks/define';
import { isExactMatch } from '../../tasks/metrics';
import { ChatClient, ChatClientConfigSchema, ChatClientDeps, ChatClientStats } from '../../runtime/teacher/chat-client';
import type { TeacherResult } from '../../runtime/teacher/teacher-client';

export const JUDGE_TOOL = 'submit_verdict';

export const JudgeConfigSchema = ChatClientConfigSchema.extend({
  temperature: z.number().min(0).max(2).default(0),
  seed: z.number().int().default(0),
});
export type JudgeConfig = z.input<typeof JudgeConfigSchema>;

export const JUDGE_SYSTEM_PROMPT = [
  'You review the output of a language-understanding step of a voice assistant.',
  'Given the user utterance and the proposed function call, decide whether the function is the right one and',
  'every slot is right: present when the utterance mentions it, absent otherwise, with the value copied verbatim.',
  `Answer by calling ${JUDGE_TOOL}.`,
].join(' ');

const VerdictArgumentsSchema = z.object({ verdict: z.enum(['correct', 'incorrect']), reason: z.string().optional() });

const judgeTool: ChatCompletionTool = {
  type: 'function',
  function: {
    name: JUDGE_TOOL,
    description: 'Records whether the proposed call is correct for the utterance.',
    parameters: z.toJSONSchema(VerdictArgumentsSchema) as Record<string, unknown>,
  },
};

export interface JudgeVerdict {
  verdict: 'correct' | 'incorrect' | 'error';
  reason?: string;
}

export interface JudgeStats extends ChatClientStats {
  verdicts: Record<JudgeVerdict['verdict'], number>;
}

export class Judge<E extends TaskExample = TaskExample> {
  readonly config: z.output<typeof JudgeConfigSchema>;
  readonly chat: ChatClient;
  private verdicts: Record<JudgeVerdict['verdict'], number> = { correct: 0, incorrect: 0, error: 0 };

  constructor(
    readonly task: TaskSpec<E>,
    config: JudgeConfig,
    deps: ChatClientDeps = {},
  ) {
    this.config = JudgeConfigSchema.parse(config);
    this.chat = new ChatClient(config, deps);
  }

  stats(): JudgeStats {
    return { ...this.chat.stats(), verdicts: { ...this.verdicts } };
  }

  /** The user message: the lines "Utterance:" and "Proposed call:" come first, one each. */
  judgePrompt(text: string, call: Call): string {
    const fn = this.task.functions[call.name];
    return [
      `Utterance: ${text}`,
      `Proposed call: ${this.task.canonicalText(call, text)}`,
      fn ? `About ${call.name}: ${fn.description} Slots it takes: ${Object.keys(fn.parameters.shape).join(', ') || '(none)'}.` : '',
    ]
      .filter(Boolean)
      .join('\n');
  }

  async judge(text: string, call: Call): Promise<JudgeVerdict> {
    const outcome = await this.chat.complete(
      {
        messages: [
          { role: 'system', content: JUDGE_SYSTEM_PROMPT },
          { role: 'user', content: this.judgePrompt(text, call) },
        ],
        tools: [judgeTool],
        tool_choice: { type: 'function', function: { name: JUDGE_TOOL } },
        temperature: this.config.temperature,
        seed: this.config.seed,
        n: 1,
      },
      0,
    );
    const verdict = ((): JudgeVerdict => {
      if (!outcome.ok) return { verdict: 'error', reason: `${outcome.kind}: ${outcome.message}` };
      const toolCall = outcome.completion.choices?.[0]?.message?.tool_calls?.find(
        (t): t is ChatCompletionMessageFunctionToolCall => t.type === 'function' && t.function.name === JUDGE_TOOL,
      );
      if (!toolCall) return { verdict: 'error', reason: 'the judge answered without a verdict' };
      try {
        const args = VerdictArgumentsSchema.safeParse(JSON.parse(toolCall.function.arguments));
        return args.success ? args.data : { verdict: 'error', reason: `unreadable verdict: ${args.error.issues[0].message}` };
      } catch (err) {
        return { verdict: 'error', reason: `verdict arguments are not JSON: ${(err as Error).message}` };
      }
    })();
    this.verdicts[verdict.verdict]++;
    return verdict;
  }
}

export function createJudge<E extends TaskExample>(task: TaskSpec<E>, config: JudgeConfig, deps: ChatClientDeps = {}): Judge<E> {
  return new Judge(task, config, deps);
}

export interface JudgeCalibrationItem {
  text: string;
  call: Call;
  gold: Call;
}

/** How well the judge's verdicts agree with gold exact match, on labelled items. */
export interface JudgeCalibration {
  count: number;
  /** Share of items whose verdict equals "the call exact-matches gold" (errors count as disagreement). */
  agreement: number;
  /** P(says correct | correct), P(says incorrect | incorrect). NaN without such items. */
  truePositiveRate: number;
  trueNegativeRate: number;
  positives: number;
  negatives: number;
  errors: number;
}

/**
 * Calibration items from teacher samples on labelled inputs: each distinct valid call of an input, so that
 * right and wrong proposals are both represented as the teacher actually produces them.
 */
export function judgeCalibrationItems<E extends TaskExample>(
  task: TaskSpec<E>,
  results: readonly TeacherResult[],
  goldById: ReadonlyMap<string, Call>,
): JudgeCalibrationItem[] {
  const items: JudgeCalibrationItem[] = [];
  for (const result of results) {
    const gold = goldById.get(result.id);
    if (!gold) continue;
    const seen = new Set<string>();
    for (const sample of result.samples) {
      if (sample.outcome !== 'ok' || !sample.call) continue;
      const key = task.canonicalText(sample.call, result.text);
      if (seen.has(key)) continue;
      seen.add(key);
      items.push({ text: result.text, call: sample.call, gold });
    }
  }
  return items;
}

export async function calibrateJudge(judge: Judge<any>, items: readonly JudgeCalibrationItem[]): Promise<JudgeCalibration> {
  const verdicts = await Promise.all(items.map((item) => judge.judge(item.text, item.call)));
  let agree = 0;
  let tp = 0;
  let tn = 0;
  let positives = 0;
  let errors = 0;
  items.forEach((item, i) => {
    const correct = isExactMatch(item.gold, item.call);
    const verdict = verdicts[i].verdict;
    if (verdict === 'error') errors++;
    if (correct) positives++;
    if (correct && verdict === 'correct') tp++;
    if (!correct && verdict === 'incorrect') tn++;
  });
  agree = tp + tn;
  const negatives = items.length - positives;
  return {
    count: items.length,
    agreement: items.length === 0 ? NaN : agree / items.length,
    truePositiveRate: positives === 0 ? NaN : tp / positives,
    trueNegativeRate: negatives === 0 ? NaN : tn / negatives,
    positives,
    negatives,
    errors,
  };
}
