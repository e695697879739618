// A pipeline config small enough for tests on two cores: a slice of MASSIVE, a tiny student, few steps.
import type { PipelineConfigInput } from '../../config/pipeline';

export function smallPipelineConfig(name: string, overrides: PipelineConfigInput = {}): PipelineConfigInput {
  return {
    name,
    task: { trainLimit: 120, devLimit: 40, testLimit: 40, ...overrides.task },
    teacher: { samples: 3, batchSize: 60, concurrency: 8, ...overrides.teacher },
    transfer: {
      steps: ['sft'],
      student: { hiddenSize: 64, layers: 2, heads: 2, kvHeads: 1, intermediateSize: 128, vocabSize: 400 },
      epochs: 1,
      maxSteps: 12,
      batchSize: 16,
      checkpointEvery: 4,
      ...overrides.transfer,
    },
    compress: { steps: ['int8'], ...overrides.compress },
    evaluate: { latencySamples: 10, ...overrides.evaluate },
    timeouts: { heartbeatSeconds: 20, ...overrides.timeouts },
  };
}
