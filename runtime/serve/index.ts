// The student server: the student behind an OpenAI-compatible chat-completions endpoint, with
// micro-batching, limits, auth, health, Prometheus metrics and a cascade to the teacher.
export { exposureCheck, ExposureError, MODEL_VERSION_HEADER, startStudentServer, STUDENT_MODEL_ALIAS } from './server';
export type { RunningStudentServer, ServeMetrics, StudentServerOptions } from './server';
export { TeacherCascade } from './cascade';
export { CAPTURE_FORMAT, CaptureLineSchema, CaptureWriter, captureFileName, DEFAULT_CAPTURE_MAX_FILE_BYTES, DEFAULT_CAPTURE_RETENTION_DAYS } from './capture';
export type { CapturedCall, CaptureLine, CaptureOptions, CaptureRecord } from './capture';
export type { CascadeOptions, TeacherAnswer, TeacherLimit } from './cascade';
export { MicroBatcher, QueueFullError } from './micro-batcher';
export { ThreadedStudent } from './student-thread';
export { StudentHolder } from './student-holder';
export type { StudentLease } from './student-holder';
export { DEFAULT_DEPLOYMENT_POLL_MS, DeploymentFollower, VersionRefused, warmUp, WARM_UP_INPUT } from './deployment-follower';
export type { DeploymentFollowerOptions, DeploymentStatus } from './deployment-follower';
export type { ThreadStudentOptions } from './student-thread';
export type { MicroBatcherOptions } from './micro-batcher';
export { ChatCompletionRequestSchema, offeredFunctions, parseChatRequest, ServeError, toolCallCompletion, userInput, wellFormed } from './protocol';
export type { AnsweredBy, ChatCompletionRequest, StudentChatCompletion, SupertinyAnswerInfo } from './protocol';
export { Counter, Gauge, Histogram, InfoGauge, MetricsRegistry } from './prometheus';
export type { Metric } from './prometheus';
