import { sharedChatSettings } from '../activities/prototype/stage-activities';
import { trainingStepConfig } from '../activities/transfer/activities';
import { InvalidConfigError, parsePipelineConfig } from '../config/pipeline';

describe('pipeline config', () => {
  test('an empty config is the embedded default', () => {
    const config = parsePipelineConfig({});
    expect(config.task.name).toBe('massive');
    expect(config.transfer.steps).toEqual(['sft']);
    expect(config.compress.steps).toEqual(['int8']);
    expect(config.teacher.samples).toBe(5);
  });

  test('the judge gets the teacher timeouts, retries and prices (its cost was reported as 0 without them)', () => {
    const t = parsePipelineConfig({ teacher: { prices: { inputPerMTok: 2, outputPerMTok: 8 }, maxRetries: 3 } }).teacher;
    expect(sharedChatSettings(t)).toEqual({
      timeoutMs: 30000,
      maxRetries: 3,
      concurrency: 16,
      prices: { inputPerMillionTokens: 2, outputPerMillionTokens: 8 },
    });
  });

  test('a bad field is refused with its path in the message', () => {
    expect(() => parsePipelineConfig({ teacher: { samples: 0 } })).toThrow(/teacher\.samples/);
    expect(() => parsePipelineConfig({ transfer: { steps: ['sft', 'magic'] } })).toThrow(/transfer\.steps\.1/);
    expect(() => parsePipelineConfig({ teacher: { baseURL: 'not a url' } })).toThrow(/teacher\.baseURL/);
  });

  test('unknown fields are refused by name rather than ignored', () => {
    const err = (() => {
      try {
        parsePipelineConfig({ transfer: { epochz: 3 } });
      } catch (e) {
        return e;
      }
    })() as InvalidConfigError;
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect(err.message).toMatch(/transfer/);
    expect(err.message).toMatch(/epochz/);
  });

  test('transfer.dropout reaches sft and kd, not dpo (which has no such field), and 0 adds nothing', () => {
    const t = parsePipelineConfig({ transfer: { dropout: 0.1 } }).transfer;
    expect(trainingStepConfig(t, 'sft')).toMatchObject({ dropout: 0.1, learning_rate: t.learningRate, epochs: t.epochs });
    expect(trainingStepConfig(t, 'kd')).toMatchObject({ dropout: 0.1 });
    expect(trainingStepConfig(t, 'dpo')).not.toHaveProperty('dropout');
    expect(trainingStepConfig(t, 'dpo')).toMatchObject({ learning_rate: t.dpoLearningRate, epochs: t.dpoEpochs });
    // The default: no field, so the output keys (and cached artifacts) of runs before the option still match.
    expect(trainingStepConfig(parsePipelineConfig({}).transfer, 'sft')).not.toHaveProperty('dropout');
    expect(() => parsePipelineConfig({ transfer: { dropout: 1 } })).toThrow(/transfer\.dropout/);
  });
});
