// Every workflow the worker registers.
export { distillationPipeline } from './pipeline';
export { prototypeStage } from './prototype';
export { transferStage } from './transfer';
export { compressStage } from './compress';
export { evaluateStage } from './evaluate';
export { refreshStudent } from './refresh';
