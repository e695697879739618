// A training step's trainer config from the pipeline config: sent by transfer, and hashed into its output keys.
import type { PipelineConfig, TransferStep } from './pipeline';

/** The trainer config fields of one training step that come from the pipeline config (not the paths). */
export function trainingStepConfig(t: PipelineConfig['transfer'], step: TransferStep): Record<string, unknown> {
  if (t.student.family === 'encoder') {
    return {
      epochs: t.epochs,
      batch_size: t.batchSize,
      learning_rate: t.learningRate,
      head_learning_rate: Number((t.learningRate * t.student.headLearningRateScale).toPrecision(12)),
      max_length: t.student.maxLength,
      seed: t.seed,
      save_steps: t.checkpointEvery,
      ...(t.maxSteps ? { max_steps: t.maxSteps } : {}),
      ...(t.dropout > 0 ? { dropout: t.dropout } : {}),
      ...t.trainer,
    };
  }
  if (step === 'grpo') {
    const maxSteps = t.grpoMaxSteps ?? t.maxSteps;
    return {
      epochs: t.grpoEpochs,
      batch_size: t.batchSize,
      learning_rate: t.grpoLearningRate,
      num_generations: t.grpoGenerations,
      beta: t.grpoBeta,
      temperature: t.grpoTemperature,
      seed: t.seed,
      save_steps: t.checkpointEvery,
      ...(maxSteps ? { max_steps: maxSteps } : {}),
      ...t.trainer,
    };
  }
  return {
    epochs: step === 'dpo' ? t.dpoEpochs : t.epochs,
    batch_size: t.batchSize,
    learning_rate: step === 'dpo' ? t.dpoLearningRate : t.learningRate,
    seed: t.seed,
    save_steps: t.checkpointEvery,
    ...(t.maxSteps ? { max_steps: t.maxSteps } : {}),
    // dpo has no dropout field; 0 is left out so that the output keys of earlier runs still match.
    ...(step !== 'dpo' && t.dropout > 0 ? { dropout: t.dropout } : {}),
    ...t.trainer,
  };
}
