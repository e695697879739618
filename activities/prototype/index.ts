// The prototype stage's library: teacher client, judge, rejection sampling and dataset builders.
export * from '../../runtime/teacher/teacher-client';
export * from './judge';
export * from './rejection-sampling';
export { RequestCache, requestCacheKey } from '../../runtime/teacher/request-cache';
export type { RequestCacheKeyParts } from '../../runtime/teacher/request-cache';
export { emptyChatClientStats } from '../../runtime/teacher/chat-client';
export type { ChatClientDeps, ChatFailureKind, ResolvedChatClientConfig } from '../../runtime/teacher/chat-client';
