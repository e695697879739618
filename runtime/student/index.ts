// The student runtime: load an exported student folder and decode calls with onnxruntime-node.
export { CallGrammar, CallPrefix } from './call-grammar';
export type { SlotValueRule } from './call-grammar';
export { StudentModelError, StudentRequestError } from './errors';
export type { StudentModelErrorKind } from './errors';
export { OnnxIoSchema, StudentTemplateSchema } from './model-folder';
export type { OnnxIo, StudentTemplate } from './model-folder';
export { StudentModel } from './student-model';
export type {
  BatchDecodeOptions,
  DecodeOptions,
  StopReason,
  StudentModelOptions,
  StudentPrediction,
  StudentTask,
  TimedStudentPrediction,
} from './student-model';
export { StudentTokenizer } from './tokenizer';
