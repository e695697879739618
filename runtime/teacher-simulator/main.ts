// Starts the TEACHER SIMULATOR alone:
//   npx tsx runtime/teacher-simulator/main.ts --port 8787 [--seed 0] [--model teacher-simulator]
//     [--latency-ms 0] [--rate-429 0] [--rate-500 0] [--retry-after-ms 1000] [--api-key KEY]
//     [--task NAME] [--task-data FILE] [--task-functions FILE]   (a built-in task; default: the default task)
//     [--no-idempotency]  (ignore the Idempotency-Key header, as an endpoint without it does)
import { parseArgs } from 'node:util';
import { createLogger } from '../../config/logger';
import * as path from 'node:path';
import { loadBuiltInTask } from '../../tasks/built-in';
import { startTeacherSimulator } from './server';

const log = createLogger('teacher-simulator');

function numberOption(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`--${name} must be a number, got ${JSON.stringify(raw)}`);
  return value;
}

const USAGE = `usage: npx tsx runtime/teacher-simulator/main.ts [--port 8787] [--host 127.0.0.1] [--seed 0] [--model teacher-simulator]
       [--api-key KEY] [--task NAME [--task-data FILE] [--task-functions FILE]]
       [--latency-ms MS] [--rate-429 P] [--rate-500 P] [--retry-after-ms MS] [--no-idempotency]
A SIMULATOR of a large LLM behind an OpenAI-compatible endpoint: it answers from the task's gold calls through a
seeded error model; its figures are never a real LLM's.
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      seed: { type: 'string', default: '0' },
      model: { type: 'string' },
      'api-key': { type: 'string' },
      task: { type: 'string' },
      'task-data': { type: 'string' },
      'task-functions': { type: 'string' },
      'latency-ms': { type: 'string' },
      'rate-429': { type: 'string' },
      'rate-500': { type: 'string' },
      'retry-after-ms': { type: 'string' },
      'no-idempotency': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const simulator = await startTeacherSimulator({
    port: numberOption(values, 'port'),
    host: values.host,
    seed: values.seed,
    model: values.model,
    apiKey: values['api-key'],
    idempotency: !values['no-idempotency'],
    task: await loadBuiltInTask(values.task, {
      ...(values['task-data'] ? { data: path.resolve(values['task-data']) } : {}),
      ...(values['task-functions'] ? { functions: path.resolve(values['task-functions']) } : {}),
    }),
    faults: {
      latencyMs: numberOption(values, 'latency-ms'),
      rate429: numberOption(values, 'rate-429'),
      rate500: numberOption(values, 'rate-500'),
      retryAfterMs: numberOption(values, 'retry-after-ms'),
    },
  });
  log.info('teacher simulator listening (a simulator of a large LLM, answering from the task\'s gold calls)', { url: simulator.url, model: simulator.model });
  process.stdout.write(`${simulator.url}\n`);
  const stop = () => {
    simulator.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  log.error((err as Error).message);
  process.exit(1);
});
