// The onnxruntime-node session of a student graph, with the same CPU settings for both families.
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { StudentModelError } from './errors';

/** onnxruntime intra-op threads when none are given: the model is small, more threads only contend. */
export function defaultThreads(): number {
  return Math.min(4, availableParallelism());
}

export async function createStudentSession(modelFile: string, threads = defaultThreads()): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(modelFile, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    throw new StudentModelError('session', `onnxruntime cannot load ${modelFile}: ${(err as Error).message}`, modelFile, { cause: err });
  }
}
