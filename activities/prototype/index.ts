// The prototype stage's library: teacher client, judge, rejection sampling and dataset builders.
export * from './teacher-client';
export * from './judge';
export * from './rejection-sampling';
export { RequestCache, requestCacheKey } from './request-cache';
export type { RequestCacheKeyParts } from './request-cache';
export { emptyChatClientStats } from './chat-client';
export type { ChatClientDeps, ChatFailureKind, ResolvedChatClientConfig } from './chat-client';
