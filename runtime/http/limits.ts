// What every HTTP server of the project sets explicitly rather than taking Node's defaults: a cap on open
// connections, deadlines for a request's headers and for the whole request (slow or stalled clients are
// answered 408 and dropped), and a 4xx or a closed socket for bytes Node's parser refuses. The request
// handler itself must never reject; a rejection that escapes anyway is logged and its connection dropped.
import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { Logger } from '../../config/logger';

export interface ServerLimits {
  /** Open connections at most; a connection over it is closed at once. */
  maxConnections: number;
  /** How long a client may take to send a request's headers (an idle new connection too), ms; then 408 and close. */
  headersTimeoutMs: number;
  /** How long a client may take to send a whole request, body included, ms; then 408 and close. At least headersTimeoutMs. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open, ms. */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = { maxConnections: 1024, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 30_000 };

/** Why Node refused a request before it reached the handler, as the status its default handler answers. */
function refusalStatus(err: NodeJS.ErrnoException): number {
  if (err.code === 'HPE_HEADER_OVERFLOW') return 431;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

export interface LimitedServerHooks {
  log: Logger;
  /** Called for each request Node refused before the handler (status 400, 408 or 431). */
  onRefused?: (status: number) => void;
}

/** An HTTP server with `limits` applied; `handle` answers every parsed request and should never reject. */
export function createLimitedServer(
  limits: Partial<ServerLimits>,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  hooks: LimitedServerHooks,
): Server {
  const { maxConnections, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = { ...DEFAULT_SERVER_LIMITS, ...limits };
  if (headersTimeoutMs > requestTimeoutMs) throw new Error(`headersTimeoutMs (${headersTimeoutMs}) must not exceed requestTimeoutMs (${requestTimeoutMs})`);
  const server = createServer(
    {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      // How often Node looks for connections past those deadlines (its default, 30 s, would let them run long).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeoutMs / 2))),
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        hooks.log.error('a request handler failed outside its error handling', { error: (err as Error)?.message });
        res.destroy();
      });
    },
  );
  server.maxConnections = maxConnections;
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A reset or a socket already gone: nothing to answer.
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const status = refusalStatus(err);
    hooks.onRefused?.(status);
    // As Node's own handler: answer only when no response of this connection has begun.
    const answering = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (!answering?.headersSent) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    socket.destroy();
  });
  return server;
}

/** Whether a host to bind reaches this machine only: localhost, 127.0.0.0/8, ::1 (IPv4-mapped too). */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || (h.startsWith('::ffff:') && isIPv4(h.slice(7)) && h.slice(7).startsWith('127.'));
  return false;
}
