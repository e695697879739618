// A small OpenAI-compatible endpoint on 127.0.0.1 whose behaviour a test switches at will (hang, fail,
// rate-limit, or forward to the teacher simulator), and which counts what it received.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeBehaviour =
  /** Never answers; the request stays open until the client gives up. */
  | { kind: 'hang' }
  /** Answers this status with an error body (and headers, e.g. retry-after-ms). */
  | { kind: 'status'; status: number; message: string; headers?: Record<string, string> }
  /** Forwards the request to another endpoint (e.g. the teacher simulator), as a healthy endpoint. */
  | { kind: 'forward'; baseURL: string };

export interface FakeEndpoint {
  url: string;
  /** Sets what the next requests get; a function decides per request (n counts from 1). */
  behave(behaviour: FakeBehaviour | ((n: number) => FakeBehaviour)): void;
  /** Chat requests received, with arrival times (ms since epoch) and authorization headers. */
  requests: { at: number; authorization?: string }[];
  /** Requests whose client closed the connection before an answer. */
  aborted(): number;
  /** Requests received and not yet answered or aborted. */
  open(): number;
  close(): Promise<void>;
}

export async function startFakeEndpoint(initial: FakeBehaviour = { kind: 'hang' }): Promise<FakeEndpoint> {
  let behaviour: FakeBehaviour | ((n: number) => FakeBehaviour) = initial;
  const requests: FakeEndpoint['requests'] = [];
  let aborted = 0;
  let open = 0;
  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    requests.push({ at: Date.now(), authorization: req.headers.authorization });
    const now = typeof behaviour === 'function' ? behaviour(requests.length) : behaviour;
    open++;
    let settled = false;
    const settle = (wasAborted: boolean) => {
      if (settled) return;
      settled = true;
      open--;
      if (wasAborted) aborted++;
    };
    res.on('close', () => settle(!res.writableFinished));
    if (now.kind === 'hang') return;
    if (now.kind === 'status') {
      const body = JSON.stringify({ error: { message: now.message, type: 'fake_error', code: null, param: null } });
      res.writeHead(now.status, { 'content-type': 'application/json', ...now.headers });
      res.end(body);
      return;
    }
    const upstream = await fetch(`${now.baseURL}${req.url!.replace(/^\/v1/, '')}`, {
      method: req.method,
      // The idempotency key goes along, as a gateway in front of an endpoint that honours it passes it on.
      headers: { 'content-type': 'application/json', ...(req.headers['idempotency-key'] ? { 'idempotency-key': String(req.headers['idempotency-key']) } : {}) },
      body: Buffer.concat(chunks),
    });
    const text = await upstream.text();
    res.writeHead(upstream.status, { 'content-type': 'application/json' });
    res.end(text);
  };
  // A fake that fails (the upstream gone, say) drops the connection, which the client under test sees.
  const server = createServer((req, res) => {
    answer(req, res).catch((err: unknown) => res.destroy(err as Error));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    behave: (next) => {
      behaviour = next;
    },
    requests,
    aborted: () => aborted,
    open: () => open,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
