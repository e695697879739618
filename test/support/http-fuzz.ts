// A bounded fuzz of an HTTP server over raw TCP (loopback only): malformed request lines, bad headers, bad
// JSON, bodies over the limit, odd unicode and slow partial requests, each sent on its own connection.
// Every case must get a status it allows (a 4xx for the malformed ones) or a closed connection, never a 5xx
// and never silence; the caller then checks that the server still answers.
import * as net from 'node:net';

/** What a case is, for the counts: one of FUZZ_KINDS. */
export const FUZZ_KINDS = ['request_line', 'header', 'json', 'body_limit', 'unicode', 'slow', 'mutation'] as const;
export type FuzzKind = (typeof FUZZ_KINDS)[number];

export interface FuzzCase {
  kind: FuzzKind;
  name: string;
  /**
   * Sent one after the other, `pauseMs` apart; the connection then stays open, as a client waiting for its
   * answer does (Node takes a half-close as the client leaving).
   */
  pieces: (string | Buffer)[];
  pauseMs?: number;
  /** The statuses this case may get; default any 4xx. */
  allows?: (status: number) => boolean;
  /** A well-formed request: a closed connection without an answer is a failure too. */
  needsAnswer?: boolean;
}

export interface FuzzTarget {
  /** The POST path that takes a JSON body (the chat endpoint). */
  chatPath: string;
  /** A well-formed chat request body with `text` as its user message. */
  chatBody(text: string): unknown;
  /** Headers of a well-formed request besides host, content-type and content-length (e.g. authorization). */
  headers?: Record<string, string>;
  /** The server's body limit, bytes. */
  maxBodyBytes: number;
}

/** What one case got: a status, a closed connection, or nothing within the timeout ("hung"). */
export interface FuzzOutcome {
  kind: FuzzKind;
  name: string;
  answer: number | 'closed' | 'hung';
  ok: boolean;
}

export interface FuzzReport {
  sent: Record<FuzzKind, number>;
  /** Answers by status ("400", "408", ...), "closed" or "hung". */
  answers: Record<string, number>;
  /** The cases whose answer their kind does not allow (a 5xx, a hang, a 2xx to garbage). */
  failures: FuzzOutcome[];
  ms: number;
}

const is4xx = (status: number) => status >= 400 && status < 500;
/** Well-formed requests with odd text: answered (2xx) or refused (4xx), never a 5xx. */
const notServerError = (status: number) => status >= 200 && status < 500;

/** A small seeded PRNG (mulberry32), so that a fuzz run is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A complete request: head lines and a body, with content-length (unless a header already says how). */
function request(method: string, target: string, headers: Record<string, string>, body: string | Buffer = ''): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const all: Record<string, string> = { host: 'localhost', ...headers };
  const hasLength = Object.keys(all).some((k) => ['content-length', 'transfer-encoding'].includes(k.toLowerCase()));
  if (!hasLength && (bytes.length > 0 || method === 'POST')) all['content-length'] = String(bytes.length);
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bytes]);
}

/** The cases of one run: fixed ones per kind plus `mutations` seeded byte-level mutations of a valid request. */
export function fuzzCorpus(target: FuzzTarget, options: { seed?: number; mutations?: number } = {}): FuzzCase[] {
  const random = prng(options.seed ?? 1);
  const json = { 'content-type': 'application/json', ...target.headers };
  const chat = (body: string | Buffer, headers: Record<string, string> = {}) => request('POST', target.chatPath, { ...json, ...headers }, body);
  const chatJson = (text: string) => JSON.stringify(target.chatBody(text));
  const cases: FuzzCase[] = [];
  const add = (kind: FuzzKind, name: string, pieces: FuzzCase['pieces'], extra: Partial<FuzzCase> = {}) => cases.push({ kind, name, pieces, ...extra });

  // Request lines Node's parser takes but WHATWG URL refuses, and ones Node refuses itself.
  for (const line of [
    'GET http://%zz/ HTTP/1.1',
    'GET http://[/ HTTP/1.1',
    'POST http://%zz/v1/chat/completions HTTP/1.1',
    'GET http://a b/ HTTP/1.1',
    'GET http://[::1/v1/models HTTP/1.1',
    'GET /v1/models/%E0%A4%A HTTP/1.1',
    'GET /v1/models/%ff%fe HTTP/1.1',
    'GET /%zz HTTP/1.1',
    'GET //// HTTP/1.1',
    'GET * HTTP/1.1',
    'OPTIONS * HTTP/1.1',
    'CONNECT localhost:1 HTTP/1.1',
    'GET / HTTP/9.9',
    'GET / HTTP/1.1 extra',
    'GARBAGE',
    'get / HTTP/1.1',
    'GET /\u0000 HTTP/1.1',
    `GET /${'a'.repeat(20_000)} HTTP/1.1`,
    'BREW /pot HTTP/1.1',
  ]) {
    add('request_line', line.slice(0, 60), [Buffer.from(`${line}\r\nhost: localhost\r\n\r\n`, 'latin1')]);
  }
  add('request_line', 'random bytes', [Buffer.from(Array.from({ length: 256 }, () => Math.floor(random() * 256)))]);
  add('request_line', 'empty line only', ['\r\n\r\n']);

  // Headers.
  const valid = chatJson('hello');
  add('header', 'negative content-length', [chat(valid, { 'content-length': '-1' })]);
  add('header', 'non-numeric content-length', [chat(valid, { 'content-length': 'abc' })]);
  add('header', 'two content-lengths', [Buffer.from(`POST ${target.chatPath} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!`, 'latin1')]);
  add('header', 'content-length and chunked', [chat(valid, { 'content-length': '4', 'transfer-encoding': 'chunked' })]);
  add('header', 'a bad chunk size', [Buffer.from(`POST ${target.chatPath} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, 'latin1')]);
  add('header', 'a line without a colon', [Buffer.from(`GET /healthz HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n`, 'latin1')]);
  add('header', 'NUL in a value', [Buffer.from(`GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \u0000abc\r\n\r\n`, 'latin1')]);
  add('header', 'a 20 KB header', [Buffer.from(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'b'.repeat(20_000)}\r\n\r\n`, 'latin1')]);
  add('header', '3000 headers', [Buffer.from(`GET /v1/models HTTP/1.1\r\nhost: x\r\n${Array.from({ length: 3000 }, (_, i) => `x-h${i}: v\r\n`).join('')}\r\n`, 'latin1')], {
    allows: notServerError,
  });
  add('header', 'no host (HTTP/1.1)', [Buffer.from(`GET /v1/models HTTP/1.1\r\n\r\n`, 'latin1')]);
  add('header', 'space before the colon', [Buffer.from(`GET /v1/models HTTP/1.1\r\nhost : x\r\n\r\n`, 'latin1')]);
  add('header', 'obsolete line folding', [Buffer.from(`GET /v1/models HTTP/1.1\r\nhost: x\r\nx-fold: a\r\n b\r\n\r\n`, 'latin1')], { allows: notServerError });
  for (const authorization of ['Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearer a b c', `Bearer ${'t'.repeat(8000)}`, 'bEaReR wrong-token']) {
    // Refused (401) where a token is required; a server without one answers.
    add('header', `authorization ${JSON.stringify(authorization.slice(0, 20))}`, [request('GET', '/v1/models', { authorization })], { allows: notServerError });
  }
  add('header', 'a bare LF request', [Buffer.from(`GET /healthz HTTP/1.1\nhost: x\n\n`, 'latin1')], { allows: notServerError });

  // Bodies that are not JSON: a 400.
  for (const [name, body] of [
    ['empty', ''],
    ['truncated', valid.slice(0, valid.length / 2)],
    ['a BOM first', '\ufeff' + valid],
    ['trailing garbage', valid + '}}}'],
    ['single quotes', valid.replace(/"/g, "'")],
    ['a NUL byte', valid.replace('{', '{\u0000')],
  ] as const) {
    add('json', name, [chat(body)]);
  }
  add('json', 'invalid UTF-8 bytes', [chat(Buffer.from([0x7b, 0xff, 0xfe, 0xc0, 0xaf, 0x7d]))]);
  // JSON that is not a chat request (or an odd one): refused by the schema, or answered by a lenient server; never a 5xx.
  for (const [name, body] of [
    ['null', 'null'],
    ['a string', '"hello"'],
    ['a number', '1e999'],
    ['an array', '[]'],
    ['nested arrays 10,000 deep', '['.repeat(10_000) + ']'.repeat(10_000)],
    ['nested objects 5,000 deep', '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000)],
    ['a deep extra field', valid.replace('{', '{"extra":' + '['.repeat(5_000) + ']'.repeat(5_000) + ',')],
    ['__proto__ keys', '{"__proto__": {"model": "x"}, "constructor": {"prototype": {}}, "messages": 1}'],
    ['model not a string', JSON.stringify({ model: 7, messages: [{ role: 'user', content: 'hi' }] })],
    ['messages an object', JSON.stringify({ ...(JSON.parse(valid) as object), messages: { role: 'user' } })],
    ['content a number', JSON.stringify({ ...(JSON.parse(valid) as object), messages: [{ role: 'user', content: 5 }] })],
    ['an image part', JSON.stringify({ ...(JSON.parse(valid) as object), messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })],
    ['tools garbage', JSON.stringify({ ...(JSON.parse(valid) as object), tools: [{ type: 'function', function: { name: '' } }] })],
    ['10,000 messages', JSON.stringify({ ...(JSON.parse(valid) as object), messages: Array.from({ length: 10_000 }, () => ({ role: 'user', content: 'a' })) })],
  ] as const) {
    add('json', name, [chat(body)], { allows: notServerError, needsAnswer: true });
  }

  // Bodies over the limit: declared, streamed, and chunked.
  const over = target.maxBodyBytes + 1024;
  add('body_limit', 'declared over the limit', [chat('', { 'content-length': String(over) })]);
  add('body_limit', 'declared 1 TB', [chat('', { 'content-length': String(2 ** 40) })]);
  add('body_limit', 'sent over the limit', [chat(chatJson('x'.repeat(over)))]);
  add('body_limit', 'chunked over the limit', [
    Buffer.from(`POST ${target.chatPath} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${Object.entries(target.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('')}transfer-encoding: chunked\r\n\r\n`, 'latin1'),
    ...Array.from({ length: Math.ceil(over / 8192) }, () => `2000\r\n${'y'.repeat(8192)}\r\n`),
    '0\r\n\r\n',
  ]);

  // Well-formed requests whose text is odd: answered or refused by the student, never a 5xx.
  const under = Math.floor(target.maxBodyBytes / 2);
  for (const [name, text] of [
    ['a lone high surrogate', 'wake me up \ud800 at five'],
    ['a lone low surrogate', '\udc00'],
    ['reversed surrogates', '\udc00\ud800'],
    ['combining marks', 'e' + '\u0301'.repeat(4000)],
    ['NUL characters', 'play\u0000music\u0000'],
    ['only whitespace', ' \t\n\r '],
    ['empty', ''],
    ['a huge token', 'a'.repeat(under)],
    ['many short words', 'hi '.repeat(under / 3)],
    ['emoji and ZWJ', '👩‍👩‍👧‍👦🏳️‍🌈'.repeat(200)],
    ['RTL and bidi controls', '\u202eset an alarm\u202c \u05e9\u05dc\u05d5\u05dd'],
    ['non-characters', '\uffff\ufffe\u{10ffff}'],
    ['special-token strings', '<|eos|><|bos|>[CLS][SEP][PAD]<s></s>'],
    ['CJK', '明日の朝五時に起こして'.repeat(100)],
  ] as const) {
    add('unicode', name, [chat(chatJson(text))], { allows: notServerError, needsAnswer: true });
  }
  // JSON escapes of lone surrogates, as a client that does not check its strings sends them.
  add('unicode', 'escaped lone surrogates', [chat(valid.replace('hello', '\\ud83d\\ude00\\ud800 x \\udfff'))], { allows: notServerError, needsAnswer: true });

  // Slow and stalled clients: the server's header and request timeouts must end them.
  const wellFormed = chat(valid);
  const headEnd = wellFormed.indexOf('\r\n\r\n');
  add('slow', 'a connection that never sends', []);
  add('slow', 'half a request line', ['POST /v1/chat']);
  add('slow', 'headers never finished', [wellFormed.subarray(0, headEnd)]);
  add('slow', 'a body never finished', [wellFormed.subarray(0, headEnd + 4 + 5)]);
  add('slow', 'a request trickled byte by byte', Array.from(wellFormed.subarray(0, 60), (b) => Buffer.from([b])), { pauseMs: 100 });

  // Seeded mutations of a valid request: flipped, dropped, duplicated bytes and stray CR/LF.
  for (let i = 0; i < (options.mutations ?? 40); i++) {
    const bytes = [...wellFormed];
    const edits = 1 + Math.floor(random() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(random() * bytes.length);
      const op = Math.floor(random() * 4);
      if (op === 0) bytes[at] = Math.floor(random() * 256);
      else if (op === 1) bytes.splice(at, 1 + Math.floor(random() * 8));
      else if (op === 2) bytes.splice(at, 0, ...bytes.slice(at, at + 1 + Math.floor(random() * 8)));
      else bytes.splice(at, 0, ...(random() < 0.5 ? [13, 10] : [10]));
    }
    // A mutation can leave the request valid (e.g. in the text): any answer but a 5xx.
    add('mutation', `mutation ${i}`, [Buffer.from(bytes)], { allows: notServerError });
  }
  return cases;
}

/** Sends one case on its own connection; resolves with the first response's status, a close, or "hung". */
export function sendCase(port: number, c: FuzzCase, timeoutMs: number): Promise<FuzzOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (answer: FuzzOutcome['answer']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const allows = c.allows ?? is4xx;
      resolve({ kind: c.kind, name: c.name, answer, ok: answer === 'closed' ? !c.needsAnswer : answer !== 'hung' && allows(answer) });
    };
    const timer = setTimeout(() => finish('hung'), timeoutMs);
    /** The first response is complete once its head and content-length bytes of body arrived. */
    const complete = (): number | undefined => {
      const head = received.indexOf('\r\n\r\n');
      if (head < 0) return undefined;
      const text = received.subarray(0, head).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!status) return undefined;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0);
      return received.length >= head + 4 + length ? Number(status[1]) : undefined;
    };
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const status = complete();
      if (status !== undefined) finish(status);
    });
    // A reset while sending (e.g. the server answered 413 and closed) counts as what was received.
    const closed = () => {
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(received.subarray(0, 16).toString('latin1'));
      finish(status ? Number(status[1]) : 'closed');
    };
    socket.on('error', closed);
    socket.on('close', closed);
    const sendPieces = async () => {
      for (const [i, piece] of c.pieces.entries()) {
        if (settled || socket.destroyed) return;
        if (i > 0 && c.pauseMs) await new Promise((r) => setTimeout(r, c.pauseMs));
        socket.write(piece);
      }
    };
    // A write that throws ends the connection; 'close' then counts what was received.
    socket.on('connect', () => {
      sendPieces().catch(() => socket.destroy());
    });
  });
}

/** Runs every case, `concurrency` connections at a time, and counts what they got. */
export async function fuzzServer(port: number, cases: readonly FuzzCase[], options: { concurrency?: number; timeoutMs?: number } = {}): Promise<FuzzReport> {
  const started = Date.now();
  const outcomes: FuzzOutcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++];
      outcomes.push(await sendCase(port, c, options.timeoutMs ?? 10_000));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  const sent = Object.fromEntries(FUZZ_KINDS.map((k) => [k, 0])) as Record<FuzzKind, number>;
  const answers: Record<string, number> = {};
  for (const o of outcomes) {
    sent[o.kind]++;
    answers[String(o.answer)] = (answers[String(o.answer)] ?? 0) + 1;
  }
  return { sent, answers, failures: outcomes.filter((o) => !o.ok), ms: Date.now() - started };
}
