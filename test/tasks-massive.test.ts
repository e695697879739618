import { parseCall, printCall } from '../tasks/call-format';
import { loadMassiveTask, MassiveTask, massiveGoldCall, parseAnnotation } from '../tasks/massive';

let massive: MassiveTask;
beforeAll(async () => {
  massive = await loadMassiveTask();
});

describe('MASSIVE loader', () => {
  test('reads 16,521 utterances split 11,514 / 2,033 / 2,974 with 18 scenarios, 60 intents and 55 slot types', async () => {
    const { task, schema, examples } = massive;
    expect(examples).toHaveLength(16521);
    expect((await task.dataset.load('train')).length).toBe(11514);
    expect((await task.dataset.load('dev')).length).toBe(2033);
    expect((await task.dataset.load('test')).length).toBe(2974);
    expect(schema.scenarios).toHaveLength(18);
    expect(task.functionNames).toHaveLength(60);
    expect(schema.slotTypes).toHaveLength(55);
  });

  test('an example carries its utterance, labels and slots in order of appearance', () => {
    const first = massive.examples.find((e) => e.id === '0')!;
    expect(first).toEqual({
      id: '0',
      split: 'test',
      utterance: 'wake me up at five am this week',
      scenario: 'alarm',
      intent: 'alarm_set',
      slots: [
        { type: 'time', value: 'five am' },
        { type: 'date', value: 'this week' },
      ],
    });
  });

  test('a malformed annotation is an error that names the problem', () => {
    expect(() => parseAnnotation('wake me [time five am]')).toThrow(/type : value/);
    expect(() => parseAnnotation('wake me [time : five am')).toThrow(/unclosed/);
  });

  test('each intent function takes exactly the slot types seen with it in train', () => {
    const seen = new Set(massive.examples.filter((e) => e.split === 'train' && e.intent === 'alarm_set').flatMap((e) => e.slots.map((s) => s.type)));
    expect(Object.keys(massive.task.functions.alarm_set.parameters.shape).sort()).toEqual([...seen].sort());
  });
});

describe('compact call format', () => {
  test('prints name(key="value", ...) with JSON string values in the given order', () => {
    expect(printCall(massiveGoldCall(massive.examples.find((e) => e.id === '0')!))).toBe('alarm_set(time="five am", date="this week")');
    expect(printCall({ name: 'general_joke', args: [] })).toBe('general_joke()');
    expect(printCall({ name: 'f', args: [{ key: 'k', value: 'say "hi"\\ ünï' }] })).toBe('f(k="say \\"hi\\"\\\\ ünï")');
  });

  test('parse inverts print for every dev gold call and for values with escapes', () => {
    const calls = massive.examples.filter((e) => e.split === 'dev').map(massiveGoldCall);
    calls.push({ name: 'f', args: [{ key: 'a', value: 'quote " backslash \\ tab \t é' }, { key: 'a', value: '' }] });
    for (const call of calls) expect(parseCall(printCall(call))).toEqual({ ok: true, call });
  });

  test('parse tolerates whitespace between tokens', () => {
    expect(parseCall('  alarm_set ( time = "five am" ,date="x" ) ')).toEqual({
      ok: true,
      call: { name: 'alarm_set', args: [{ key: 'time', value: 'five am' }, { key: 'date', value: 'x' }] },
    });
  });

  test.each([
    ['', /empty/],
    ['alarm_set', /expected "\(" after function name "alarm_set"/],
    ['alarm_set(time="five am"', /missing "\)"/],
    ['alarm_set(time="five am)', /unterminated string value for slot "time"/],
    ["alarm_set(time='five am')", /expected a JSON string value for slot "time"/],
    ['alarm_set(time=5)', /expected a JSON string value for slot "time"/],
    ['alarm_set(time "five am")', /expected "=" after slot name "time"/],
    ['alarm_set(time="five am") extra', /unexpected text after "\)"/],
    ['alarm_set(time="bad \\q escape")', /invalid JSON string for slot "time"/],
    ['alarm_set(="x")', /expected a slot name/],
    ['alarm_set(time="a" date="b")', /expected "," or "\)" after the value of slot "time"/],
  ])('parse errors are values naming the problem: %j', (text, message) => {
    const result = parseCall(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });
});

describe('MASSIVE call validation and verification', () => {
  test('every train gold call is schema-valid and passes the verifier', () => {
    for (const ex of massive.examples.filter((e) => e.split === 'train')) {
      const gold = massiveGoldCall(ex);
      expect(massive.task.validateCall(gold)).toEqual({ ok: true });
      expect(massive.task.verify(gold, ex.utterance)).toEqual({ ok: true });
    }
  });

  test('validation reports unknown functions, unknown slots, non-string values and repeats the schema does not allow', () => {
    const { task } = massive;
    expect(task.validateCall({ name: 'alarm_snooze', args: [] })).toEqual({ ok: false, kind: 'unknown_function', errors: ['unknown function "alarm_snooze"'] });
    const unknownSlot = task.validateCall({ name: 'alarm_set', args: [{ key: 'song_name', value: 'x' }] });
    expect(unknownSlot).toMatchObject({ ok: false, kind: 'invalid_arguments', errors: ['unknown slot "song_name" for function "alarm_set"'] });
    const nonString = task.validateCall({ name: 'alarm_set', args: [{ key: 'time', value: 7 as unknown as string }] });
    expect(nonString).toMatchObject({ ok: false, errors: ['slot "time" of function "alarm_set" has a non-string value (number)'] });
    // alarm_query never has two times in one train utterance; qa_currency has two currency names
    const repeated = task.validateCall({ name: 'alarm_query', args: [{ key: 'time', value: 'a' }, { key: 'time', value: 'b' }] });
    expect(repeated).toMatchObject({ ok: false, errors: [expect.stringMatching(/slot "time" is repeated \(2 values\)/)] });
    const currencies = { name: 'qa_currency', args: [{ key: 'currency_name', value: 'dollars' }, { key: 'currency_name', value: 'euros' }] };
    expect(task.validateCall(currencies)).toEqual({ ok: true });
  });

  test('decoding a tool call classifies malformed JSON, unknown or unoffered functions and bad arguments', () => {
    const { task } = massive;
    const offered = ['alarm_set', 'alarm_query', 'alarm_remove'];
    expect(task.decodeToolCall('alarm_set', '{"time": "five am"', offered).kind).toBe('malformed_arguments');
    expect(task.decodeToolCall('alarm_set', '["five am"]', offered).kind).toBe('malformed_arguments');
    expect(task.decodeToolCall('alarm_snooze', '{}', offered)).toMatchObject({ kind: 'unknown_function', error: expect.stringMatching(/does not exist/) });
    expect(task.decodeToolCall('play_music', '{}', offered)).toMatchObject({ kind: 'unknown_function', error: expect.stringMatching(/not offered/) });
    expect(task.decodeToolCall('alarm_set', '{"time": 5}', offered).kind).toBe('invalid_arguments');
    expect(task.decodeToolCall('alarm_set', '{"time": "five am", "date": "friday"}', offered)).toEqual({
      kind: 'call',
      call: { name: 'alarm_set', args: [{ key: 'time', value: 'five am' }, { key: 'date', value: 'friday' }] },
    });
    expect(task.decodeToolCall('route_scenario', '{"scenario": "alarm"}', ['route_scenario'])).toEqual({
      kind: 'tool',
      name: 'route_scenario',
      args: { scenario: 'alarm' },
    });
    expect(task.decodeToolCall('route_scenario', '{"scenario": "spaceflight"}', ['route_scenario']).kind).toBe('invalid_arguments');
  });

  test('the verifier rejects slot values that are not whole-word spans of the utterance', () => {
    const utterance = 'wake me up at five am this week';
    const verify = (value: string) => massive.task.verify({ name: 'alarm_set', args: [{ key: 'time', value }] }, utterance);
    expect(verify('five am').ok).toBe(true);
    expect(verify('5 am')).toMatchObject({ ok: false, reason: expect.stringMatching(/not a span/) });
    expect(verify('ive am').ok).toBe(false);
    expect(verify(' ').ok).toBe(false);
  });

  test('canonical form orders slots by appearance in the utterance, so it matches the gold order', () => {
    const ex = massive.examples.find((e) => e.id === '0')!;
    const shuffled = { name: 'alarm_set', args: [{ key: 'date', value: 'this week' }, { key: 'time', value: 'five am' }] };
    expect(massive.task.canonicalText(shuffled, ex.utterance)).toBe(printCall(massiveGoldCall(ex)));
  });

  test('the routing tool offers exactly the chosen scenario\'s functions', () => {
    const result = massive.task.tools.route_scenario.execute({ scenario: 'alarm' });
    expect(result.next).toEqual(['alarm_query', 'alarm_remove', 'alarm_set']);
    expect(JSON.parse(result.content)).toEqual({ scenario: 'alarm', functions: ['alarm_query', 'alarm_remove', 'alarm_set'] });
  });
});
