// A small OpenAI-compatible teacher for cascade tests: it counts requests, records their inputs and bearer
// tokens, and answers the MASSIVE tool loop (route_scenario, then the first offered function, no slots).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeTeacherRequest {
  authorization?: string;
  /** The last user message. */
  input: string;
  tools: string[];
}

export interface FakeTeacher {
  /** Base URL ending in /v1. */
  url: string;
  model: string;
  requests: FakeTeacherRequest[];
  /** The final calls it answered, in order. */
  answered: string[];
  /** When set, chat requests are answered with this HTTP status. */
  failWith?: number;
  /** Delay before each answer, ms. */
  delayMs: number;
  /** Resolves when the next chat request arrives. */
  nextRequest(): Promise<FakeTeacherRequest>;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<any> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export async function startFakeTeacher(model = 'fake-teacher'): Promise<FakeTeacher> {
  let waiters: ((r: FakeTeacherRequest) => void)[] = [];
  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const request = await body(req);
    const tools: string[] = (request.tools ?? []).map((t: any) => t.function.name);
    const user = [...request.messages].reverse().find((m: any) => m.role === 'user');
    const seen = { authorization: req.headers.authorization, input: user?.content ?? '', tools };
    fake.requests.push(seen);
    waiters.forEach((w) => w(seen));
    waiters = [];
    if (fake.delayMs) await new Promise((resolve) => setTimeout(resolve, fake.delayMs));
    if (fake.failWith) {
      res.writeHead(fake.failWith, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: { message: 'the fake teacher fails on purpose', type: 'server_error', param: null, code: null } }));
    }
    const routing = tools.includes('route_scenario');
    const name = routing ? 'route_scenario' : tools[0];
    if (!routing) fake.answered.push(name);
    const completion = {
      id: `chatcmpl-fake-${fake.requests.length}`,
      object: 'chat.completion',
      created: 0,
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: null, tool_calls: [{ id: `call_${fake.requests.length}`, type: 'function', function: { name, arguments: routing ? '{"scenario":"weather"}' : '{}' } }] },
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 },
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(completion));
  };
  // A request the fake cannot read (not JSON, say) drops the connection, which the client under test sees.
  const server = createServer((req, res) => {
    answer(req, res).catch((err: unknown) => res.destroy(err as Error));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fake: FakeTeacher = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    model,
    requests: [],
    answered: [],
    delayMs: 0,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return fake;
}
