// The built-in MASSIVE task as a two-step function-call pipeline: route the utterance to one of the
// scenarios with `route_scenario`, then call one of that scenario's intent functions with its slots.
import { z } from 'zod';
import { readEnv } from '../../config/env';
import { Call, CallArgument, normalizeSlotValue } from '../call-format';
import { compactCallFormat, defineTask, TaskSpec, VerifierResult } from '../define';
import { callMetrics } from '../metrics';
import { spanOffsets } from '../spans';

export { spanOffsets };
import type { TaskDefinition } from '../registry';
import { loadMassiveExamples, MassiveExample } from './data';
import { deriveMassiveSchema, intentParameters, MassiveSchema } from './schema';

export const ROUTE_TOOL = 'route_scenario';

export interface MassiveTask {
  task: TaskSpec<MassiveExample>;
  schema: MassiveSchema;
  /** Every example of the file, all splits, in file order. */
  examples: MassiveExample[];
}

export const MASSIVE_SYSTEM_PROMPT = [
  'You are the language-understanding step of a voice assistant.',
  `First call ${ROUTE_TOOL} with the scenario the user request belongs to.`,
  'Then call exactly one of the functions it offers: the one matching the request, with every slot the request mentions.',
  'Copy each slot value verbatim from the request (same words, same spelling); leave out slots that are not mentioned.',
].join(' ');

/** Slot values are spans of the utterance in MASSIVE: each must occur verbatim, as whole words. */
export function verifyMassiveCall(call: Call, utterance: string): VerifierResult {
  for (const { key, value } of call.args) {
    const v = normalizeSlotValue(value);
    if (v === '') return { ok: false, reason: `slot "${key}" is empty` };
    if (spanOffsets(utterance, v).length === 0) return { ok: false, reason: `slot "${key}" value ${JSON.stringify(v)} is not a span of the utterance` };
  }
  return { ok: true };
}

/** Slots ordered by where their values occur in the utterance (the gold order); unknown spans go last. */
export function canonicalizeMassiveCall(call: Call, utterance: string): Call {
  const used = new Set<number>();
  const placed = call.args.map((arg, index) => {
    const value = normalizeSlotValue(arg.value);
    const at = spanOffsets(utterance, value).find((o) => !used.has(o));
    if (at !== undefined) used.add(at);
    return { arg: { key: arg.key, value }, at: at ?? Number.MAX_SAFE_INTEGER, index };
  });
  placed.sort((a, b) => a.at - b.at || (a.arg.key < b.arg.key ? -1 : a.arg.key > b.arg.key ? 1 : a.index - b.index));
  return { name: call.name, args: placed.map((p) => p.arg) };
}

export function massiveGoldCall(example: Pick<MassiveExample, 'intent' | 'slots'>): Call {
  return { name: example.intent, args: example.slots.map((s): CallArgument => ({ key: s.type, value: s.value })) };
}

function describeIntent(intent: string, scenario: string): string {
  const action = intent.startsWith(`${scenario}_`) ? intent.slice(scenario.length + 1) : intent;
  return `Handles "${action.replace(/_/g, ' ')}" requests of the ${scenario} scenario.`;
}

/** Builds the task from loaded examples (the function schema comes from the train split only). */
export function massiveTaskFromExamples(examples: MassiveExample[]): MassiveTask {
  const schema = deriveMassiveSchema(examples.filter((e) => e.split === 'train'));
  const routeParameters = z.strictObject({
    scenario: z.enum(schema.scenarios as [string, ...string[]]).describe('The scenario of the user request'),
  });
  const task = defineTask<MassiveExample>({
    name: 'massive-en-US',
    displayName: 'MASSIVE en-US',
    systemPrompt: MASSIVE_SYSTEM_PROMPT,
    tools: {
      [ROUTE_TOOL]: {
        description: 'Routes the user request to its scenario; returns the functions available in that scenario.',
        parameters: routeParameters,
        execute: ({ scenario }: z.infer<typeof routeParameters>) => {
          const functions = schema.intentsByScenario[scenario];
          return { content: JSON.stringify({ scenario, functions }), next: functions };
        },
      },
    },
    functions: Object.fromEntries(
      Object.keys(schema.slotsByIntent).map((intent) => [
        intent,
        { description: describeIntent(intent, schema.scenarioOfIntent[intent]), parameters: intentParameters(schema, intent) },
      ]),
    ),
    entryTools: [ROUTE_TOOL],
    maxSteps: 3,
    callFormat: compactCallFormat,
    input: (example) => example.utterance,
    gold: (example) => massiveGoldCall(example),
    verify: verifyMassiveCall,
    canonicalize: canonicalizeMassiveCall,
    functionGroups: schema.intentsByScenario, // route_scenario's choices
    spanArguments: 'all', // every MASSIVE slot is a span of the utterance (verifyMassiveCall)
    metrics: callMetrics,
    dataset: {
      splits: ['train', 'dev', 'test'],
      load: async (split) => examples.filter((e) => e.split === split),
      loadAll: async () => examples,
    },
  });
  return { task, schema, examples };
}

/** MASSIVE as a registered task: `task.name: "massive"`, its data file from task.dataPath or SUPERTINY_MASSIVE_PATH. */
export const massiveTaskDefinition: TaskDefinition = {
  name: 'massive',
  files: { data: 'optional', functions: 'none' },
  defaultDataPath: (env) => env.massivePath,
  load: async ({ data }) => (await loadMassiveTask(data ? { massivePath: data } : {})).task,
};

/** Loads MASSIVE en-US (default path from readEnv().massivePath) and builds the task. */
export async function loadMassiveTask(options: { massivePath?: string } = {}): Promise<MassiveTask> {
  return massiveTaskFromExamples(await loadMassiveExamples(options.massivePath ?? readEnv().massivePath));
}
