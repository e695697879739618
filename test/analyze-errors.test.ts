// The error analysis of a predictions file: how a wrong answer's arguments pair with the gold's.
import { slotErrors } from '../scripts/analyze-errors';

const call = (name: string, args: [string, string][]) => ({ name, args: args.map(([key, value]) => ({ key, value })) });

test('pairs exact arguments first, then a right type with a wrong span, then a right span with a wrong type; the rest are missed or spurious', () => {
  const gold = call('alarm_set', [['time', 'five am'], ['date', 'tomorrow'], ['place_name', 'berlin'], ['person', 'mum']]);
  const predicted = call('alarm_set', [['time', 'five'], ['date', 'tomorrow'], ['city', 'berlin'], ['event_name', 'call']]);
  expect(slotErrors(gold, predicted)).toEqual({
    missed: [{ key: 'person', value: 'mum' }],
    spurious: [{ key: 'event_name', value: 'call' }],
    wrongSpan: [{ key: 'time', gold: 'five am', predicted: 'five' }],
    wrongType: [{ value: 'berlin', gold: 'place_name', predicted: 'city' }],
  });
});

test('an exact answer has no slot errors, and no call misses every gold slot', () => {
  const gold = call('play_music', [['artist_name', 'queen']]);
  expect(slotErrors(gold, call('play_music', [['artist_name', 'queen']]))).toEqual({ missed: [], spurious: [], wrongSpan: [], wrongType: [] });
  expect(slotErrors(gold, undefined).missed).toEqual([{ key: 'artist_name', value: 'queen' }]);
});
