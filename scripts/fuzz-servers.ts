// A bounded fuzz of both HTTP servers of the project, each as its own process with its default limits:
// `supertiny serve` (a student folder; by default the tiny random-weight encoder fixture, with a bearer
// token) and the teacher simulator. Raw TCP on 127.0.0.1 only (test/support/http-fuzz.ts: malformed request
// lines, bad headers, bad JSON, bodies over the limit, odd unicode, slow and stalled clients, seeded byte
// mutations). Prints the requests sent by kind, the answers by status, the cases whose answer was not allowed,
// whether the server still answers /healthz and a real request correctly, and its exit code on SIGTERM.
//   npx tsx scripts/fuzz-servers.ts [--model FOLDER] [--rounds 3] [--mutations 150] [--seed 1] [--concurrency 64]
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { readEnv } from '../config/env';
import { loadStudent } from '../runtime/student';
import { callArgumentsObject } from '../tasks/call-format';
import { loadMassiveTask } from '../tasks/massive';
import { FUZZ_KINDS, type FuzzCase, fuzzCorpus, type FuzzReport, fuzzServer } from '../test/support/http-fuzz';

const env = readEnv();
const MODEL_NAME = 'fuzz-student';
const TOKEN = 'fuzz-token-0123456789abcdef0123';
const UTTERANCE = 'wake me up at five am tomorrow';

interface ServerProcess {
  url: string;
  port: number;
  /** Whether the process is still running. */
  alive(): boolean;
  /** Lines the server logged at level ERROR so far. */
  errorLines(): number;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
}

/** Spawns a server and waits for the line that names its URL. */
async function startProcess(args: string[], urlLine: RegExp, extraEnv: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: env.projectRoot, env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let running = true;
  let errors = 0;
  let partial = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    errors += lines.filter((l) => / ERROR +\[/.test(l)).length;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => ((running = false), resolve(code))));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
      const match = urlLine.exec(output);
      if (match) resolve(match[1]);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`${args.join(' ')} exited (${code}):\n${output}`)));
  });
  return {
    url,
    port: Number(new URL(url).port),
    alive: () => running,
    errorLines: () => errors,
    stop: () => (child.kill('SIGTERM'), exited),
  };
}

/** The corpus of every round, each round with its own seed (random bytes and mutations differ). */
function rounds(build: (seed: number) => FuzzCase[], count: number, seed: number): FuzzCase[] {
  return Array.from({ length: count }, (_, i) => build(seed + i)).flat();
}

function printReport(name: string, report: FuzzReport, alive: Record<string, unknown>) {
  const total = Object.values(report.sent).reduce((a, b) => a + b, 0);
  console.log(`\n### ${name}: ${total} requests in ${(report.ms / 1000).toFixed(1)} s`);
  console.log(`| ${FUZZ_KINDS.join(' | ')} |\n|${FUZZ_KINDS.map(() => '---').join('|')}|\n| ${FUZZ_KINDS.map((k) => report.sent[k]).join(' | ')} |`);
  const statuses = Object.keys(report.answers).sort();
  console.log(`\nanswers: ${statuses.map((s) => `${s}: ${report.answers[s]}`).join(', ')}`);
  console.log(`not allowed (a 5xx, a hang, a 2xx to garbage): ${report.failures.length}${report.failures.length ? ` ${JSON.stringify(report.failures.slice(0, 10))}` : ''}`);
  console.log(`after the fuzz: ${JSON.stringify(alive)}`);
}

async function main() {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      mutations: { type: 'string', default: '150' },
      seed: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '64' },
    },
  });
  const roundCount = Number(values.rounds);
  const mutations = Number(values.mutations);
  const seed = Number(values.seed);
  const concurrency = Number(values.concurrency);
  // Stalled clients are cut by the servers' default deadlines (10 s headers, 30 s request): wait past them.
  const timeoutMs = 45_000;
  const massive = await loadMassiveTask({ massivePath: env.massivePath });
  let failed = false;

  // The student server, as `supertiny serve` runs it.
  let tmp: string | undefined;
  let folder = values.model;
  if (!folder) {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'fuzz-servers-'));
    folder = path.join(tmp, MODEL_NAME);
    await promisify(execFile)(env.python, [path.join(env.projectRoot, 'test', 'fixtures', 'make-encoder-fixture.py'), folder, '--massive-names'], { cwd: env.projectRoot });
  }
  try {
    const serve = await startProcess([path.join('cli', 'main.ts'), 'serve', '--model', folder, '--model-name', MODEL_NAME, '--port', '0'], /serving at (http:\S+)/, { SUPERTINY_SERVE_TOKEN: TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const serveCases = rounds(
      (s) => fuzzCorpus({ chatPath: '/v1/chat/completions', chatBody: (text) => ({ model: MODEL_NAME, messages: [{ role: 'user', content: text }] }), headers: auth, maxBodyBytes: 64 * 1024 }, { seed: s, mutations }),
      roundCount,
      seed,
    );
    const serveReport = await fuzzServer(serve.port, serveCases, { concurrency, timeoutMs });
    const health = await fetch(`${serve.url.replace(/\/v1$/, '')}/healthz`);
    const response = await fetch(`${serve.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ model: MODEL_NAME, messages: [{ role: 'user', content: UTTERANCE }] }),
    });
    const answer = (await response.json()) as { choices?: { message: { tool_calls: { function: { name: string; arguments: string } }[] } }[] };
    const student = await loadStudent(folder, { task: massive.task, threads: 1 });
    const reference = await student.predict(UTTERANCE);
    await student.release();
    const got = answer.choices?.[0].message.tool_calls[0].function;
    const correct = got?.name === reference.call?.name && got?.arguments === JSON.stringify(callArgumentsObject(reference.call!));
    const serveAlive = { process: serve.alive(), healthz: health.status, chat: response.status, answer_is_the_runtimes: correct, error_log_lines: serve.errorLines() };
    const serveExit = await serve.stop();
    printReport('supertiny serve (tiny encoder, bearer token, default limits)', serveReport, { ...serveAlive, exit_on_sigterm: serveExit });
    failed ||= serveReport.failures.length > 0 || !serveAlive.process || health.status !== 200 || !correct || serveExit !== 0;
  } finally {
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  }

  // The teacher simulator, as its own process.
  const sim = await startProcess([path.join('runtime', 'teacher-simulator', 'main.ts'), '--port', '0'], /^(http:\S+\/v1)$/m);
  const routeRequest = (text: string) => ({
    model: 'teacher-simulator',
    messages: [
      { role: 'system', content: massive.task.systemPrompt },
      { role: 'user', content: text },
    ],
    tools: massive.task.toolDefinitions(['route_scenario']),
    temperature: 0,
  });
  const simCases = rounds((s) => fuzzCorpus({ chatPath: '/v1/chat/completions', chatBody: routeRequest, maxBodyBytes: 4 * 1024 * 1024 }, { seed: s, mutations }), roundCount, seed);
  const simReport = await fuzzServer(sim.port, simCases, { concurrency, timeoutMs });
  const simHealth = await fetch(`${sim.url.replace(/\/v1$/, '')}/healthz`);
  const simChat = await fetch(`${sim.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(routeRequest(UTTERANCE)) });
  const routed = (await simChat.json()) as { choices?: { message: { tool_calls: { function: { name: string; arguments: string } }[] } }[] };
  const scenario = routed.choices ? JSON.parse(routed.choices[0].message.tool_calls[0].function.arguments).scenario : undefined;
  const simAlive = { process: sim.alive(), healthz: simHealth.status, chat: simChat.status, routed_to: scenario, error_log_lines: sim.errorLines() };
  const simExit = await sim.stop();
  printReport('teacher simulator (default limits)', simReport, { ...simAlive, exit_on_sigterm: simExit });
  failed ||= simReport.failures.length > 0 || !simAlive.process || simHealth.status !== 200 || scenario !== 'alarm';

  console.log(`\n${failed ? 'FAILED' : 'both servers answered every case as allowed and still serve'}`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
