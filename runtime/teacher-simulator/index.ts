// The TEACHER SIMULATOR: an OpenAI-compatible stand-in for a large LLM on any task with gold calls.
export { startTeacherSimulator, FaultConfigSchema } from './server';
export type { FaultConfig, RunningTeacherSimulator, TeacherSimulatorOptions, TeacherSimulatorStats } from './server';
export { TeacherSimulator, contentHash, ChatRequestSchema, inventedFunctionName } from './simulator';
export type { ChoiceKind, SimulatedCompletion, SimulatorRole } from './simulator';
export { DEFAULT_ERROR_MODEL, ErrorModelConfigSchema, paraphraseValue, rateAtTemperature, temperatureDistribution } from './error-model';
export type { AnswerKind, ErrorModelConfig } from './error-model';
export { AnnotationIndex, simulatorKnowledge } from './annotations';
export type { KnownAnswer, SimulatorExample, SimulatorKnowledge } from './annotations';
