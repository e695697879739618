// The foundation, end to end on a real Temporal dev server: the pipeline through the plugin, again from
// the Temporal CLI, a replay of its history, and bad input (config, missing and corrupted artifacts).
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { startPipeline, pipelineProgress, cancelPipeline } from '../client';
import { InvalidConfigError } from '../config/pipeline';
import type { SupertinyEnv } from '../config/env';
import { ArtifactStore } from '../artifacts/store';
import type { RunningTeacherSimulator } from '../runtime/teacher-simulator';
import type { PipelineResult } from '../activities/types';
import { progressWithin, withWorkers, workflowBundle } from './support/temporal';
import { usePipelineBed } from './support/pipeline-bed';
import { smallPipelineConfig } from './support/pipeline-config';
import { waitFor } from '../runtime/wait-for';

const run = promisify(execFile);

describe('distillation pipeline on a real Temporal server', () => {
  let server: TestWorkflowEnvironment;
  let env: SupertinyEnv;
  let store: ArtifactStore;
  let simulator: RunningTeacherSimulator;
  let workers: () => Promise<Worker[]>;
  let firstResult: PipelineResult;
  const bed = usePipelineBed('pipeline-test');
  const taskQueue = bed.taskQueue;
  beforeAll(() => ({ server, env, store, simulator, workers } = bed));

  // The decoder's layer pruning (2 layers -> 1, recovered by distillation from the 2-layer model), both
  // quantizations and int4 after training into its grid (decoder-qat, export, int4), each gated against the float graph.
  const config = smallPipelineConfig('plugin-run', { compress: { steps: ['prune-layers', 'int8', 'int4', 'int4-qat'], pruneLayersKeep: 1, pruneLayersEpochs: 1 } });

  test('runs to completion through SupertinyPlugin and reports every model', async () => {
    const handle = await startPipeline(server.client, config, { taskQueue });
    firstResult = await withWorkers(workers, async () => {
      const result = await handle.result();
      const progress = await pipelineProgress(handle);
      expect(progress.status).toBe('completed');
      expect(progress.stagesDone).toEqual(['prototype', 'transfer', 'compress', 'evaluate']);
      return result;
    });
    expect(firstResult.status).toBe('completed');
    const report = JSON.parse(await fs.readFile(firstResult.evaluate!.reportPath, 'utf8'));
    expect(Object.keys(report.models).sort()).toEqual(['student', 'student_int4', 'student_int4-qat', 'student_int8', 'student_onnx', 'teacher']);
    expect(firstResult.compress!.gates.map((g) => g.step)).toEqual(['prune-layers', 'int8', 'int4', 'int4-qat']);
    // The trained int4 is a 4-bit graph of its own (made from the trained folder), not the plain int4's.
    expect(firstResult.compress!['int4-qat']!.sha256).not.toBe(firstResult.compress!.int4!.sha256);
    expect(firstResult.compress!.gates[3].bytesAfter!).toBeLessThan(firstResult.compress!.gates[0].bytesAfter! / 2);
    const pruneLayers = firstResult.compress!.gates[0];
    expect(pruneLayers.bytesAfter!).toBeLessThan(pruneLayers.bytesBefore! * 0.9); // one of two layers gone
    for (const m of Object.values(report.models) as Record<string, number>[]) {
      expect(m.exact_match).toBeGreaterThanOrEqual(0);
      expect(m.exact_match).toBeLessThanOrEqual(1);
      expect(m.latency_ms_p50).toBeGreaterThan(0);
    }
    // The cascade of the served student with the teacher: a curve from no teacher to all teacher.
    // It is named by its row, or where no quantization was kept and layers were pruned, as the float graph it is.
    const allKept = firstResult.compress!.gates.filter((g) => g.kept).map((g) => g.step);
    const kept = allKept.filter((step) => step !== 'prune-layers');
    expect(report.cascade.student).toBe(kept.length > 0 ? `student_${kept[kept.length - 1]}` : allKept.length > 0 ? `the float graph after ${allKept.join(', ')}` : 'student_onnx');
    const points = report.cascade.points as { threshold: number; teacher_share: number; exact_match: number }[];
    expect([points[0].threshold, points[points.length - 1].threshold]).toEqual([0, 1]);
    points.forEach((p, i) => i > 0 && expect(p.teacher_share).toBeGreaterThanOrEqual(points[i - 1].teacher_share));
    expect(report.cascade.teacher_exact_match).toBeCloseTo(report.models.teacher.exact_match, 10);
    // The cost table from measured numbers: the simulator's tokens at its stand-in prices, the student's CPU time.
    expect(report.cost.teacher.simulated).toBe(true);
    expect(report.cost.teacher.prompt_tokens_per_request).toBeGreaterThan(100);
    expect(report.cost.teacher.usd_per_1m_requests).toBeGreaterThan(0);
    expect(report.cost.student.cpu_seconds_per_request).toBeGreaterThan(0);
    expect(report.cost.student.usd_per_1m_requests).toBeLessThan(report.cost.teacher.usd_per_1m_requests);
    expect(report.cost.one_off.teacher_and_judge_usd).toBe(firstResult.prototype!.summary.costUsd);
    const html = await fs.readFile(path.join(path.dirname(firstResult.evaluate!.reportPath), 'report.html'), 'utf8');
    expect(html).toContain('Cost of serving');
    // Spend against the budget: the suite's simulator is fresh, so what it billed (labelling and evaluation)
    // is what this pipeline paid, each answer once, under the one ledger of the pipeline's workflow id. The
    // answers it used cost at least that uncached (a repeated utterance is answered from the cache).
    const billed = simulator.stats();
    const billedUsd = (billed.promptTokens * 0.15 + billed.completionTokens * 0.6) / 1e6;
    expect(report.cost.teacher_spend).toEqual({
      spent_usd: expect.closeTo(billedUsd, 12),
      reserved_usd: expect.closeTo(0, 12),
      paid_requests: billed.chatRequests,
      budget_usd: 25,
      answers_usd: expect.any(Number),
    });
    expect(report.cost.teacher_spend.answers_usd).toBeGreaterThanOrEqual(billedUsd);
    expect(html).toMatch(/Teacher spend: \$0\.\d+ of the \$25\.00 budget/);
    // The plan's estimate beside the run: the paid requests are the ledger's, the trainer's time its own.
    const estimated = Object.fromEntries((report.estimate.rows as { what: string; estimate: number; actual: number | null }[]).map((r) => [r.what, r]));
    expect(estimated['teacher requests (all stages)'].actual).toBe(billed.chatRequests);
    expect(estimated['training CPU time (transfer steps)'].actual).toBeGreaterThan(0);
    expect(estimated['labelling wall time'].actual).toBeGreaterThan(0);
    expect(html).toContain("The plan's estimate against the run");
    const described = await handle.describe();
    expect(described.searchAttributes.SupertinyStage).toEqual(['done']);
    // Every artifact the pipeline returned is in the store with its hash.
    for (const ref of [firstResult.prototype!.sft, firstResult.transfer!.student, firstResult.compress!.onnx]) {
      await expect(store.verify(ref)).resolves.toBeDefined();
    }
  }, 900_000);

  test('runs again from the Temporal CLI, reusing every existing output', async () => {
    const requestsBefore = simulator.stats().chatRequests;
    // The report folder is damaged meanwhile: the reused report writes it again from its artifacts.
    const reportPath = firstResult.evaluate!.reportPath;
    const reportJson = await fs.readFile(reportPath, 'utf8');
    await fs.writeFile(reportPath, reportJson.slice(0, 100));
    await fs.rm(path.join(path.dirname(reportPath), 'report.html'));
    const inputFile = path.join(env.dataDir, 'pipeline.json');
    await fs.writeFile(inputFile, JSON.stringify(config));
    const workflowId = `cli-run-${Date.now()}`;
    const cli = (...args: string[]) => run(env.temporalCli, [...args, '--address', server.address], { maxBuffer: 16 << 20 });
    const output = await withWorkers(workers, async () => {
      await cli('workflow', 'start', '--type', 'distillationPipeline', '--task-queue', taskQueue, '--workflow-id', workflowId, '--input-file', inputFile);
      return (await cli('workflow', 'result', '--workflow-id', workflowId, '--output', 'json')).stdout;
    });
    const result = JSON.parse(output).result as PipelineResult;
    expect(result.status).toBe('completed');
    // Same inputs, same content-addressed outputs; the teacher was not asked again.
    expect(result.prototype!.sft).toEqual(firstResult.prototype!.sft);
    expect(result.transfer!.student).toEqual(firstResult.transfer!.student);
    expect(simulator.stats().chatRequests).toBe(requestsBefore);
    expect(result.evaluate!.reportPath).toBe(reportPath);
    expect(await fs.readFile(reportPath, 'utf8')).toBe(reportJson);
    expect(await fs.readFile(path.join(path.dirname(reportPath), 'report.html'), 'utf8')).toContain('Cost of serving');
  }, 600_000);

  test('a recorded history of the pipeline replays without a determinism error', async () => {
    const workflowId = await firstWorkflowId();
    const history = await server.client.workflow.getHandle(workflowId).fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
    // SUPERTINY_RECORD_HISTORY=path saves this run's history (how test/fixtures/pipeline-history.json was made).
    if (process.env.SUPERTINY_RECORD_HISTORY) {
      const shown = await run(env.temporalCli, ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', server.address], { maxBuffer: 64 << 20 });
      await fs.writeFile(process.env.SUPERTINY_RECORD_HISTORY, JSON.stringify({ workflowId, history: JSON.parse(shown.stdout) }));
    }
    // A history recorded from an earlier version of the workflows: today's code must still replay it.
    const fixture = JSON.parse(await fs.readFile(path.join(__dirname, 'fixtures', 'pipeline-history.json'), 'utf8'));
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, fixture.history, fixture.workflowId);
  }, 120_000);

  test('a history recorded before the student family was chosen from the schema replays, its config naming no family', async () => {
    // Recorded with the workflows of c7d3b79 (the config check, no family choice), started as the Temporal CLI
    // starts it with a config naming no family, terminated once the prototype child had started.
    const fixture = JSON.parse(await fs.readFile(path.join(__dirname, 'fixtures', 'pipeline-history-config-check.json'), 'utf8'));
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, fixture.history, fixture.workflowId);
  }, 120_000);

  /** The messages of an error and of its causes, outermost first. */
  function causeMessages(err: unknown): string[] {
    const chain: string[] = [];
    for (let cur: unknown = err; cur instanceof Error; cur = (cur as { cause?: unknown }).cause) chain.push(cur.message);
    return chain;
  }

  /** The attempt number of every activity a workflow started, in order. */
  async function activityAttempts(workflowId: string) {
    const history = await server.client.workflow.getHandle(workflowId).fetchHistory();
    return history.events?.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt) ?? [];
  }

  async function firstWorkflowId(): Promise<string> {
    for await (const wf of server.client.workflow.list({ query: `WorkflowType = 'distillationPipeline' AND TaskQueue = '${taskQueue}'` })) {
      if (wf.workflowId.startsWith('supertiny-plugin-run')) return wf.workflowId;
    }
    throw new Error('the first pipeline run was not found');
  }

  test('an invalid config is refused at start with the field named', async () => {
    await expect(startPipeline(server.client, { teacher: { samples: 0 } } as never, { taskQueue })).rejects.toThrow(InvalidConfigError);
    await expect(startPipeline(server.client, { transfer: { steps: ['sft', 'magic'] } } as never, { taskQueue })).rejects.toThrow(/transfer\.steps\.1/);
    // Started around the client (as the Temporal CLI can), the workflow's first activity refuses it, at its first attempt.
    const handle = await server.client.workflow.start('distillationPipeline', { taskQueue, workflowId: `bad-config-${Date.now()}`, args: [{ teacher: { samples: 'five' } }] });
    const err = await withWorkers(workers, () => handle.result().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(causeMessages(err).at(-1)).toMatch(/teacher\.samples/);
    expect(await activityAttempts(handle.workflowId)).toEqual([1]);
  }, 120_000);

  test.each([
    ['an endpoint the worker lacks', { teacher: { endpoint: 'attacker' } }, /teacher\.endpoint: no endpoint "attacker"/],
    ['a data file outside the data roots', { task: { dataPath: '/etc/passwd' } }, /task\.dataPath: \/etc\/passwd is outside/],
    ['a base model outside the model roots', { transfer: { student: { baseModelPath: '/etc' } } }, /transfer\.student\.baseModelPath: \/etc is outside/],
  ])('a config with %s fails on the worker before any teacher request, naming the field', async (_label, override, message) => {
    const requestsBefore = simulator.stats().chatRequests;
    const handle = await server.client.workflow.start('distillationPipeline', {
      taskQueue,
      workflowId: `worker-check-${Date.now()}`,
      args: [{ ...smallPipelineConfig('worker-check'), ...override }],
    });
    const err = await withWorkers(workers, () => handle.result().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const chain = causeMessages(err);
    expect(chain[chain.length - 1]).toMatch(message);
    expect(chain.join('\n')).not.toMatch(/root:x:/);
    // Non-retryable: one attempt, and the teacher was never asked.
    expect(await activityAttempts(handle.workflowId)).toEqual([1]);
    expect(simulator.stats().chatRequests).toBe(requestsBefore);
  }, 120_000);

  test('a cancel update stops the pipeline cleanly and kills the running trainer', async () => {
    const config = smallPipelineConfig('cancel-run', { teacher: { temperature: 0.55 }, transfer: { maxSteps: 2000, checkpointEvery: 100 } });
    const handle = await startPipeline(server.client, config, { taskQueue });
    const result = await withWorkers(workers, async () => {
      const work = path.join(env.dataDir, 'artifacts', 'work');
      await waitFor('the sft trainer process to run', async () => {
        const progress = await progressWithin(handle);
        if (progress?.stage !== 'transfer' || progress.step !== 'sft') return false;
        const dirs = (await fs.readdir(work).catch(() => [] as string[])).filter((d) => d.startsWith('trainStudent-sft-'));
        for (const dir of dirs) if (await fs.access(path.join(work, dir, 'trainer.pid')).then(() => true, () => false)) return true;
        return false;
      }, { timeoutMs: 300_000 });
      const ack = await cancelPipeline(handle, 'no longer needed');
      expect(ack).toEqual({ accepted: true, stage: 'transfer' });
      const outcome = await handle.result();
      // Queries are answered by a worker: ask while this one still runs.
      expect(await pipelineProgress(handle)).toMatchObject({ status: 'cancelled', stage: 'transfer' });
      return outcome;
    });
    expect(result).toMatchObject({ status: 'cancelled', cancelReason: 'no longer needed' });
    expect(result.transfer).toBeUndefined();
    // The sft run folder has no trainer left: its pid file goes when the process group is gone.
    const work = path.join(env.dataDir, 'artifacts', 'work');
    const sftRuns = (await fs.readdir(work)).filter((d) => d.startsWith('trainStudent-sft-'));
    expect(sftRuns.length).toBeGreaterThan(0);
    for (const dir of sftRuns) {
      await expect(fs.access(path.join(work, dir, 'trainer.pid'))).rejects.toThrow();
    }
    // A second cancel is refused: the pipeline is no longer running.
    await expect(cancelPipeline(handle, 'again')).rejects.toThrow();
  }, 600_000);

  test.each([
    ['corrupted', (file: string) => fs.writeFile(file, 'not the dataset anymore')],
    ['missing', (file: string) => fs.rm(file)],
  ])('a %s artifact read mid-run makes the producing stage run again', async (label, breakArtifact) => {
    // A new teacher temperature gives a fresh prototype output (new sft.jsonl) and so a fresh transfer.
    const config = smallPipelineConfig(`broken-${label}`, { teacher: { temperature: label === 'missing' ? 0.5 : 0.6 } });
    const handle = await startPipeline(server.client, config, { taskQueue });
    const result = await withWorkers(workers, async () => {
      // Break sft.jsonl as soon as the prototype stage has produced it, before training reads it.
      const sft = await waitFor('the prototype stage to produce sft.jsonl', async () => (await progressWithin(handle))?.artifacts['prototype.sft'], {
        timeoutMs: 600_000,
      });
      await breakArtifact(store.pathOf(sft));
      return handle.result();
    });
    expect(result.status).toBe('completed');
    expect(result.recoveries).toBeGreaterThanOrEqual(1);
    await expect(store.verify(result.prototype!.sft)).resolves.toBeDefined();
  }, 900_000);
});
