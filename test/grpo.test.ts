// grpo's pure parts: the config fields and their bounds, the trainer config of the step, the task
// description, and the reward statistics in heartbeats, the CLI bar and the workflow's details.
import { z } from 'zod';
import { parsePipelineConfig, InvalidConfigError } from '../config/pipeline';
import { trainingStepConfig } from '../config/step-config';
import { taskDescription, taskDescriptionFile } from '../tasks/task-description';
import { progressHeartbeat } from '../activities/trainer/trainer-process';
import { heartbeatExtra } from '../cli/watch';
import { stageDetails } from '../workflows/stage-progress';
import { callMetrics } from '../tasks/metrics';
import { compactCallFormat, defineTask, TaskSpecError, type TaskExample, type TaskSpecInput } from '../tasks/define';

function configIssues(input: unknown): string[] {
  try {
    parsePipelineConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidConfigError);
    return (err as InvalidConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('the config was accepted');
}

function toySpec(spanArguments?: TaskSpecInput<TaskExample>['spanArguments']): TaskSpecInput<TaskExample & { text: string }> {
  return {
    name: 'toy',
    systemPrompt: 'Answer with one call.',
    tools: {},
    functions: {
      say: { description: 'Says words.', parameters: z.strictObject({ words: z.string().optional(), tone: z.string().optional() }) },
      wait: { description: 'Waits.', parameters: z.strictObject({}) },
    },
    entryTools: ['say'],
    maxSteps: 1,
    callFormat: compactCallFormat,
    input: (e) => e.text,
    gold: () => undefined,
    verify: () => ({ ok: true }),
    spanArguments,
    metrics: callMetrics,
    dataset: { splits: ['train', 'dev', 'test'], load: async () => [] },
  };
}

describe('grpo step config', () => {
  test('grpo takes its own epochs, learning rate, generations, KL weight and temperature', () => {
    const t = parsePipelineConfig({
      transfer: { student: { family: 'decoder' }, steps: ['sft', 'grpo'], grpoEpochs: 2, grpoLearningRate: 2e-5, grpoGenerations: 4, grpoBeta: 0.1, grpoTemperature: 0.8, dropout: 0.1 },
    }).transfer;
    const config = trainingStepConfig(t, 'grpo');
    expect(config).toMatchObject({ epochs: 2, learning_rate: 2e-5, num_generations: 4, beta: 0.1, temperature: 0.8, batch_size: t.batchSize, seed: t.seed });
    expect(config).not.toHaveProperty('dropout'); // grpo has no dropout field
    expect(config).not.toHaveProperty('max_steps');
    // sft keeps the shared fields
    expect(trainingStepConfig(t, 'sft')).toMatchObject({ epochs: t.epochs, learning_rate: t.learningRate, dropout: 0.1 });
  });

  test('grpoMaxSteps bounds grpo alone; without it, transfer.maxSteps applies', () => {
    const both = parsePipelineConfig({ transfer: { student: { family: 'decoder' }, steps: ['sft', 'grpo'], maxSteps: 50, grpoMaxSteps: 7 } }).transfer;
    expect(trainingStepConfig(both, 'grpo')).toMatchObject({ max_steps: 7 });
    expect(trainingStepConfig(both, 'sft')).toMatchObject({ max_steps: 50 });
    const shared = parsePipelineConfig({ transfer: { student: { family: 'decoder' }, steps: ['sft', 'grpo'], maxSteps: 50 } }).transfer;
    expect(trainingStepConfig(shared, 'grpo')).toMatchObject({ max_steps: 50 });
  });

  test('the defaults are one epoch at 5e-5 with 8 generations and KL weight 0.04', () => {
    const t = parsePipelineConfig({ transfer: { student: { family: 'decoder' }, steps: ['sft', 'grpo'] } }).transfer;
    expect(trainingStepConfig(t, 'grpo')).toMatchObject({ epochs: 1, learning_rate: 5e-5, num_generations: 8, beta: 0.04, temperature: 1 });
  });

  test.each([
    [{ steps: ['grpo'] }, 'transfer.steps.0: "grpo" must come after an "sft" step'],
    [{ steps: ['grpo', 'sft'] }, 'transfer.steps.0: "grpo" must come after an "sft" step'],
    [{ steps: ['sft', 'grpo'], student: { family: 'encoder' } }, 'transfer.steps.1: "grpo" is a decoder step'],
    [{ steps: ['sft', 'grpo'], batchSize: 30, grpoGenerations: 8 }, 'transfer.grpoGenerations: batchSize (30) must be a multiple of grpoGenerations (8)'],
    [{ grpoGenerations: 1 }, 'transfer.grpoGenerations'],
    [{ grpoLearningRate: 0 }, 'transfer.grpoLearningRate'],
    [{ grpoEpochs: -1 }, 'transfer.grpoEpochs'],
    [{ grpoBeta: -0.1 }, 'transfer.grpoBeta'],
  ])('refuses %j naming the field', (transfer, expected) => {
    // The decoder unless the case names a family: grpo is a decoder step.
    expect(configIssues({ transfer: { student: { family: 'decoder' }, ...transfer } }).some((issue) => issue.startsWith(expected))).toBe(true);
  });
});

describe('the task description', () => {
  test('spanArguments "all" makes every argument of every function a span; the functions carry their JSON schemas', () => {
    const description = taskDescription(defineTask(toySpec('all')));
    expect(description.format).toBe('supertiny-task/1');
    expect(description.functions.map((f) => [f.name, f.arguments.map((a) => [a.name, a.kind])])).toEqual([
      ['say', [['words', 'span'], ['tone', 'span']]],
      ['wait', []],
    ]);
    expect(description.functions[0].parameters).toMatchObject({ additionalProperties: false, properties: { words: { type: 'string' } } });
  });

  test('without spanArguments no argument is a span; the file hash changes with the description', () => {
    const none = taskDescription(defineTask(toySpec()));
    expect(none.functions[0].arguments.map((a) => a.kind)).toEqual(['free text', 'free text']);
    const some = taskDescription(defineTask(toySpec({ say: ['words'] })));
    expect(some.functions[0].arguments.map((a) => a.kind)).toEqual(['span', 'free text']);
    expect(taskDescriptionFile(none).sha256).not.toBe(taskDescriptionFile(some).sha256);
    expect(JSON.parse(taskDescriptionFile(some).text)).toEqual(some);
  });

  test.each([
    [{ shout: ['words'] }, 'spanArguments.shout'],
    [{ say: ['volume'] }, 'spanArguments.say[0]'],
  ])('spanArguments %j is refused naming the field', (spans, field) => {
    expect(() => defineTask(toySpec(spans))).toThrow(TaskSpecError);
    try {
      defineTask(toySpec(spans));
    } catch (err) {
      expect((err as TaskSpecError).field).toBe(field);
    }
  });
});

describe('reward statistics in progress', () => {
  const event = { event: 'progress' as const, step: 12, total: 40, loss: 0.05, tokens_per_s: 800, reward: 0.8125, valid_share: 0.96875, kl: 0.01234, entropy: 0.4 };

  test('a grpo progress event puts mean reward, valid share and KL in the heartbeat; an sft one leaves them out', () => {
    const beat = progressHeartbeat({ step: 0, total: 0, checkpoint: '/c/checkpoint-10', checkpointStep: 10 }, event);
    expect(beat).toEqual({ step: 12, total: 40, checkpoint: '/c/checkpoint-10', checkpointStep: 10, loss: 0.05, tokensPerSecond: 800, reward: 0.8125, validShare: 0.96875, kl: 0.01234 });
    const sft = progressHeartbeat(beat, { event: 'progress', step: 13, total: 40, loss: 0.04, tokens_per_s: 900 });
    expect(sft.reward).toBeUndefined();
    expect(sft.validShare).toBeUndefined();
  });

  test('the CLI bar shows them after loss and throughput', () => {
    expect(heartbeatExtra({ step: 12, total: 40, loss: 0.05, tokensPerSecond: 800, reward: 0.8125, validShare: 0.96875, kl: 0.01234 })).toBe(
      'loss=0.050 800 tok/s reward=0.813 valid=96.9% kl=0.0123',
    );
    expect(heartbeatExtra({ step: 1, total: 2, loss: 1.5 })).toBe('loss=1.500');
  });

  test("the workflow's details show them after the step", () => {
    expect(stageDetails({ stage: 'transfer', step: 'grpo', done: 3, total: 4, metrics: { reward: 0.8125, valid_share: 0.96875, kl: 0.01234 } })).toBe(
      '**transfer**: grpo (3/4) — reward 0.813, valid 96.9%, KL 0.0123',
    );
    expect(stageDetails({ stage: 'transfer', step: 'sft', done: 2, total: 4 })).toBe('**transfer**: sft (2/4)');
  });
});
