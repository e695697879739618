import { Call } from '../tasks/call-format';
import { callMetrics, isExactMatch, slotCounts } from '../tasks/metrics';

const call = (name: string, ...pairs: [string, string][]): Call => ({ name, args: pairs.map(([key, value]) => ({ key, value })) });

describe('call metrics (MASSIVE/SLURP style)', () => {
  test('a perfect prediction scores 1 on every metric', () => {
    const gold = call('alarm_set', ['time', 'five am'], ['date', 'this week']);
    const m = callMetrics([{ gold, prediction: gold, schemaValid: true }]);
    expect(m).toMatchObject({ count: 1, intentAccuracy: 1, slotPrecision: 1, slotRecall: 1, slotF1: 1, exactMatch: 1, schemaValidRate: 1 });
  });

  test('hand-worked set: micro slot F1 over (type, value) multisets, intent accuracy, exact match, schema-valid rate', () => {
    const m = callMetrics([
      // dropped slot: tp 1, fn 1
      { gold: call('alarm_set', ['time', 'five am'], ['date', 'this week']), prediction: call('alarm_set', ['time', 'five am']), schemaValid: true },
      // repeated slot type, one value duplicated: multiset intersection gives tp 1, fp 1, fn 1
      {
        gold: call('qa_currency', ['currency_name', 'dollars'], ['currency_name', 'euros']),
        prediction: call('qa_currency', ['currency_name', 'dollars'], ['currency_name', 'dollars']),
        schemaValid: true,
      },
      // unparseable output: intent wrong, nothing predicted, gold has no slots
      { gold: call('weather_query'), prediction: undefined, schemaValid: false },
      // neighbouring intent with the right slot: intent wrong, tp 1
      { gold: call('play_music', ['artist_name', 'adele']), prediction: call('music_query', ['artist_name', 'adele']), schemaValid: true },
    ]);
    expect(m.slots).toEqual({ truePositives: 3, falsePositives: 1, falseNegatives: 2 });
    expect(m.slotPrecision).toBeCloseTo(3 / 4, 10);
    expect(m.slotRecall).toBeCloseTo(3 / 5, 10);
    expect(m.slotF1).toBeCloseTo(6 / 9, 10);
    expect(m.intentAccuracy).toBe(0.5);
    expect(m.exactMatch).toBe(0);
    expect(m.schemaValidRate).toBe(0.75);
  });

  test('a slot with the right value under the wrong type counts as one false positive and one false negative', () => {
    expect(slotCounts(call('alarm_set', ['time', 'friday']), call('alarm_set', ['date', 'friday']))).toEqual({
      truePositives: 0,
      falsePositives: 1,
      falseNegatives: 1,
    });
  });

  test('exact match ignores slot order and surrounding whitespace but not case or extra slots', () => {
    const gold = call('a', ['x', 'b c'], ['y', 'd']);
    expect(isExactMatch(gold, call('a', ['y', 'd'], ['x', ' b  c']))).toBe(true);
    expect(isExactMatch(gold, call('a', ['x', 'B c'], ['y', 'd']))).toBe(false);
    expect(isExactMatch(gold, call('a', ['x', 'b c'], ['y', 'd'], ['z', 'e']))).toBe(false);
    expect(isExactMatch(gold, call('b', ['x', 'b c'], ['y', 'd']))).toBe(false);
    expect(isExactMatch(gold, undefined)).toBe(false);
  });

  test('with no slots in gold or predictions slot F1 is 1; with no predictions every rate is NaN', () => {
    expect(callMetrics([{ gold: call('general_joke'), prediction: call('general_joke'), schemaValid: true }]).slotF1).toBe(1);
    const empty = callMetrics([]);
    expect(empty.count).toBe(0);
    expect(empty.exactMatch).toBeNaN();
    expect(empty.slotF1).toBeNaN();
  });
});
