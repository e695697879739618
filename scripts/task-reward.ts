// Writes the built-in MASSIVE task's reward description (what the trainer's grpo reward reads) to a file:
//   npx tsx scripts/task-reward.ts OUT.json [MASSIVE_JSONL]
import { promises as fs } from 'node:fs';
import { loadMassiveTask } from '../tasks/massive';

async function main(): Promise<void> {
  const [out, massivePath] = process.argv.slice(2);
  if (!out) throw new Error('usage: tsx scripts/task-reward.ts OUT.json [MASSIVE_JSONL]');
  const { task } = await loadMassiveTask(massivePath ? { massivePath } : {});
  await fs.writeFile(out, JSON.stringify(task.rewardDescription()));
  console.error(`wrote ${out}: ${task.functionNames.length} functions`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
