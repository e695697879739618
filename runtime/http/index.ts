// The HTTP layer both servers of the runtime share (the student server, the teacher simulator): explicit
// connection and time limits, safe request parsing, bearer tokens, bounded bodies.
export { createLimitedServer, DEFAULT_SERVER_LIMITS, isLoopbackHost } from './limits';
export type { LimitedServerHooks, ServerLimits } from './limits';
export { BearerAuth, BodyTooLargeError, jsonNestingDepth, MAX_JSON_DEPTH, parseJsonBody, readBody, requestPath, sendJson } from './requests';
