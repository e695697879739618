// What the demo pays its teacher, at the teacher SIMULATOR's stand-in prices: the demo's labelling requests
// (every MASSIVE train utterance, n = 5, temperature 0.7) and its evaluation of the teacher (every test
// utterance, n = 1, temperature 0), through the pipeline's teacher client with no request cache. The figure
// behind teacher.maxSpendUsd's default (config/pipeline.ts).
//
//   npx tsx scripts/bench-teacher-spend.ts [--stride N]     (N > 1: every Nth utterance, the total scaled up)
import { parseArgs } from 'node:util';
import { createTeacherClient } from '../activities/prototype';
import { parsePipelineConfig } from '../config/pipeline';
import { SIMULATOR_MODEL, SIMULATOR_PRICES } from '../config/endpoints';
import { startTeacherSimulator } from '../runtime/teacher-simulator';
import { loadMassiveTask } from '../tasks/massive';

async function main() {
  const { values } = parseArgs({ options: { stride: { type: 'string', default: '1' } } });
  const stride = Math.max(1, Number(values.stride));
  const demo = parsePipelineConfig({}).teacher;
  const massive = await loadMassiveTask();
  const simulator = await startTeacherSimulator({ task: massive.task, model: SIMULATOR_MODEL });
  const prices = { inputPerMillionTokens: SIMULATOR_PRICES.inputPerMTok, outputPerMillionTokens: SIMULATOR_PRICES.outputPerMTok };
  let totalUsd = 0;
  try {
    for (const [split, samples, temperature] of [['train', demo.samples, demo.temperature], ['test', 1, 0]] as const) {
      const inputs = massive.examples.filter((e) => e.split === split).map((e) => ({ id: e.id, text: e.utterance }));
      const sample = inputs.filter((_, i) => i % stride === 0);
      const client = createTeacherClient(massive.task, { baseURL: simulator.url, model: SIMULATOR_MODEL, prices, concurrency: demo.concurrency, temperature });
      await client.labelAll(sample, samples);
      const stats = client.stats();
      const usd = (stats.costUsd * inputs.length) / sample.length;
      totalUsd += usd;
      console.log(
        `${split}: ${inputs.length} utterances (${sample.length} asked), n = ${samples}: ${stats.httpRequests} requests, ` +
          `${stats.promptTokens} prompt + ${stats.completionTokens} completion tokens, $${usd.toFixed(2)}`,
      );
    }
    console.log(`the demo's teacher spend: $${totalUsd.toFixed(2)} (teacher.maxSpendUsd default: $${demo.maxSpendUsd})`);
  } finally {
    await simulator.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
