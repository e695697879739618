// Replays test/fixtures/pipeline-history.json against today's workflow code (a determinism check that
// needs no server): npx tsx scripts/replay-fixture.ts
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../workers/plugin';

async function main() {
  const file = path.join(__dirname, '..', 'test', 'fixtures', 'pipeline-history.json');
  const fixture = JSON.parse(await fs.readFile(file, 'utf8')) as { workflowId: string; history: unknown };
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, fixture.history, fixture.workflowId);
  process.stdout.write(`replayed ${fixture.workflowId} without a determinism error\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
