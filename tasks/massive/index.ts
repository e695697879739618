// The built-in MASSIVE task. The compact call helpers are the shared ones (tasks/call-format.ts).
export { parseCall, printCall } from '../call-format';
export type { Call, CallArgument, CallParseResult } from '../call-format';
export { loadMassiveExamples, parseAnnotation, parseMassiveLine } from './data';
export type { MassiveExample, MassiveSlot } from './data';
export { deriveMassiveSchema, intentParameters } from './schema';
export type { MassiveSchema } from './schema';
export {
  canonicalizeMassiveCall,
  loadMassiveTask,
  MASSIVE_SYSTEM_PROMPT,
  massiveGoldCall,
  massiveTaskDefinition,
  massiveTaskFromExamples,
  ROUTE_TOOL,
  spanOffsets,
  verifyMassiveCall,
} from './task';
export type { MassiveTask } from './task';
