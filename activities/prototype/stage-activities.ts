// Prototype-stage activities: the task data, the teacher labelling in resumable batches, and the
// rejection-sampled dataset (sft.jsonl, preferences.jsonl, rejected.jsonl, stats.json).
import * as path from 'node:path';
import { Context } from '@temporalio/activity';
import type { ArtifactRef } from '../../artifacts/ref';
import { activityOutputKey } from '../output-keys';
import type { PrototypePlan, TaskRef, TeacherClientPlan } from '../../config/plan';
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
  async function teacherFor(taskRef: TaskRef, client: TeacherClientPlan, temperature: number, teacher: ResolvedTeacher, signal: AbortSignal) {
    const { task } = await resources.loadTask({ task: taskRef });
    return createTeacherClient(
      task,
      { ...sharedChatSettings(client, teacher), temperature, cacheDir: path.join(env.dataDir, 'teacher-cache') },
      { signal, stopOnEndpointFault: true, spend: currentPipelineSpend(env.dataDir).guard(teacherBudgetUsd({ teacher: client })) },
    );
  }
  /** The teacher endpoint and model a plan part names, resolved on this worker (the budget within its cap). */
  const resolveTeacher = (task: TaskRef, teacher: { endpoint: string; model: string }, client: TeacherClientPlan) =>
    resources.teacher({ task, teacher: { ...teacher, maxSpendUsd: client.maxSpendUsd } });

  return {
    async prepareTaskData({ plan }: { plan: PrototypePlan['data'] }): Promise<TaskData> {
      // The hashes of the bytes the task's rows were loaded from (never hashed again here: a file edited
      // since would put the old rows under the new hash).
      const { task, hashes, fingerprint, definition } = await resources.loadTask(plan);
      const { trainLimit, devLimit, testLimit } = plan.task;
      // A task with files is keyed by their bytes; one registered with its data in hand, by its spec.
      const inputs: Record<string, unknown> = { data: hashes.data ?? null };
      if (hashes.functions) inputs.functions = hashes.functions;
      if (definition.files.data === 'none') inputs.task = fingerprint;
      const key = await activityOutputKey(env.projectRoot, 'prepareTaskData', { plan, inputs });
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

    async labelBatch({ plan, inputs, batchIndex }: LabelBatchInput): Promise<LabelBatchResult> {
      const { client, ...read } = plan;
      const { batchSize, teacher: t } = plan;
      const resolved = await resolveTeacher(plan.task, t, client);
      const { fingerprint } = await resources.loadTask(plan);
      const key = await activityOutputKey(env.projectRoot, 'labelBatch', {
        plan: read,
        inputs: { inputs: inputs.sha256, batchIndex, task: fingerprint },
        teacher: teacherKeyParts(resolved),
      });
      let resumedFrom = 0;
      const { value, reused } = await withLiveness((live) =>
        store.memo(key, async () => {
          const all = await store.readJsonl<TeacherInput>(inputs);
          const items = all.slice(batchIndex * batchSize, (batchIndex + 1) * batchSize);
          const teacher = await teacherFor(plan.task, client, t.temperature, resolved, live.signal);
          const out = await processResumably<TeacherInput, TeacherResult>({
            store,
            key,
            items,
            chunkSize: Math.max(1, Math.min(items.length, client.concurrency)),
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

    async assembleDataset({ plan, data, batches }: { plan: PrototypePlan['assemble']; data: TaskData; batches: ArtifactRef[] }): Promise<PrototypeResult> {
      const { client, ...read } = plan;
      const { judge: judgePlan, voteThreshold } = plan;
      const { task, goldById, fingerprint } = await resources.loadTask(plan);
      // The judge's answers and cost are part of the output; without a judge the endpoint is not read.
      const judgeTeacher = judgePlan && (await resolveTeacher(plan.task, { endpoint: judgePlan.teacher.endpoint, model: judgePlan.model }, client));
      const labelTeacher = judgePlan && (await resolveTeacher(plan.task, judgePlan.teacher, client));
      const key = await activityOutputKey(env.projectRoot, 'assembleDataset', {
        plan: read,
        inputs: {
          task: fingerprint,
          batches: batches.map((b) => b.sha256),
          dev: data.dev.sha256,
          judge: judgeTeacher ? teacherKeyParts(judgeTeacher) : null,
        },
        teacher: labelTeacher ? teacherKeyParts(labelTeacher) : undefined,
      });
      const { value } = await store.memo(key, async () => {
        const results: TeacherResult[] = [];
        for (const ref of batches) results.push(...(await store.readJsonl<TeacherResult>(ref)));
        let decisions = reviewAll(task, results, { voteThreshold });
        let judgeReport: Parameters<typeof buildStats>[0]['judge'];
        if (judgePlan && judgeTeacher && labelTeacher) {
          const judged = await withLiveness(async (live) => {
            const judge = createJudge(
              task,
              { ...sharedChatSettings(client, judgeTeacher), cacheDir: path.join(env.dataDir, 'judge-cache') },
              { signal: live.signal, stopOnEndpointFault: true, spend: currentPipelineSpend(env.dataDir).guard(teacherBudgetUsd({ teacher: client })) },
            );
            const teacher = await teacherFor(plan.task, client, judgePlan.teacher.temperature, labelTeacher, live.signal);
            try {
              // Agreement with gold is measured on labelled dev samples before any verdict is used.
              const devGold = (await store.readJsonl<GoldExample>(data.dev)).slice(0, judgePlan.devSample);
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
            `the teacher produced no accepted samples for ${results.length} inputs (vote threshold ${voteThreshold}); see rejected.jsonl reasons in the logs`,
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
