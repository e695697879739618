import { z } from 'zod';
import { printCall } from '../tasks/call-format';
import { compactCallFormat, defineTask, type OutputFunction } from '../tasks/define';
import { callMetrics } from '../tasks/metrics';
import { CallGrammar, CallPrefix, MAX_KEY_REPEATS, ValueMemory } from '../runtime/student/call-grammar';

const bytes = (text: string) => new TextEncoder().encode(text);

const task = defineTask({
  name: 'grammar-fixture',
  systemPrompt: 'Answer with one call.',
  tools: {},
  functions: {
    alarm_set: { description: 'set an alarm', parameters: z.strictObject({ time: z.string().optional(), date: z.string().optional() }) },
    alarm_query: { description: 'list alarms', parameters: z.strictObject({ date: z.string().optional() }) },
    qa_currency: {
      description: 'convert',
      parameters: z.strictObject({ currency_name: z.union([z.string(), z.array(z.string()).min(2)]).optional() }),
    },
    play_radio: { description: 'play', parameters: z.strictObject({ radio_name: z.string().max(8).optional() }) },
  },
  entryTools: ['alarm_set'],
  maxSteps: 1,
  callFormat: compactCallFormat,
  input: (e: { id: string; split: 'dev'; text: string }) => e.text,
  gold: () => undefined,
  verify: () => ({ ok: true }),
  spanArguments: 'all', // the slot values are spans of the input
  metrics: callMetrics,
  dataset: { splits: ['train', 'dev', 'test'], load: async () => [] },
});

/** Feeds text byte by byte; returns the prefix state, or the text accepted before the first refused byte. */
function feed(prefix: CallPrefix, text: string): { accepted: boolean; at: string } {
  for (const b of bytes(text)) {
    if (!prefix.accepts(Uint8Array.of(b))) return { accepted: false, at: prefix.textSoFar };
    prefix.advance(Uint8Array.of(b));
  }
  return { accepted: true, at: prefix.textSoFar };
}

const acceptsWhole = (grammar: CallGrammar, input: string, text: string) => {
  const prefix = grammar.start(input);
  return feed(prefix, text).accepted && prefix.complete;
};

/** A task of one function taking `parameters`, its `spans` keys spans of the input (fixtures of the grammar). */
function oneFunctionTask(name: string, fn: string, parameters: z.ZodObject, spans: string[], toolSchema?: OutputFunction['toolSchema']) {
  return defineTask({
    name,
    systemPrompt: 'Answer with one call.',
    tools: {},
    functions: { [fn]: { description: fn, parameters, ...(toolSchema ? { toolSchema } : {}) } },
    entryTools: [fn],
    maxSteps: 1,
    callFormat: compactCallFormat,
    input: (e: { id: string; split: 'dev'; text: string }) => e.text,
    gold: () => undefined,
    verify: () => ({ ok: true }),
    spanArguments: { [fn]: spans },
    metrics: callMetrics,
    dataset: { splits: ['train', 'dev', 'test'], load: async () => [] },
  });
}

describe('constrained decoding grammar', () => {
  const spans = new CallGrammar(task, 'spans');
  const utterance = 'wake me up at five am this week';

  test('accepts the printed form of a call whose values are spans of the input', () => {
    const text = printCall({ name: 'alarm_set', args: [{ key: 'time', value: 'five am' }, { key: 'date', value: 'this week' }] });
    expect(acceptsWhole(spans, utterance, text)).toBe(true);
    expect(acceptsWhole(spans, utterance, 'alarm_query()')).toBe(true);
  });

  test('a prefix of a call is not complete until its closing parenthesis', () => {
    const prefix = spans.start(utterance);
    feed(prefix, 'alarm_set(time="five am"');
    expect(prefix.complete).toBe(false);
    feed(prefix, ')');
    expect(prefix.complete).toBe(true);
    expect(prefix.accepts(bytes(' '))).toBe(false);
  });

  test('refuses unknown functions, unknown or repeated slots and other whitespace', () => {
    expect(feed(spans.start(utterance), 'alarm_snooze(').at).toBe('alarm_s');
    expect(feed(spans.start(utterance), 'alarm_query(time=').at).toBe('alarm_query(');
    expect(feed(spans.start(utterance), 'alarm_set(time="five am", time="this week")').at).toBe('alarm_set(time="five am", ');
    expect(feed(spans.start(utterance), 'alarm_set( time="five am")').at).toBe('alarm_set(');
    expect(feed(spans.start(utterance), 'alarm_set(time="five am",date="this week")').at).toBe('alarm_set(time="five am",');
  });

  test('no comma once every slot is used and none may repeat, so decoding never reaches a dead end', () => {
    expect(feed(spans.start(utterance), 'alarm_query(date="this week", ').at).toBe('alarm_query(date="this week"');
    expect(feed(spans.start(utterance), 'alarm_set(time="five am", date="this week", ').at).toBe('alarm_set(time="five am", date="this week"');
    expect(feed(spans.start('how many euros is ten dollars'), 'qa_currency(currency_name="euros", ').accepted).toBe(true);
  });

  test('a slot that the schema lets repeat may repeat', () => {
    const input = 'how many euros is ten dollars';
    expect(acceptsWhole(spans, input, 'qa_currency(currency_name="euros", currency_name="dollars")')).toBe(true);
  });

  test('a repeatable slot is written at most MAX_KEY_REPEATS times, so a looping student must close the call', () => {
    const input = 'how many euros is ten dollars';
    const thrice = 'qa_currency(currency_name="euros", currency_name="dollars", currency_name="euros"';
    expect(MAX_KEY_REPEATS).toBe(3);
    expect(feed(spans.start(input), `${thrice})`).accepted).toBe(true);
    expect(feed(spans.start(input), `${thrice}, currency_name="dollars")`).at).toBe(thrice);
  });

  test('with spans, a value is a whole-word substring of the input, not empty and not padded', () => {
    expect(feed(spans.start(utterance), 'alarm_set(time="five pm")').at).toBe('alarm_set(time="five ');
    expect(acceptsWhole(spans, utterance, 'alarm_set(time="ive am")')).toBe(false);
    expect(acceptsWhole(spans, utterance, 'alarm_set(time="five a")')).toBe(false);
    expect(acceptsWhole(spans, utterance, 'alarm_set(time="")')).toBe(false);
    expect(acceptsWhole(spans, utterance, 'alarm_set(time="five am ")')).toBe(false);
  });

  test('with substrings, any non-empty substring of the input is a value', () => {
    const substrings = new CallGrammar(task, 'substrings');
    expect(acceptsWhole(substrings, utterance, 'alarm_set(time="ive a")')).toBe(true);
    expect(acceptsWhole(substrings, utterance, 'alarm_set(time="five pm")')).toBe(false);
  });

  test('with any, a value is any JSON string, escapes and non-ASCII included', () => {
    const any = new CallGrammar(task, 'any');
    expect(acceptsWhole(any, utterance, 'alarm_set(time="five pm")')).toBe(true);
    expect(acceptsWhole(any, utterance, printCall({ name: 'alarm_set', args: [{ key: 'time', value: 'sept 3 "über" \\ \n ☃' }] }))).toBe(true);
    expect(acceptsWhole(any, utterance, 'alarm_set(time="bad \\x escape")')).toBe(false);
  });

  test('input characters that JSON escapes are matched in their escaped form', () => {
    const input = 'play "jazz" über café';
    expect(acceptsWhole(spans, input, printCall({ name: 'alarm_set', args: [{ key: 'time', value: '"jazz" über' }] }))).toBe(true);
    expect(acceptsWhole(spans, input, 'alarm_set(time="café")')).toBe(true);
    // A value may not end inside a multi-byte character.
    const cafe = bytes('alarm_set(time="caf');
    const prefix = spans.start(input);
    prefix.advance(cafe);
    expect(prefix.accepts(Uint8Array.of(0xc3))).toBe(true);
    expect(prefix.accepts(Uint8Array.of(0xc3, 0x22))).toBe(false);
  });

  test('a value the slot schema refuses cannot be closed', () => {
    const any = new CallGrammar(task, 'any');
    expect(acceptsWhole(any, 'play bbc one please', 'play_radio(radio_name="bbc one")')).toBe(true);
    expect(acceptsWhole(any, 'play bbc one please', 'play_radio(radio_name="bbc one please")')).toBe(false);
  });

  test('a multi-byte token is checked as a whole and leaves the state unchanged', () => {
    const prefix = spans.start(utterance);
    prefix.advance(bytes('alarm_set(time="five am'));
    expect(prefix.accepts(bytes('", date="this'))).toBe(true);
    expect(prefix.accepts(bytes('", time="this'))).toBe(false);
    expect(prefix.textSoFar).toBe('alarm_set(time="five am');
  });
});

describe('the grammar follows the task: spans where the task says so, enums from their values, free text elsewhere', () => {
  const routing = oneFunctionTask('routing-fixture', 'route', z.strictObject({
    domain: z.enum(['alarm', 'audio']),
    action: z.string(),
    count: z.string().regex(/^(0|[1-9][0-9]*)$/),
    first: z.string().optional(),
  }), ['first']);
  const grammar = new CallGrammar(routing, 'spans');
  const input = 'wake me up at five am';

  test('a free-text and a number argument need not be spans; the span argument must be one', () => {
    expect(acceptsWhole(grammar, input, 'route(domain="alarm", action="set alarm", count="1", first="five am")')).toBe(true);
    expect(feed(grammar.start(input), 'route(domain="alarm", action="set", count="1", first="six am")').at).toBe('route(domain="alarm", action="set", count="1", first="');
  });

  test("an enum argument takes only its values, refused from the first byte that leaves them", () => {
    expect(feed(grammar.start(input), 'route(domain="alarms", action="set", count="1")').at).toBe('route(domain="alarm');
    expect(feed(grammar.start(input), 'route(domain="video", action="set", count="1")').at).toBe('route(domain="');
    expect(acceptsWhole(grammar, input, 'route(domain="audio", action="play", count="0")')).toBe(true);
  });

  test("a value the schema refuses cannot be closed", () => {
    expect(feed(grammar.start(input), 'route(domain="audio", action="play", count="one")').at).toBe('route(domain="audio", action="play", count="one');
  });
});

describe('forced bytes: what every valid continuation starts with', () => {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const forcedAfter = (grammar: CallGrammar, input: string, soFar: string) => {
    const prefix = grammar.start(input);
    prefix.advance(bytes(soFar));
    return text(prefix.forcedBytes());
  };
  /** At every byte of a valid call, the forced bytes are accepted and are what the call goes on with. */
  const expectForcedAlong = (grammar: CallGrammar, input: string, call: string) => {
    const prefix = grammar.start(input);
    for (let at = 0; at <= call.length; at++) {
      const forced = prefix.forcedBytes();
      if (forced.length > 0) expect(prefix.accepts(forced)).toBe(true);
      expect(call.slice(at).startsWith(text(forced))).toBe(true);
      if (at < call.length) prefix.advance(bytes(call[at]));
    }
    expect(prefix.complete).toBe(true);
    expect(prefix.forcedBytes()).toHaveLength(0);
  };
  const single = oneFunctionTask('forced-fixture', 'route', z.strictObject({
    domain: z.enum(['alarm', 'alarm_query', 'calendar']),
    action: z.string(),
    first_entity: z.string().optional(),
  }), ['first_entity']);
  const routing = new CallGrammar(single, 'spans');
  const several = new CallGrammar(task, 'spans');
  const utterance = 'wake me up at five am this week';

  test('with one function its name and "(" are forced; the first key is a choice', () => {
    expect(forcedAfter(routing, utterance, '')).toBe('route(');
    expect(forcedAfter(routing, utterance, 'route(')).toBe('');
    expect(forcedAfter(routing, utterance, 'route(ac')).toBe('tion="');
  });

  test('with several functions the name is forced only once it is unambiguous', () => {
    expect(forcedAfter(several, utterance, '')).toBe('');
    expect(forcedAfter(several, utterance, 'alarm_')).toBe('');
    expect(forcedAfter(several, utterance, 'q')).toBe('a_currency(');
    expect(forcedAfter(several, utterance, 'alarm_q')).toBe('uery(');
    // Optional keys only: closing the call and writing the key are both allowed.
    expect(forcedAfter(several, utterance, 'alarm_query(')).toBe('');
    expect(forcedAfter(several, utterance, 'alarm_query(d')).toBe('ate="');
  });

  test('an enum forces the prefix its remaining values share, then its end', () => {
    expect(forcedAfter(routing, utterance, 'route(d')).toBe('omain="');
    expect(forcedAfter(routing, utterance, 'route(domain="')).toBe('');
    expect(forcedAfter(routing, utterance, 'route(domain="a')).toBe('larm');
    expect(forcedAfter(routing, utterance, 'route(domain="alarm_')).toBe('query", ');
    expect(forcedAfter(routing, utterance, 'route(domain="c')).toBe('alendar", ');
  });

  test('a required key still missing forces ", "; with none missing, closing or going on is a choice', () => {
    expect(forcedAfter(routing, utterance, 'route(action="set"')).toBe(', ');
    expect(forcedAfter(routing, utterance, 'route(action="set", domain="alarm"')).toBe('');
    expect(forcedAfter(several, utterance, 'alarm_set(time="five am"')).toBe('');
  });

  test('with spans, the rest of the only word a value can be in is forced; the end of the call too', () => {
    expect(forcedAfter(several, utterance, 'alarm_set(time="f')).toBe('ive');
    expect(forcedAfter(several, utterance, 'alarm_set(time="five am", date="this we')).toBe('ek")');
    const prefix = several.start(utterance);
    prefix.advance(bytes('alarm_set(time="five am", date="this week"'));
    expect(text(prefix.forcedBytes())).toBe(')');
    expect(prefix.completedBy(prefix.forcedBytes())).toBe(true);
    expect(prefix.completedBy(bytes(')x'))).toBe(false);
  });

  test('allowedAfter lists the bytes that may follow, none once the call is complete', () => {
    const prefix = routing.start(utterance);
    expect(prefix.allowedAfter(bytes('route(')).map((b) => String.fromCharCode(b)).sort()).toEqual(['a', 'd', 'f']);
    expect(prefix.allowedAfter(bytes('route(domain="alarm", action="set")'))).toEqual([]);
    expect(prefix.allowedAfter(bytes('route)'))).toEqual([]);
    expect(prefix.textSoFar).toBe('');
  });

  test("with 'any', a value is never forced", () => {
    const any = new CallGrammar(task, 'any');
    expect(forcedAfter(any, utterance, 'alarm_set(time="')).toBe('');
    expect(forcedAfter(any, utterance, 'alarm_set(time="f')).toBe('');
  });

  test('along valid calls the forced bytes are always accepted and always what the call goes on with', () => {
    expectForcedAlong(routing, utterance, 'route(domain="alarm", action="wake me", first_entity="five am")');
    expectForcedAlong(routing, utterance, 'route(action="set", domain="calendar")');
    expectForcedAlong(several, utterance, 'alarm_set(time="five am", date="this week")');
    expectForcedAlong(several, 'how many euros is ten dollars', 'qa_currency(currency_name="euros", currency_name="dollars")');
    expectForcedAlong(new CallGrammar(task, 'any'), utterance, printCall({ name: 'play_radio', args: [{ key: 'radio_name', value: 'bbc "1"' }] }));
  });
});

describe('numbers: a value the JSON Schema types as a number is written as one from its first byte', () => {
  const numberTask = oneFunctionTask('number-fixture', 'count', z.strictObject({ n: z.string().regex(/^-?(0|[1-9]\d*)$/), x: z.string().optional(), label: z.string().optional() }), [], {
    parameters: { type: 'object', properties: { n: { type: 'integer' }, x: { type: 'number' }, label: { type: 'string' } }, required: ['n'] },
    toStringForm: (args) => args,
  });
  const grammar = new CallGrammar(numberTask, 'spans');
  const valueOf = (key: string, value: string) => feed(grammar.start('three apples'), `count(${key}="${value}`).accepted;

  test('an integer takes an optional minus and digits, without leading zeros', () => {
    for (const ok of ['3', '42', '-7', '0', '-']) expect(valueOf('n', ok)).toBe(true);
    for (const bad of ['three', '4a', '01', '3.5', '+3', '1e3', ' 3']) expect(valueOf('n', bad)).toBe(false);
    expect(acceptsWhole(grammar, 'three apples', 'count(n="3")')).toBe(true);
    expect(acceptsWhole(grammar, 'three apples', 'count(n="-")')).toBe(false);
  });

  test("a number also takes a fraction and an exponent, in JSON's order", () => {
    for (const ok of ['3.25', '-0.5', '1e9', '2.5E-3', '0.', '1e', '1e+']) expect(valueOf('x', ok)).toBe(true);
    for (const bad of ['.5', '1..2', '1e3.5', '00', '1ee', 'NaN']) expect(valueOf('x', bad)).toBe(false);
  });

  test('a string argument beside them is still free text', () => {
    expect(valueOf('label', 'three 3.5 -')).toBe(true);
  });
});

describe('drafts: a guess at how the call goes on, which the model confirms or not', () => {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const routeTask = oneFunctionTask('draft-fixture', 'route', z.strictObject({
    domain: z.enum(['alarm', 'audio', 'calendar']),
    action: z.string(),
    entity_count: z.string().regex(/^[0-9]+$/),
    first_entity: z.string().optional(),
  }), ['first_entity']);
  const utterance = 'wake me up at five am this week';
  const draftAfter = (grammar: CallGrammar, soFar: string, limit = 64) => {
    const prefix = grammar.start(utterance);
    prefix.advance(bytes(soFar));
    const draft = prefix.draftBytes(limit);
    expect(prefix.textSoFar).toBe(soFar);
    return text(draft);
  };

  test("keys come in the schema's order, the unused first; `, ` while one is left, else `)`", () => {
    const routing = new CallGrammar(routeTask, 'spans');
    expect(draftAfter(routing, '')).toBe('route(domain="');
    expect(draftAfter(routing, 'route(domain="alarm"')).toBe(', action="');
    expect(draftAfter(routing, 'route(action="set"')).toBe(', domain="');
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2"')).toBe(', first_entity="');
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2", first_entity="five am"')).toBe(')');
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2", first_entity="five am")')).toBe('');
    expect(draftAfter(routing, 'route(domain="alarm"', 3)).toBe(', a');
  });

  test('a span goes on as the input does, from where it is in the input; a value is never guessed from nothing', () => {
    const routing = new CallGrammar(routeTask, 'spans');
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2", first_entity="')).toBe('');
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2", first_entity="fi', 12)).toBe('ve am this w');
    // A span that ends with the input is closed, and the call after it.
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2", first_entity="this we')).toBe('ek")');
  });

  test("a free value's last word found in the input goes on as the input does; else the value is guessed to end", () => {
    const routing = new CallGrammar(routeTask, 'spans');
    expect(draftAfter(routing, 'route(domain="alarm", action="wake', 12)).toBe(' me up at fi');
    expect(draftAfter(routing, 'route(domain="alarm", action="set')).toBe('", entity_count="');
  });

  test("the student's earlier values come first, the most frequent that fits what is written", () => {
    const memory = new ValueMemory();
    const routing = new CallGrammar(routeTask, 'spans', memory);
    const call = (action: string, count: string) => ({
      name: 'route',
      args: [
        { key: 'domain', value: 'alarm' },
        { key: 'action', value: action },
        { key: 'entity_count', value: count },
      ],
    });
    memory.remember(call('set', '2'));
    memory.remember(call('snooze', '1'));
    memory.remember(call('snooze', '1'));
    expect(draftAfter(routing, 'route(domain="alarm", action="')).toBe('snooze", entity_count="1", first_entity="');
    expect(draftAfter(routing, 'route(domain="alarm", action="se')).toBe('t", entity_count="1", first_entity="');
    expect(draftAfter(routing, 'route(domain="a')).toBe('larm", action="snooze", entity_count="1", first_entity="');
    // An enum's value is guessed only where one value fits, or from memory.
    expect(draftAfter(new CallGrammar(routeTask, 'spans'), 'route(domain="a')).toBe('');
    expect(draftAfter(new CallGrammar(routeTask, 'spans'), 'route(domain="c')).toBe('alendar", action="');
  });

  test('a remembered value the grammar refuses here (not a span of this input) is not guessed', () => {
    const memory = new ValueMemory();
    const routing = new CallGrammar(routeTask, 'spans', memory);
    memory.remember({ name: 'route', args: [{ key: 'first_entity', value: 'noon' }] });
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2", first_entity="')).toBe('');
    expect(draftAfter(routing, 'route(domain="alarm", action="set", entity_count="2", first_entity="five', 8)).toBe(' am this');
  });

  test('ValueMemory keeps at most `capacity` distinct values an argument and counts the ones it keeps', () => {
    const memory = new ValueMemory(2);
    for (const value of ['a', 'b', 'c', 'c', 'c']) memory.remember({ name: 'f', args: [{ key: 'k', value }] });
    expect(text(memory.guess('f', 'k', [])!)).toBe('a');
    expect(memory.guess('f', 'k', bytes('c') as unknown as number[])).toBeUndefined();
    expect(memory.guess('f', 'other', [])).toBeUndefined();
  });

  test('along valid calls every draft is a valid continuation', () => {
    const memory = new ValueMemory();
    memory.remember({ name: 'alarm_set', args: [{ key: 'time', value: 'five am' }] });
    for (const [grammar, input, call] of [
      [new CallGrammar(task, 'spans', memory), utterance, 'alarm_set(time="five am", date="this week")'],
      [new CallGrammar(task, 'any', memory), utterance, printCall({ name: 'play_radio', args: [{ key: 'radio_name', value: 'bbc "1"' }] })],
      [new CallGrammar(routeTask, 'substrings', memory), utterance, 'route(action="wake me", domain="alarm", entity_count="2", first_entity="e up")'],
    ] as const) {
      const prefix = grammar.start(input);
      for (let at = 0; at <= call.length; at++) {
        const draft = prefix.draftBytes(64);
        if (draft.length > 0) expect(prefix.accepts(draft)).toBe(true);
        if (at < call.length) prefix.advance(bytes(call[at]));
      }
      expect(prefix.complete).toBe(true);
    }
  });
});
