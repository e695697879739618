import { loadMassiveTask, MassiveTask, massiveGoldCall } from '../tasks/massive';
import { isExactMatch } from '../tasks/metrics';
import { contentHash, simulatorKnowledge, startTeacherSimulator, TeacherSimulator, type SimulatorKnowledge } from '../runtime/teacher-simulator';
import type { ChatRequest } from '../runtime/teacher-simulator/simulator';

let massive: MassiveTask;
let knowledge: SimulatorKnowledge;
let sim: TeacherSimulator;
beforeAll(async () => {
  massive = await loadMassiveTask();
  knowledge = await simulatorKnowledge(massive.task);
  sim = new TeacherSimulator(knowledge, { seed: 7, model: 'teacher-simulator' });
});

const dev = () => massive.examples.filter((e) => e.split === 'dev');

function routeRequest(utterance: string, extra: Partial<ChatRequest> = {}): ChatRequest {
  return {
    model: 'teacher-simulator',
    messages: [
      { role: 'system', content: massive.task.systemPrompt },
      { role: 'user', content: utterance },
    ],
    tools: massive.task.toolDefinitions(['route_scenario']) as ChatRequest['tools'],
    temperature: 0.7,
    ...extra,
  };
}

function finalRequest(utterance: string, scenario: string, extra: Partial<ChatRequest> = {}): ChatRequest {
  const offered = massive.schema.intentsByScenario[scenario];
  return {
    ...routeRequest(utterance, extra),
    messages: [
      { role: 'system', content: massive.task.systemPrompt },
      { role: 'user', content: utterance },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'route_scenario', arguments: JSON.stringify({ scenario }) } }] },
      { role: 'tool', tool_call_id: 'call_1', content: JSON.stringify({ scenario, functions: offered }) },
    ],
    tools: massive.task.toolDefinitions(offered) as ChatRequest['tools'],
  };
}

type Choice = { message: { content: string | null; tool_calls?: { function: { name: string; arguments: string } }[] }; logprobs: any };
const choicesOf = (body: Record<string, unknown>) => body.choices as Choice[];

describe('teacher simulator answers', () => {
  test('the same request gives the same answer; the choice index and the seed parameter vary it', () => {
    const ex = dev().find((e) => e.slots.length >= 2)!;
    const a = sim.complete(finalRequest(ex.utterance, ex.scenario, { n: 8, temperature: 1.5 }));
    const b = sim.complete(finalRequest(ex.utterance, ex.scenario, { n: 8, temperature: 1.5 }));
    expect(choicesOf(a.body)).toEqual(choicesOf(b.body));
    const args = (body: Record<string, unknown>) => choicesOf(body).map((c) => c.message.tool_calls![0].function.arguments);
    const many = dev().slice(0, 40).map((e) => sim.complete(finalRequest(e.utterance, e.scenario, { n: 6, temperature: 1.5 })));
    expect(many.some((c) => new Set(args(c.body)).size > 1)).toBe(true);
    const seeded = dev().slice(0, 40).map((e) => sim.complete(finalRequest(e.utterance, e.scenario, { n: 1, temperature: 1.5, seed: 1 })));
    const unseeded = dev().slice(0, 40).map((e) => sim.complete(finalRequest(e.utterance, e.scenario, { n: 1, temperature: 1.5, seed: 2 })));
    expect(seeded.map((c) => args(c.body)[0])).not.toEqual(unseeded.map((c) => args(c.body)[0]));
  });

  test('routing answers with the route tool and an offered scenario; the final step only calls offered functions', () => {
    const quiet = new TeacherSimulator(knowledge, {
      seed: 7,
      model: 'teacher-simulator',
      errorModel: { unknownFunctionRate: 0, malformedArgumentsRate: 0 },
    });
    for (const ex of dev().slice(0, 150)) {
      const route = choicesOf(quiet.complete(routeRequest(ex.utterance, { n: 2 })).body);
      for (const c of route) {
        expect(c.message.tool_calls![0].function.name).toBe('route_scenario');
        expect(massive.schema.scenarios).toContain(JSON.parse(c.message.tool_calls![0].function.arguments).scenario);
      }
      // offer a scenario that may be the wrong one: the answer must still be one of its functions and valid
      const scenario = ex.id.endsWith('7') ? 'weather' : ex.scenario;
      for (const c of choicesOf(quiet.complete(finalRequest(ex.utterance, scenario, { n: 2 })).body)) {
        const call = c.message.tool_calls![0].function;
        const decoded = massive.task.decodeToolCall(call.name, call.arguments, massive.schema.intentsByScenario[scenario]);
        expect(decoded.kind).toBe('call');
      }
    }
  });

  test('at temperature 0.7 a single sample exact-matches 80-95% of dev, and errors grow with temperature', () => {
    const rate = (temperature: number) => {
      const sample = dev().slice(0, 400);
      let hits = 0;
      for (const ex of sample) {
        const route = choicesOf(sim.complete(routeRequest(ex.utterance, { temperature })).body)[0].message.tool_calls![0].function;
        const routed = massive.task.decodeToolCall(route.name, route.arguments, ['route_scenario']);
        if (routed.kind !== 'tool') continue;
        const scenario = String(routed.args.scenario);
        const final = choicesOf(sim.complete(finalRequest(ex.utterance, scenario, { temperature })).body)[0].message.tool_calls![0].function;
        const decoded = massive.task.decodeToolCall(final.name, final.arguments, massive.schema.intentsByScenario[scenario]);
        if (decoded.kind === 'call' && isExactMatch(massiveGoldCall(ex), decoded.call)) hits++;
      }
      return hits / sample.length;
    };
    const warm = rate(0.7);
    expect(warm).toBeGreaterThan(0.8);
    expect(warm).toBeLessThan(0.95);
    expect(rate(0)).toBeGreaterThan(warm);
    expect(rate(1.6)).toBeLessThan(warm - 0.05);
  });

  test('malformed arguments and unknown functions appear at their configured rates', () => {
    const noisy = new TeacherSimulator(knowledge, {
      seed: 3,
      model: 'teacher-simulator',
      errorModel: { malformedArgumentsRate: 0.2, unknownFunctionRate: 0.2 },
    });
    const kinds = dev()
      .slice(0, 100)
      .flatMap((ex) => noisy.complete(finalRequest(ex.utterance, ex.scenario, { n: 4 })).choiceKinds);
    const share = (k: string) => kinds.filter((x) => x === k).length / kinds.length;
    expect(share('malformed_arguments')).toBeGreaterThan(0.1);
    expect(share('unknown_function')).toBeGreaterThan(0.08);
  });

  test('honours n, logprobs with sorted top_logprobs, usage, tool_choice none and a forced function', () => {
    const ex = dev()[0];
    const body = sim.complete(finalRequest(ex.utterance, ex.scenario, { n: 3, logprobs: true, top_logprobs: 3 })).body;
    expect(choicesOf(body)).toHaveLength(3);
    for (const c of choicesOf(body)) {
      expect(c.logprobs.content.length).toBeGreaterThan(0);
      for (const t of c.logprobs.content) {
        expect(t.logprob).toBeLessThanOrEqual(0);
        expect(t.top_logprobs).toHaveLength(3);
        const lps = t.top_logprobs.map((x: { logprob: number }) => x.logprob);
        expect([...lps].sort((x, y) => y - x)).toEqual(lps);
      }
    }
    const usage = body.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    expect(usage.prompt_tokens).toBeGreaterThan(50);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);

    const text = choicesOf(sim.complete(finalRequest(ex.utterance, ex.scenario, { tool_choice: 'none' })).body)[0];
    expect(text.message.tool_calls).toBeUndefined();
    expect(text.message.content).toMatch(/^\w+\(.*\)$/);

    const forcedName = massive.schema.intentsByScenario[ex.scenario].find((i) => i !== ex.intent)!;
    const forced = choicesOf(
      sim.complete(finalRequest(ex.utterance, ex.scenario, { tool_choice: { type: 'function', function: { name: forcedName } }, n: 5 })).body,
    );
    for (const c of forced) expect(c.message.tool_calls![0].function.name).toBe(forcedName);
  });

  test('an utterance it does not know gets a best-effort guess from the nearest train utterance', () => {
    const completion = sim.complete(routeRequest('could you please wake me up at seven thirty tomorrow morning', { temperature: 0 }));
    expect(completion.known).toBe(false);
    expect(JSON.parse(choicesOf(completion.body)[0].message.tool_calls![0].function.arguments)).toEqual({ scenario: 'alarm' });
  });

  test('as a judge it usually says correct for the gold call and incorrect for a wrong one', () => {
    const judgeTool = [
      {
        type: 'function' as const,
        function: { name: 'submit_verdict', parameters: { type: 'object', properties: { verdict: { type: 'string', enum: ['correct', 'incorrect'] } } } },
      },
    ];
    let agree = 0;
    const sample = dev().slice(0, 100);
    for (const ex of sample) {
      const gold = massive.task.callFormat.print(massiveGoldCall(ex));
      const wrong = `${ex.intent}()`;
      for (const [proposal, expected] of [[gold, 'correct'], [wrong, ex.slots.length === 0 ? 'correct' : 'incorrect']] as const) {
        const body = sim.complete({
          model: 'teacher-simulator',
          messages: [{ role: 'user', content: `Utterance: ${ex.utterance}\nProposed call: ${proposal}` }],
          tools: judgeTool,
          tool_choice: { type: 'function', function: { name: 'submit_verdict' } },
        }).body;
        if (JSON.parse(choicesOf(body)[0].message.tool_calls![0].function.arguments).verdict === expected) agree++;
      }
    }
    expect(agree / (2 * sample.length)).toBeGreaterThan(0.8);
    expect(agree / (2 * sample.length)).toBeLessThan(1);
  });
});

describe('teacher simulator over HTTP', () => {
  test('serves models, injects 429 with Retry-After and 500, and counts requests by content hash', async () => {
    const server = await startTeacherSimulator({ seed: 1, faults: { rate429: 0.5, rate500: 0.3, retryAfterMs: 20 } });
    try {
      const models = (await (await fetch(`${server.url}/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(['teacher-simulator']);
      const body = routeRequest(dev()[0].utterance);
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) {
        const res = await fetch(`${server.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        statuses.push(res.status);
        if (res.status === 429) {
          expect(res.headers.get('retry-after-ms')).toBe('20');
          expect(res.headers.get('retry-after')).toBe('1');
        }
        await res.arrayBuffer();
      }
      expect(statuses).toContain(200);
      expect(statuses).toContain(429);
      expect(statuses).toContain(500);
      const stats = server.stats();
      expect(stats.receivedByContentHash[contentHash(body)]).toBe(30);
      expect(stats.answeredByContentHash[contentHash(body)]).toBe(statuses.filter((s) => s === 200).length);
      expect(stats.injected429 + stats.injected500 + stats.completions).toBe(30);
      expect(stats.repeatedAnswers).toBe(1);
      const bad = await fetch(`${server.url}/chat/completions`, { method: 'POST', body: '{"model": "teacher-simulator"' });
      expect(bad.status).toBe(400);
    } finally {
      await server.close();
    }
  });
});
