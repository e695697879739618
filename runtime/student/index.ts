// The student runtime: load an exported student folder of either family (loadStudent) and answer with calls
// through onnxruntime-node: the encoder (intent + BIO tags) or the decoder (constrained decoding).
export { loadStudent } from './load';
export { answerEach, predictionsOf } from './answers';
export type { RuntimeAnswer } from './answers';
export type {
  RuntimeBatchOptions,
  RuntimePrediction,
  StudentLoadOptions,
  StudentRuntime,
  StudentTask,
  TimedRuntimePrediction,
} from './student-runtime';
export { EncoderStudent } from './encoder-model';
export type { EncoderPrediction, SlotSpan, TimedEncoderPrediction } from './encoder-model';
export { EncoderTokenizer } from './encoder-tokenizer';
export type { EncodedText } from './encoder-tokenizer';
export { allowedTagIndices, bestBioPath, bioSpans, parseBioTag, spanText, viterbiBio } from './bio-tags';
export type { BioTag, CharSpan, TagSpan } from './bio-tags';
export { decodeValueHeads, isNumberText, valueLogitsWidth } from './value-heads';
export type { ValueChoice, ValueHead } from './value-heads';
export { CallGrammar, CallPrefix } from './call-grammar';
export type { SlotValueRule } from './call-grammar';
export { StudentModelError, StudentRequestError } from './errors';
export type { StudentModelErrorKind, StudentRequestErrorCode } from './errors';
export { EncoderLabelsSchema, OnnxIoSchema, STUDENT_FAMILIES, StudentTemplateSchema } from './model-folder';
export type { EncoderLabels, OnnxIo, StudentFamily, StudentTemplate } from './model-folder';
export { DecoderStudent } from './decoder-model';
export type {
  BatchDecodeOptions,
  DecodeOptions,
  StopReason,
  DecoderStudentOptions,
  StudentPrediction,
  TimedStudentPrediction,
} from './decoder-model';
export { StudentTokenizer } from './tokenizer';
