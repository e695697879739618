import { z } from 'zod';
import { callMetrics } from '../tasks/metrics';
import { compactCallFormat, defineTask, TaskSpecError, TaskSpecInput, TaskExample } from '../tasks/define';

interface Example extends TaskExample {
  text: string;
}

function validSpec(): TaskSpecInput<Example> {
  return {
    name: 'toy',
    systemPrompt: 'Answer with one call.',
    tools: {
      pick_domain: {
        description: 'Chooses a domain.',
        parameters: z.strictObject({ domain: z.enum(['a', 'b']) }),
        execute: ({ domain }: { domain: 'a' | 'b' }) => ({ content: domain, next: domain === 'a' ? ['say'] : ['shout'] }),
      },
    },
    functions: {
      say: { description: 'Says words.', parameters: z.strictObject({ words: z.string().optional() }) },
      shout: { description: 'Shouts words.', parameters: z.strictObject({ words: z.string().optional() }) },
    },
    entryTools: ['pick_domain'],
    maxSteps: 3,
    callFormat: compactCallFormat,
    input: (e) => e.text,
    gold: () => undefined,
    verify: () => ({ ok: true }),
    metrics: callMetrics,
    dataset: { splits: ['train', 'dev', 'test'], load: async () => [] },
  };
}

function fieldOfError(spec: unknown): string {
  try {
    defineTask(spec as TaskSpecInput<Example>);
  } catch (err) {
    expect(err).toBeInstanceOf(TaskSpecError);
    expect((err as Error).message).toContain((err as TaskSpecError).field);
    return (err as TaskSpecError).field;
  }
  throw new Error('defineTask accepted an invalid spec');
}

describe('defineTask', () => {
  test('a valid spec is returned frozen with its derived helpers', () => {
    const task = defineTask(validSpec());
    expect(Object.isFrozen(task)).toBe(true);
    expect(task.functionNames).toEqual(['say', 'shout']);
    expect(task.toolDefinitions(['pick_domain'])[0].function.parameters).toMatchObject({ properties: { domain: { enum: ['a', 'b'] } } });
    // default canonical form sorts slots by key
    expect(task.canonicalText({ name: 'say', args: [{ key: 'z', value: '1' }, { key: 'a', value: '2' }] }, '')).toBe('say(a="2", z="1")');
  });

  test.each([
    ['a missing system prompt', (s: Record<string, unknown>) => delete s.systemPrompt, 'systemPrompt'],
    ['an empty name', (s: Record<string, unknown>) => (s.name = ''), 'name'],
    ['a tool without code', (s: any) => delete s.tools.pick_domain.execute, 'tools.pick_domain.execute'],
    ['a parameters value that is not a zod object', (s: any) => (s.functions.say.parameters = { words: 'string' }), 'functions.say.parameters'],
    ['a parameter that cannot carry a string', (s: any) => (s.functions.say.parameters = z.strictObject({ n: z.number() })), 'functions.say.parameters.n'],
    ['an entry tool that does not exist', (s: any) => (s.entryTools = ['pick_domain', 'nope']), 'entryTools[1]'],
    ['a function name that is not an identifier', (s: any) => (s.functions['say it'] = s.functions.say), 'functions.say it'],
    ['a tool that is also a function', (s: any) => (s.functions.pick_domain = s.functions.say), 'tools.pick_domain'],
    ['a misspelled field', (s: any) => ((s.verifier = s.verify), delete s.verify), 'verify'],
    ['a dataset without a test split', (s: any) => (s.dataset.splits = ['train', 'dev']), 'dataset.splits'],
    ['no output functions', (s: any) => (s.functions = {}), 'functions'],
    ['a step limit of zero', (s: any) => (s.maxSteps = 0), 'maxSteps'],
  ])('rejects %s with an error naming the field', (_what, mutate, field) => {
    const spec = validSpec() as unknown as Record<string, unknown>;
    mutate(spec);
    expect(fieldOfError(spec)).toBe(field);
  });
});
