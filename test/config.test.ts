import { sharedChatSettings } from '../activities/teacher/settings';
import { trainingStepConfig } from '../config/step-config';
import { InvalidConfigError, parsePipelineConfig, PipelineConfigSchema } from '../config/pipeline';

describe('pipeline config', () => {
  test('an empty config is the embedded default', () => {
    const config = parsePipelineConfig({});
    expect(config.task.name).toBe('massive');
    expect(config.transfer.student.family).toBe('encoder');
    expect(config.transfer.steps).toEqual(['sft']);
    // int8, then int4 in its place when its gate passes; prune-vocab is opt-in: it lost 1.55 points on a 1-epoch model (BENCHMARKS.md)
    expect(config.compress.steps).toEqual(['int8', 'int4']);
    expect(config.teacher.samples).toBe(5);
  });

  test('compression steps: per-family defaults, prune-vocab and prune-layers for both families (a decoder names its layers), prune steps before quantization, each once', () => {
    const decoder = { student: { hiddenSize: 64, heads: 2, kvHeads: 1 } };
    expect(parsePipelineConfig({ transfer: decoder }).compress.steps).toEqual(['int8']);
    expect(parsePipelineConfig({ compress: { steps: ['int8'] } }).compress.steps).toEqual(['int8']);
    expect(parsePipelineConfig({ compress: { steps: [] } }).compress.steps).toEqual([]);
    expect(parsePipelineConfig({ compress: { pruneVocabMinCount: 3 } }).compress).toMatchObject({ steps: ['int8', 'int4'], pruneVocabMinCount: 3 });
    expect(parsePipelineConfig({ transfer: decoder, compress: { steps: ['int8', 'int4'] } }).compress.steps).toEqual(['int8', 'int4']);
    expect(() => parsePipelineConfig({ compress: { steps: ['int4', 'prune-vocab'] } })).toThrow(/compress\.steps\.1: "prune-vocab" must come before "int4"/);
    expect(() => parsePipelineConfig({ compress: { steps: ['int8', 'prune-layers'] } })).toThrow(/compress\.steps\.1: "prune-layers" must come before "int8"/);
    expect(() => parsePipelineConfig({ transfer: decoder, compress: { steps: ['prune-layers'] } })).toThrow(
      /compress\.pruneLayersKeep: is required with "prune-layers" for the decoder: how many of its layers to keep \(SmolLM2-135M has 30/,
    );
    expect(parsePipelineConfig({ transfer: decoder, compress: { steps: ['prune-layers', 'int4'], pruneLayersKeep: 20 } }).compress).toMatchObject({ pruneLayersKeep: 20, pruneLayersEpochs: 2 });
    expect(parsePipelineConfig({ compress: { steps: ['prune-layers', 'int4'], pruneLayersKeep: 5 } }).compress).toMatchObject({ pruneLayersKeep: 5, pruneLayersEpochs: 2 });
    expect(parsePipelineConfig({ compress: { steps: ['prune-layers', 'int4'] } }).compress).toMatchObject({ pruneLayersKeep: 4 }); // the encoder's default
    expect(parsePipelineConfig({}).compress.pruneLayersKeep).toBe(4);
    expect(() => parsePipelineConfig({ compress: { pruneLayersKeep: 0 } })).toThrow(/compress\.pruneLayersKeep/);
    expect(parsePipelineConfig({ transfer: decoder, compress: { steps: ['prune-vocab', 'int8'], pruneVocabMinCount: 2 } }).compress).toMatchObject({
      steps: ['prune-vocab', 'int8'],
      pruneVocabMinCount: 2,
    });
    expect(() => parsePipelineConfig({ compress: { steps: ['int8', 'prune-vocab'] } })).toThrow(/compress\.steps\.1: "prune-vocab" must come before "int8"/);
    expect(() => parsePipelineConfig({ compress: { steps: ['int8', 'int8'] } })).toThrow(/compress\.steps\.1: "int8" is listed twice/);
    // int4-qat trains the decoder into its 4-bit grid: the decoder's only, after the prune steps, its epochs a positive number.
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'encoder' } }, compress: { steps: ['int8', 'int4-qat'] } })).toThrow(
      /compress\.steps\.1: "int4-qat" \(4-bit weights as int4, after training the model into their grid\) is for the decoder student; the encoder family quantizes with "int8", "int4"/,
    );
    expect(parsePipelineConfig({ compress: { steps: ['int8', 'int4-qat'] } }).transfer.student.family).toBe('decoder'); // provisionally, without a family
    expect(() => parsePipelineConfig({ transfer: decoder, compress: { steps: ['int4-qat', 'prune-vocab'] } })).toThrow(/compress\.steps\.1: "prune-vocab" must come before "int4-qat"/);
    expect(parsePipelineConfig({ transfer: decoder, compress: { steps: ['prune-vocab', 'int4-qat'] } }).compress).toMatchObject({ steps: ['prune-vocab', 'int4-qat'], qatEpochs: 1 });
    expect(() => parsePipelineConfig({ transfer: decoder, compress: { steps: ['int4-qat'], qatEpochs: 0 } })).toThrow(/compress\.qatEpochs/);
    expect(() => parsePipelineConfig({ compress: { steps: ['layers'] } })).toThrow(/compress\.steps\.0/);
    expect(() => parsePipelineConfig({ compress: { pruneVocabMinCount: 0 } })).toThrow(/compress\.pruneVocabMinCount/);
    // The decoder's byte-level BPE keeps the base's first tokens too: a base's default, any decoder's choice, never the encoder's.
    const encoder = { student: { family: 'encoder' } };
    expect(() => parsePipelineConfig({ transfer: encoder, compress: { pruneVocabKeepFirst: 100 } })).toThrow(/compress\.pruneVocabKeepFirst: is for the decoder/);
    // Without a family, only the decoder takes it.
    expect(parsePipelineConfig({ compress: { pruneVocabKeepFirst: 100 } }).transfer.student.family).toBe('decoder');
    expect(() => parsePipelineConfig({ transfer: decoder, compress: { pruneVocabKeepFirst: -1 } })).toThrow(/compress\.pruneVocabKeepFirst/);
    expect(() => parsePipelineConfig({ transfer: decoder, compress: { pruneVocabKeepFirst: 1.5 } })).toThrow(/compress\.pruneVocabKeepFirst/);
    expect(parsePipelineConfig({ compress: { pruneVocabKeepFirst: 0 } }).compress.pruneVocabKeepFirst).toBe(0);
    expect(parsePipelineConfig({ transfer: decoder }).compress.pruneVocabKeepFirst).toBe(0);
    expect(parsePipelineConfig({ transfer: { student: { family: 'decoder', base: 'smollm2-135m' } } }).compress.pruneVocabKeepFirst).toBe(16_384);
    expect(parsePipelineConfig({ transfer: { student: { family: 'decoder', base: 'smollm2-135m' } }, compress: { pruneVocabKeepFirst: 0 } }).compress.pruneVocabKeepFirst).toBe(0);
  });

  test("the judge gets the teacher timeouts and retries and the endpoint's prices (its cost was reported as 0 without them)", () => {
    const t = parsePipelineConfig({ teacher: { maxRetries: 3 } }).teacher;
    const resolved = { endpoint: 'e', baseURL: 'http://127.0.0.1:9/v1', apiKey: 'k', model: 'm', prices: { inputPerMTok: 2, outputPerMTok: 8 }, simulated: false, idempotencyHeader: 'Idempotency-Key', identity: 'e@x' };
    expect(sharedChatSettings(t, resolved)).toEqual({
      endpoint: 'e@x',
      baseURL: 'http://127.0.0.1:9/v1',
      apiKey: 'k',
      model: 'm',
      timeoutMs: 30000,
      maxRetries: 3,
      concurrency: 16,
      prices: { inputPerMillionTokens: 2, outputPerMillionTokens: 8 },
      idempotencyHeader: 'Idempotency-Key',
    });
  });

  test('a config cannot name a URL, a key variable or prices: those belong to the worker', () => {
    expect(() => parsePipelineConfig({ teacher: { baseURL: 'http://attacker.example/v1' } })).toThrow(/teacher.*baseURL/);
    expect(() => parsePipelineConfig({ teacher: { apiKeyEnv: 'SUPERTINY_DATA_DIR' } })).toThrow(/teacher.*apiKeyEnv/);
    expect(() => parsePipelineConfig({ teacher: { prices: { inputPerMTok: 0, outputPerMTok: 0 } } })).toThrow(/teacher.*prices/);
    expect(parsePipelineConfig({ teacher: { endpoint: 'openai', model: 'gpt-4o-mini' } }).teacher.endpoint).toBe('openai');
  });

  test('the teacher budget: $25 by default (about twice the demo\'s $11.92), any amount from $0 (cached answers only) to its bound', () => {
    expect(parsePipelineConfig({}).teacher.maxSpendUsd).toBe(25);
    expect(parsePipelineConfig({ teacher: { maxSpendUsd: 0 } }).teacher.maxSpendUsd).toBe(0);
    expect(parsePipelineConfig({ teacher: { maxSpendUsd: 2.5 } }).teacher.maxSpendUsd).toBe(2.5);
    expect(() => parsePipelineConfig({ teacher: { maxSpendUsd: -1 } })).toThrow(/teacher\.maxSpendUsd/);
    expect(() => parsePipelineConfig({ teacher: { maxSpendUsd: 1e9 } })).toThrow(/teacher\.maxSpendUsd/);
    expect(() => parsePipelineConfig({ teacher: { maxSpendUsd: '10' } })).toThrow(/teacher\.maxSpendUsd/);
  });

  test('hostile but schema-shaped values are refused by bounds', () => {
    expect(() => parsePipelineConfig({ name: 'x'.repeat(300) })).toThrow(/name/);
    expect(() => parsePipelineConfig({ teacher: { timeoutMs: 3e9 } })).toThrow(/teacher\.timeoutMs/);
    expect(() => parsePipelineConfig({ task: { trainLimit: 1e12 } })).toThrow(/task\.trainLimit/);
    expect(() => parsePipelineConfig({ transfer: { epochs: 1e9 } })).toThrow(/transfer\.epochs/);
    expect(() => parsePipelineConfig({ transfer: { student: { hiddenSize: 190 } } })).toThrow(/transfer\.student\.hiddenSize.*multiple/);
    expect(() => parsePipelineConfig({ transfer: { trainer: { data: '/etc/passwd' } } })).toThrow(/transfer\.trainer\.data.*set by the pipeline/);
    expect(() => parsePipelineConfig({ transfer: { trainer: { warmup_ratio: { nested: 1 } } } })).toThrow(/transfer\.trainer\.warmup_ratio/);
    expect(() => parsePipelineConfig({ task: { dataPath: 'a\0b' } })).toThrow(/task\.dataPath/);
  });

  test('a parsed config, as the pipeline passes it to its stages, parses to itself (each stage parses it again)', () => {
    const inputs: unknown[] = [
      {},
      { transfer: { student: { family: 'decoder', hiddenSize: 64, heads: 2, kvHeads: 1 }, steps: ['sft', 'dpo', 'kd', 'grpo'], dropout: 0.1, trainer: { lr_scheduler: 'linear' } } },
      { name: 'router', task: { name: 'from-files', dataPath: '/data/d.jsonl', functionsPath: '/data/f.json', trainLimit: 10 }, transfer: { trainer: { pooling: 'cls' } }, compress: { steps: ['prune-vocab', 'prune-layers', 'int4'] } },
    ];
    for (const input of inputs) {
      const config = JSON.parse(JSON.stringify(parsePipelineConfig(input)));
      expect(PipelineConfigSchema.parse(config)).toEqual(config);
    }
  });

  test('config.name and task.name are slugs: they become folder names, so "..", "." and hidden names are refused', () => {
    for (const name of ['..', '.', '../x', '.hidden', 'a/b', 'a\\b', '', 'x'.repeat(65)]) {
      expect(() => parsePipelineConfig({ name })).toThrow(/^invalid pipeline config: name: /);
      expect(() => parsePipelineConfig({ task: { name } })).toThrow(/task\.name: /);
    }
    expect(parsePipelineConfig({ name: 'Demo_run-2.v1' }).name).toBe('Demo_run-2.v1');
  });

  test('transfer.trainer passes no path: tools, ref_model, task and onnx are refused by name, before anything starts', () => {
    expect(() => parsePipelineConfig({ transfer: { trainer: { tools: '/etc/hostname' } } })).toThrow(
      /transfer\.trainer\.tools: is a path or free-text field of the trainer's "encoder-sft" command: transfer\.trainer takes only numbers, booleans and fields with a fixed set of values/,
    );
    expect(() => parsePipelineConfig({ transfer: { steps: ['dpo'], student: { family: 'decoder' }, trainer: { ref_model: '/tmp' } } })).toThrow(
      /transfer\.trainer\.ref_model: is a path or free-text field of the trainer's "dpo" command/,
    );
    expect(() => parsePipelineConfig({ transfer: { steps: ['sft', 'grpo'], student: { family: 'decoder' }, trainer: { task: '/tmp/r.json' } } })).toThrow(
      /transfer\.trainer\.task: is set by the pipeline/,
    );
    expect(() => parsePipelineConfig({ transfer: { trainer: { onnx: '/tmp/m.onnx' } } })).toThrow(/transfer\.trainer\.onnx: is set by the pipeline/);
  });

  test('transfer.trainer takes numbers, booleans and closed sets of strings, each checked against the contract\'s type', () => {
    const trainer = (fields: Record<string, unknown>, family: 'encoder' | 'decoder' = 'encoder') => parsePipelineConfig({ transfer: { student: { family }, trainer: fields } }).transfer.trainer;
    expect(trainer({ lr_scheduler: 'cosine', pooling: 'cls', num_threads: 2, bf16: true, vote_weight: 0.5 })).toEqual({ lr_scheduler: 'cosine', pooling: 'cls', num_threads: 2, bf16: true, vote_weight: 0.5 });
    expect(() => trainer({ lr_scheduler: '/etc/passwd' })).toThrow(/transfer\.trainer\.lr_scheduler: must be one of "cosine", "linear", "constant", "constant_with_warmup"/);
    expect(() => trainer({ pooling: 'max' })).toThrow(/transfer\.trainer\.pooling: must be one of "cls", "mean"/);
    expect(() => trainer({ num_threads: 2.5 })).toThrow(/transfer\.trainer\.num_threads: must be an integer/);
    expect(() => trainer({ bf16: 'yes' })).toThrow(/transfer\.trainer\.bf16: must be true or false/);
    expect(() => trainer({ warmup_ratio: 'high' }, 'decoder')).toThrow(/transfer\.trainer\.warmup_ratio: must be a number/);
    expect(() => trainer({ batch_size: 1e12 })).toThrow(/transfer\.trainer\.batch_size/);
  });

  test('the student family: a discriminator, decoder implied by a decoder shape, per-family training defaults', () => {
    const encoder = parsePipelineConfig({ transfer: { student: { family: 'encoder' } } }).transfer;
    expect(encoder.student).toEqual({ family: 'encoder', maxLength: 64, headLearningRateScale: 10 });
    expect(encoder).toMatchObject({ epochs: 7, learningRate: 1.5e-4 });
    const decoder = parsePipelineConfig({ transfer: { student: { hiddenSize: 64, heads: 2, kvHeads: 1 } } }).transfer;
    expect(decoder.student).toMatchObject({ family: 'decoder', hiddenSize: 64, layers: 4 });
    expect(decoder).toMatchObject({ epochs: 12, learningRate: 1e-3 });
    expect(parsePipelineConfig({ transfer: { student: { family: 'encoder' }, epochs: 3 } }).transfer.epochs).toBe(3);
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'encoder', hiddenSize: 64 } } })).toThrow(/transfer\.student.*hiddenSize/);
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'encoder' }, steps: ['sft', 'dpo'] } })).toThrow(
      /transfer\.steps\.1: "dpo" is a decoder step; the encoder student trains with "sft" only/,
    );
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'lstm' } } })).toThrow(/transfer\.student\.family/);
    const encoderStep = trainingStepConfig(encoder, 'sft');
    expect(encoderStep).toMatchObject({ learning_rate: 1.5e-4, head_learning_rate: 1.5e-3, max_length: 64, epochs: 7 });
    expect(encoderStep).not.toHaveProperty('warmup_ratio');
    expect(trainingStepConfig(decoder, 'sft')).toMatchObject({ warmup_ratio: 0.03, weight_decay: 0.01 });
  });

  test('a missing config is an error that says how to ask for the default', () => {
    expect(() => parsePipelineConfig(null)).toThrow(/pass \{\} to run the embedded default/);
    expect(() => parsePipelineConfig(undefined)).toThrow(InvalidConfigError);
  });

  test('a bad field is refused with its path in the message', () => {
    expect(() => parsePipelineConfig({ teacher: { samples: 0 } })).toThrow(/teacher\.samples/);
    expect(() => parsePipelineConfig({ transfer: { steps: ['sft', 'magic'] } })).toThrow(/transfer\.steps\.1/);
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
    const t = parsePipelineConfig({ transfer: { student: { family: 'decoder' }, dropout: 0.1 } }).transfer;
    expect(trainingStepConfig(t, 'sft')).toMatchObject({ dropout: 0.1, learning_rate: t.learningRate, epochs: t.epochs });
    expect(trainingStepConfig(t, 'kd')).toMatchObject({ dropout: 0.1 });
    expect(trainingStepConfig(t, 'dpo')).not.toHaveProperty('dropout');
    expect(trainingStepConfig(t, 'dpo')).toMatchObject({ learning_rate: t.dpoLearningRate, epochs: t.dpoEpochs });
    // The default: no field, so the output keys (and cached artifacts) of runs before the option still match.
    expect(trainingStepConfig(parsePipelineConfig({}).transfer, 'sft')).not.toHaveProperty('dropout');
    expect(() => parsePipelineConfig({ transfer: { student: { family: 'decoder' }, dropout: 1 } })).toThrow(/transfer\.dropout/);
  });
});
