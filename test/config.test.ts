import { InvalidConfigError, parsePipelineConfig } from '../config/pipeline';

describe('pipeline config', () => {
  test('an empty config is the embedded default', () => {
    const config = parsePipelineConfig({});
    expect(config.task.name).toBe('massive');
    expect(config.transfer.steps).toEqual(['sft']);
    expect(config.compress.steps).toEqual(['int8']);
    expect(config.teacher.samples).toBe(5);
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
});
