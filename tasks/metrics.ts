// Call metrics as in the MASSIVE/SLURP evaluations, implemented once for every scorer (teacher, student, ONNX):
// intent accuracy, slot F1 over (type, value) multisets (micro-averaged), exact match, schema-valid rate.
import { Call, normalizeSlotValue } from './call-format';

/** One scored prediction. `prediction` is undefined when the output did not parse into a call at all. */
export interface CallPrediction {
  gold: Call;
  prediction: Call | undefined;
  /** The prediction parsed and validated against the task's schema. */
  schemaValid: boolean;
}

export interface SlotCounts {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
}

/** Rates are fractions in [0, 1]; NaN when `count` is 0. */
export interface CallMetrics {
  count: number;
  intentAccuracy: number;
  slotPrecision: number;
  slotRecall: number;
  slotF1: number;
  exactMatch: number;
  schemaValidRate: number;
  slots: SlotCounts;
}

function slotMultiset(call: Call | undefined): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { key, value } of call?.args ?? []) {
    const id = JSON.stringify([key, normalizeSlotValue(value)]);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Slot matches of one prediction: multiset intersection of (type, normalized value) pairs. */
export function slotCounts(gold: Call, prediction: Call | undefined): SlotCounts {
  const g = slotMultiset(gold);
  const p = slotMultiset(prediction);
  let truePositives = 0;
  for (const [id, n] of p) truePositives += Math.min(n, g.get(id) ?? 0);
  const predicted = prediction?.args.length ?? 0;
  return { truePositives, falsePositives: predicted - truePositives, falseNegatives: gold.args.length - truePositives };
}

/** Same function and the same slot multiset (order does not matter). */
export function isExactMatch(gold: Call, prediction: Call | undefined): boolean {
  if (!prediction || prediction.name !== gold.name || prediction.args.length !== gold.args.length) return false;
  const c = slotCounts(gold, prediction);
  return c.falsePositives === 0 && c.falseNegatives === 0;
}

/**
 * Micro-averaged over all slots of all predictions. When neither gold nor predictions hold any slot,
 * precision, recall and F1 are 1 (nothing to find and nothing wrongly found).
 */
export function callMetrics(predictions: readonly CallPrediction[]): CallMetrics {
  const count = predictions.length;
  const slots: SlotCounts = { truePositives: 0, falsePositives: 0, falseNegatives: 0 };
  let intents = 0;
  let exact = 0;
  let valid = 0;
  for (const { gold, prediction, schemaValid } of predictions) {
    const c = slotCounts(gold, prediction);
    slots.truePositives += c.truePositives;
    slots.falsePositives += c.falsePositives;
    slots.falseNegatives += c.falseNegatives;
    if (prediction?.name === gold.name) intents++;
    if (isExactMatch(gold, prediction)) exact++;
    if (schemaValid) valid++;
  }
  const { truePositives: tp, falsePositives: fp, falseNegatives: fn } = slots;
  const rate = (n: number) => (count === 0 ? NaN : n / count);
  const ratio = (num: number, den: number) => (count === 0 ? NaN : den === 0 ? 1 : num / den);
  return {
    count,
    intentAccuracy: rate(intents),
    slotPrecision: ratio(tp, tp + fp),
    slotRecall: ratio(tp, tp + fn),
    slotF1: ratio(2 * tp, 2 * tp + fp + fn),
    exactMatch: rate(exact),
    schemaValidRate: rate(valid),
    slots,
  };
}
