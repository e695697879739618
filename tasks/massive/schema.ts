// The MASSIVE function schema, derived from train only: each intent is a function whose parameters are
// the slot types seen with it in train (optional strings; a slot type seen twice in one train utterance
// of that intent may also take a list of strings, so that "dollars to euros" keeps both currency names).
import { z } from 'zod';
import type { MassiveExample } from './data';

export interface MassiveSchema {
  scenarios: string[];
  intentsByScenario: Record<string, string[]>;
  scenarioOfIntent: Record<string, string>;
  /** Slot types per intent, sorted. */
  slotsByIntent: Record<string, string[]>;
  /** Slot types that repeat within one train utterance of the intent. */
  repeatableSlotsByIntent: Record<string, string[]>;
  slotTypes: string[];
}

const sorted = (values: Iterable<string>) => [...new Set(values)].sort();

export function deriveMassiveSchema(train: readonly MassiveExample[]): MassiveSchema {
  if (train.length === 0) throw new Error('cannot derive the MASSIVE schema from an empty train split');
  const intents = new Map<string, { scenario: string; slots: Set<string>; repeatable: Set<string> }>();
  for (const ex of train) {
    let entry = intents.get(ex.intent);
    if (!entry) {
      entry = { scenario: ex.scenario, slots: new Set(), repeatable: new Set() };
      intents.set(ex.intent, entry);
    } else if (entry.scenario !== ex.scenario) {
      throw new Error(`intent ${ex.intent} appears under scenarios ${entry.scenario} and ${ex.scenario}`);
    }
    const seen = new Set<string>();
    for (const slot of ex.slots) {
      entry.slots.add(slot.type);
      if (seen.has(slot.type)) entry.repeatable.add(slot.type);
      seen.add(slot.type);
    }
  }
  const intentNames = sorted(intents.keys());
  const scenarioOfIntent = Object.fromEntries(intentNames.map((i) => [i, intents.get(i)!.scenario]));
  const scenarios = sorted(Object.values(scenarioOfIntent));
  return {
    scenarios,
    intentsByScenario: Object.fromEntries(scenarios.map((s) => [s, intentNames.filter((i) => scenarioOfIntent[i] === s)])),
    scenarioOfIntent,
    slotsByIntent: Object.fromEntries(intentNames.map((i) => [i, sorted(intents.get(i)!.slots)])),
    repeatableSlotsByIntent: Object.fromEntries(intentNames.map((i) => [i, sorted(intents.get(i)!.repeatable)])),
    slotTypes: sorted(train.flatMap((ex) => ex.slots.map((s) => s.type))),
  };
}

/** The zod parameters of one intent function (strict: an unknown slot is an error). */
export function intentParameters(schema: MassiveSchema, intent: string): z.ZodObject {
  const repeatable = new Set(schema.repeatableSlotsByIntent[intent]);
  const shape: Record<string, z.ZodType> = {};
  for (const slot of schema.slotsByIntent[intent]) {
    const description = `The ${slot.replace(/_/g, ' ')} exactly as written in the request`;
    shape[slot] = (repeatable.has(slot) ? z.union([z.string(), z.array(z.string()).min(2)]) : z.string())
      .optional()
      .describe(repeatable.has(slot) ? `${description} (a list when the request names several)` : description);
  }
  return z.strictObject(shape);
}
