// Writes the built-in MASSIVE task's description (what the trainer's encoder-sft and grpo read as `task`) to a file:
//   npx tsx scripts/task-description.ts OUT.json [MASSIVE_JSONL]
import { promises as fs } from 'node:fs';
import { loadMassiveTask } from '../tasks/massive';
import { taskDescription, taskDescriptionFile } from '../tasks/task-description';

async function main(): Promise<void> {
  const [out, massivePath] = process.argv.slice(2);
  if (!out) throw new Error('usage: tsx scripts/task-description.ts OUT.json [MASSIVE_JSONL]');
  const { task } = await loadMassiveTask(massivePath ? { massivePath } : {});
  await fs.writeFile(out, taskDescriptionFile(taskDescription(task)).text);
  console.error(`wrote ${out}: ${task.functionNames.length} functions`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
