// Tasks from files: a functions file (system prompt + OpenAI tool definitions) and a JSONL data file.
export { fromFilesTaskDefinition, loadTaskFromFiles, taskFromFiles } from './task';
export type { FileExample } from './data-file';
export { readFunctionsFile, FunctionsFileSchema, ParametersSchema } from './functions-file';
export type { FunctionsFile, Parameter, Parameters } from './functions-file';
export { TaskFileError } from './errors';
