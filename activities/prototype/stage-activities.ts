// Prototype-stage activities: the task data, the teacher labelling in resumable batches, and the
// rejection-sampled dataset (sft.jsonl, preferences.jsonl, rejected.jsonl, stats.json).
import * as path from 'node:path';
import { Context } from '@temporalio/activity';
import type { ArtifactRef } from '../../artifacts/ref';
import { activityOutputKey, CONFIG_READ } from '../output-keys';
import type { PipelineConfig } from '../../config/pipeline';
import { createLogger } from '../../config/logger';
import type { Call } from '../../tasks/call-format';
import type { ActivityDeps } from '../deps';
import { InvalidInputError } from '../failures';
import { withLiveness } from '../liveness';
import { processResumably } from '../resumable';
import type { LabelBatchInput, LabelBatchResult, PrototypeResult, TaskData } from '../types';
import { createTeacherClient, type TeacherInput, type TeacherResult } from '../../runtime/teacher/teacher-client';
import { buildPreferenceRows, buildRejectedRows, buildSftRows, buildStats, reviewAll, applyJudge } from './rejection-sampling';
import { calibrateJudge, createJudge, judgeCalibrationItems } from './judge';
import type { ResolvedTeacher, TaskResources } from '../task-resources';
import { asTeacherFailure } from '../teacher/teacher-outage';
import { currentPipelineSpend, teacherBudgetUsd } from '../teacher/spend-ledger';
import { sharedChatSettings, teacherKeyParts } from '../teacher/settings';
import { goldExamples, parseGold, type GoldExample } from '../gold-examples';

const log = createLogger('prototype');

export function createPrototypeActivities(deps: ActivityDeps, resources: TaskResources) {
  const { store, env } = deps;

  /**
   * Stops with `signal` (the activity's cancellation and deadline), at the first endpoint outage, and before a
   * request that would pass the pipeline's teacher budget.
   */
  async function teacherFor(config: PipelineConfig, teacher: ResolvedTeacher, signal: AbortSignal) {
    const { task } = await resources.loadTask(config);
    return createTeacherClient(
      task,
      {
        ...sharedChatSettings(config.teacher, teacher),
        temperature: config.teacher.temperature,
        cacheDir: path.join(env.dataDir, 'teacher-cache'),
      },
      { signal, stopOnEndpointFault: true, spend: currentPipelineSpend(env.dataDir).guard(teacherBudgetUsd(config)) },
    );
  }

  return {
    async prepareTaskData({ config }: { config: PipelineConfig }): Promise<TaskData> {
      // The hashes of the bytes the task's rows were loaded from (never hashed again here: a file edited
      // since would put the old rows under the new hash).
      const { task, hashes, fingerprint, definition } = await resources.loadTask(config);
      const { trainLimit, devLimit, testLimit } = config.task;
      // A task with files is keyed by their bytes; one registered with its data in hand, by its spec.
      const inputs: Record<string, unknown> = { data: hashes.data ?? null };
      if (hashes.functions) inputs.functions = hashes.functions;
      if (definition.files.data === 'none') inputs.task = fingerprint;
      const key = await activityOutputKey(env.projectRoot, 'prepareTaskData', { config: CONFIG_READ.prepareTaskData(config), inputs });
      const { value } = await store.memo(key, async () => {
        const [train, dev, test] = await Promise.all((['train', 'dev', 'test'] as const).map((s) => task.dataset.load(s)));
        const take = <T>(rows: T[], limit?: number) => (limit ? rows.slice(0, limit) : rows);
        const trainInputs: TeacherInput[] = take(train, trainLimit).map((e) => ({ id: e.id, text: task.input(e) }));
        const devRows = goldExamples(task, take(dev, devLimit));
        const testRows = goldExamples(task, take(test, testLimit));
        return {
          train: await store.putJsonl('inputs', trainInputs),
          dev: await store.putJsonl('gold/dev', devRows),
          test: await store.putJsonl('gold/test', testRows),
          counts: { train: trainInputs.length, dev: devRows.length, test: testRows.length },
        };
      });
      return value as TaskData;
    },

    async labelBatch({ config, inputs, batchIndex, batchSize }: LabelBatchInput): Promise<LabelBatchResult> {
      const t = config.teacher;
      const resolved = await resources.teacher(config);
      const { fingerprint } = await resources.loadTask(config);
      const key = await activityOutputKey(env.projectRoot, 'labelBatch', {
        config: CONFIG_READ.labelBatch(config),
        inputs: { inputs: inputs.sha256, batchIndex, batchSize, task: fingerprint },
        teacher: teacherKeyParts(resolved),
      });
      let resumedFrom = 0;
      const { value, reused } = await withLiveness((live) =>
        store.memo(key, async () => {
          const all = await store.readJsonl<TeacherInput>(inputs);
          const items = all.slice(batchIndex * batchSize, (batchIndex + 1) * batchSize);
          const teacher = await teacherFor(config, resolved, live.signal);
          const out = await processResumably<TeacherInput, TeacherResult>({
            store,
            key,
            items,
            chunkSize: Math.max(1, Math.min(items.length, t.concurrency)),
            processChunk: async (chunk) => {
              const results = await Promise.all(chunk.map((input) => teacher.label(input, t.samples)));
              const counts: Record<string, number> = {};
              for (const r of results) for (const s of r.samples) counts[s.outcome] = (counts[s.outcome] ?? 0) + 1;
              return { results, counts };
            },
          }).catch((err) => {
            throw asTeacherFailure(err, [teacher.chat]);
          });
          resumedFrom = out.resumedFrom;
          if (resumedFrom > 0) log.info(`label batch ${batchIndex}: resumed from item ${resumedFrom} (chunk files)`);
          return {
            samples: await store.putJsonl('teacher-samples', out.results),
            items: items.length,
            resumedFrom,
            counts: out.counts,
          };
        }),
      );
      if (reused) Context.current().log.info(`label batch ${batchIndex}: output exists, skipped`);
      return value as LabelBatchResult;
    },

    async assembleDataset({ config, data, batches }: { config: PipelineConfig; data: TaskData; batches: ArtifactRef[] }): Promise<PrototypeResult> {
      const t = config.teacher;
      const { task, goldById, fingerprint } = await resources.loadTask(config);
      // The judge's answers and cost are part of the output; without a judge the endpoint is not read.
      const key = await activityOutputKey(env.projectRoot, 'assembleDataset', {
        config: CONFIG_READ.assembleDataset(config),
        inputs: {
          task: fingerprint,
          batches: batches.map((b) => b.sha256),
          dev: data.dev.sha256,
          judge: t.judge.enabled ? teacherKeyParts(await resources.teacher(config, t.judge.model)) : null,
        },
        teacher: t.judge.enabled ? teacherKeyParts(await resources.teacher(config)) : undefined,
      });
      const { value } = await store.memo(key, async () => {
        const results: TeacherResult[] = [];
        for (const ref of batches) results.push(...(await store.readJsonl<TeacherResult>(ref)));
        let decisions = reviewAll(task, results, { voteThreshold: t.voteThreshold });
        let judgeReport: Parameters<typeof buildStats>[0]['judge'];
        if (t.judge.enabled) {
          const judged = await withLiveness(async (live) => {
            const judge = createJudge(
              task,
              { ...sharedChatSettings(t, await resources.teacher(config, t.judge.model)), cacheDir: path.join(env.dataDir, 'judge-cache') },
              { signal: live.signal, stopOnEndpointFault: true, spend: currentPipelineSpend(env.dataDir).guard(teacherBudgetUsd(config)) },
            );
            const teacher = await teacherFor(config, await resources.teacher(config), live.signal);
            try {
              // Agreement with gold is measured on labelled dev samples before any verdict is used.
              const devGold = (await store.readJsonl<GoldExample>(data.dev)).slice(0, t.judge.devSample);
              const devResults = await Promise.all(devGold.map((g) => teacher.label({ id: g.id, text: g.text }, 1)));
              const devGoldById = new Map<string, Call>(devGold.map((g) => [g.id, parseGold(task, g)]));
              const calibration = await calibrateJudge(judge, judgeCalibrationItems(task, devResults, devGoldById));
              return { ...(await applyJudge(decisions, judge, calibration)), stats: judge.stats() };
            } catch (err) {
              throw asTeacherFailure(err, [teacher.chat, judge.chat]);
            }
          });
          decisions = judged.decisions;
          judgeReport = { stats: judged.stats, report: judged.report };
        }
        const sftRows = buildSftRows(task, decisions);
        if (sftRows.length === 0) {
          throw new InvalidInputError(
            `the teacher produced no accepted samples for ${results.length} inputs (vote threshold ${t.voteThreshold}); see rejected.jsonl reasons in the logs`,
          );
        }
        const stats = buildStats({ results, decisions, judge: judgeReport, goldById });
        return {
          data,
          sft: await store.putJsonl('sft', sftRows),
          preferences: await store.putJsonl('preferences', buildPreferenceRows(task, decisions)),
          rejected: await store.putJsonl('rejected', buildRejectedRows(decisions)),
          stats: await store.putJson('stats', stats),
          summary: {
            inputs: stats.inputs,
            accepted: sftRows.length,
            acceptanceRate: stats.acceptanceRate,
            costUsd: stats.costUsd.total,
            ...(stats.labelAccuracy ? flattenNumbers('labelAccuracy', stats.labelAccuracy) : {}),
          },
        };
      });
      return value as PrototypeResult;
    },
  };
}

function flattenNumbers(prefix: string, value: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof value === 'number') out[prefix] = value;
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) Object.assign(out, flattenNumbers(`${prefix}.${k}`, v));
  return out;
}
