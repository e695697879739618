// Writes examples/request-router/: a task from files derived deterministically from MASSIVE en-US, to show
// what MASSIVE's own task does not have: an enum argument, a number argument and a free-text argument that is
// not a span of the input (plus one span argument).
//   npx tsx scripts/make-example-task.ts [MASSIVE_JSONL] [--train N] [--dev N] [--test N]
// Each utterance becomes one call of route_request:
//   domain        enum     the MASSIVE scenario
//   action        string   free text: the intent's action in words ("alarm_set" -> "set"), rarely in the input
//   entity_count  integer  how many slots the annotation marks
//   first_entity  string   the first slot's value, a span of the input ("x-span": true), when there is one
// The first N utterances of each split, in file order, are taken; the output is the same for the same file.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { readEnv } from '../config/env';
import { loadMassiveExamples, type MassiveExample } from '../tasks/massive';

const OUT = path.join(__dirname, '..', 'examples', 'request-router');

function actionOf(example: MassiveExample): string {
  const action = example.intent.startsWith(`${example.scenario}_`) ? example.intent.slice(example.scenario.length + 1) : example.intent;
  return action.replace(/_/g, ' ');
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { train: { type: 'string', default: '400' }, dev: { type: 'string', default: '100' }, test: { type: 'string', default: '100' } },
  });
  const source = path.resolve(positionals[0] ?? readEnv().massivePath);
  const examples = await loadMassiveExamples(source);
  const limits: Record<string, number> = { train: Number(values.train), dev: Number(values.dev), test: Number(values.test) };
  const scenarios = [...new Set(examples.filter((e) => e.split === 'train').map((e) => e.scenario))].sort();
  const counts: Record<string, number> = { train: 0, dev: 0, test: 0 };
  const rows: string[] = [];
  for (const e of examples) {
    if (counts[e.split] >= limits[e.split] || !scenarios.includes(e.scenario)) continue;
    counts[e.split]++;
    const args: Record<string, unknown> = { domain: e.scenario, action: actionOf(e), entity_count: e.slots.length };
    if (e.slots.length > 0) args.first_entity = e.slots[0].value;
    rows.push(JSON.stringify({ id: `massive-${e.id}`, split: e.split, input: e.utterance, gold: { name: 'route_request', arguments: args } }));
  }
  const functions = {
    name: 'Request router (derived from MASSIVE en-US)',
    systemPrompt:
      'You route the requests of a voice assistant. Call route_request once: the domain of the request, the action asked for in a few words, how many entities (times, places, names, ...) it mentions, and the first of them copied verbatim.',
    tools: [
      {
        type: 'function',
        function: {
          name: 'route_request',
          description: 'Routes one user request to the service that handles it.',
          parameters: {
            type: 'object',
            properties: {
              domain: { type: 'string', enum: scenarios, description: 'The domain of the request' },
              action: { type: 'string', description: 'The action asked for, in a few lower-case words (e.g. "set", "query", "remove")' },
              entity_count: { type: 'integer', minimum: 0, maximum: 20, description: 'How many entities the request mentions' },
              first_entity: { type: 'string', 'x-span': true, description: 'The first entity the request mentions' },
            },
            required: ['domain', 'action', 'entity_count'],
          },
        },
      },
    ],
  };
  await fs.mkdir(OUT, { recursive: true });
  await fs.writeFile(path.join(OUT, 'functions.json'), JSON.stringify(functions, null, 2) + '\n');
  await fs.writeFile(path.join(OUT, 'data.jsonl'), rows.join('\n') + '\n');
  // CC BY 4.0: the license and notice travel with any copy of MASSIVE's text.
  for (const file of ['LICENSE', 'NOTICE.md']) {
    await fs.rm(path.join(OUT, file), { force: true });
    await fs.copyFile(path.join(path.dirname(source), file), path.join(OUT, file));
    await fs.chmod(path.join(OUT, file), 0o644);
  }
  process.stdout.write(`wrote ${rows.length} examples (${JSON.stringify(counts)}) to ${path.relative(process.cwd(), OUT)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
