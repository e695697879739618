// Reading a request safely: its path (or none, for a target WHATWG URL refuses), its bearer token, its body
// within a limit. Shared by every HTTP server of the project (the student server, the teacher simulator).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The path of a request target with trailing slashes removed, or undefined when it does not parse: Node's
 * parser accepts absolute-form targets such as `http://%zz/` or `http://[/` that `new URL` throws on.
 */
export function requestPath(target: string | undefined): string | undefined {
  try {
    return new URL(target ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
  } catch {
    return undefined;
  }
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** A bearer token check: the scheme matched case-insensitively (RFC 7235), the token compared in constant time. */
export class BearerAuth {
  // Compared as digests: equal length, so timingSafeEqual never throws and the length does not leak.
  private readonly expected: Buffer;
  /** Shorter than 16 characters: guessable, worth a warning where it is configured. */
  readonly weak: boolean;

  constructor(token: string) {
    if (!token) throw new Error('a bearer token must not be empty');
    this.expected = digest(token);
    this.weak = token.length < 16;
  }

  /** Whether an Authorization header carries the token. */
  accepts(header: string | undefined): boolean {
    const match = /^bearer +(\S+) *$/i.exec(header ?? '');
    return match !== null && timingSafeEqual(digest(match[1]), this.expected);
  }
}

/** A request body over the server's limit. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body is larger than the limit of ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** The body as UTF-8 text (invalid bytes become U+FFFD); over `limit` bytes, the rest is drained and BodyTooLargeError thrown. */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume(); // drained, so that the client reads the answer
    throw new BodyTooLargeError(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new BodyTooLargeError(limit);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The deepest nesting of arrays and objects a request body may have: deeper ones overflow recursive code (hashing, printing). */
export const MAX_JSON_DEPTH = 64;

/** The deepest nesting of arrays and objects in a JSON text, by a linear scan (no recursion, strings skipped). */
export function jsonNestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/** A request body as JSON; a SyntaxError names what is wrong, including nesting deeper than `maxDepth`. */
export function parseJsonBody(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  if (jsonNestingDepth(text) > maxDepth) throw new SyntaxError(`arrays and objects nest deeper than ${maxDepth} levels`);
  return JSON.parse(text);
}

/** A JSON answer; nothing is written to a response whose client is gone. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
