// refreshStudent: from production traffic back to the student. Reads the deployment's current version and the
// traffic, has the teacher label what it has not labelled yet (the pipeline's labelling: request cache, spend
// ledger), trains a candidate from the deployed student's weights on the task's data plus the traffic, runs
// the pipeline's compression and gates, compares candidate and deployed on the frozen split and on a fresh
// slice of the traffic, and promotes the candidate by the deployment's atomic pointer only when the rule in
// refresh-decision.ts says so. Every step is an activity or a stage child workflow: nothing here does I/O.
import { defineQuery, executeChild, patched, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import { z } from 'zod';
import type { ArtifactRef } from '../artifacts/ref';
import { studentFamilyGiven, type PipelineConfig } from '../config/pipeline';
import { pipelinePlan } from '../config/plan';
import type { CompressResult, PrototypeResult, TransferResult } from '../activities/types';
import { queueActivities } from './activity-options';
import { stageProgressSignal, stageWorkflowId, type StageName } from './messages';
import { parseOrFail, RESOLVE_PLAN_PATCH, resolvePlan } from './pipeline';
import { prototypeStage } from './prototype';
import { transferStage } from './transfer';
import { compressStage } from './compress';
import { scoringSteps } from './scoring';
import { checkStageInput } from './stage-input';
import { decidePromotion, type PromotionDecision } from './refresh-decision';

export const RefreshInputSchema = z
  .object({
    /** The deployment folder (runtime/deployments.ts): its current version is the one to beat. */
    deployment: z.string().min(1).max(4096),
    /** Captured traffic (serve --capture's JSONL) or a task-from-files data file: one file or a folder of *.jsonl. */
    traffic: z.string().min(1).max(4096),
    /** The pipeline config as the user wrote it (task, teacher, transfer, compress...): the same as the deployed student's, or one that trains longer. */
    config: z.unknown(),
    /** Share of the traffic's new inputs kept out of training as the fresh slice (by a stable hash of the text). */
    freshShare: z.number().gt(0).lt(1).default(0.3),
    /** Points of frozen exact match the candidate may lose (negative: points it must gain). */
    frozenTolerancePoints: z.number().min(-100).max(100).default(0.5),
    /** Points of fresh exact match the candidate must gain, strictly more than this. */
    freshMinGainPoints: z.number().min(0).max(100).default(0),
  })
  .strict();
export type RefreshInput = z.input<typeof RefreshInputSchema>;

export interface RefreshResult {
  promoted: boolean;
  /** The decision's reason, or why a promotion that the rule allowed was not switched. */
  reason: string;
  deployedVersion: string;
  /** The candidate's version in the deployment (added when promoted). */
  candidateVersion?: string;
  /** The version served when the refresh finished. */
  servingVersion: string;
  decision: PromotionDecision;
  reportPath: string;
}

export interface RefreshProgress {
  step: string;
  done: number;
  total: number;
  /** The running stage child's own step, when one runs. */
  stage?: { stage: StageName; step: string; done: number; total: number };
}

/** A model's row of the fresh slice in the report: exact match, and its cascade (teacher share at 1 point; exact match at 20% and 50% to the teacher). */
function freshRow(s: { exactMatch: number; intentAccuracy: number; teacherShare: number | null; byShare: { teacher_share: number; exact_match: number }[] }) {
  // byShare holds 0%, 5%, ..., 100% in order.
  const at = (share: number) => s.byShare[Math.round(share * 20)]?.exact_match;
  return { exact_match: s.exactMatch, intent_acc: s.intentAccuracy, teacher_share: s.teacherShare, cascade_at_20pct: at(0.2), cascade_at_50pct: at(0.5) };
}

export const refreshProgressQuery = defineQuery<RefreshProgress>('refreshProgress');

const STEPS = ['read deployment', 'read traffic', 'label traffic', 'train candidate', 'compress candidate', 'compare', 'decide', 'report'] as const;

/** How refreshes from before resolvePlan resolved their config: parsed here, checked by an activity, parsed again with the family it chose. */
async function legacyResolution(input: unknown): Promise<PipelineConfig> {
  const config = parseOrFail(input);
  const chooseFamily = !studentFamilyGiven(input);
  const checked = await queueActivities(config, 'cpu').checkPipelineConfig(chooseFamily ? { config, input } : { config });
  return chooseFamily && checked?.studentFamily ? parseOrFail(input, checked.studentFamily.family) : config;
}

export async function refreshStudent(unchecked: RefreshInput): Promise<RefreshResult> {
  const input = checkStageInput('refreshStudent', RefreshInputSchema, unchecked);
  const startedAt = workflowInfo().runStartTime.toISOString();
  const progress: RefreshProgress = { step: 'starting', done: 0, total: STEPS.length };
  setHandler(refreshProgressQuery, () => progress);
  setHandler(stageProgressSignal, (p) => {
    progress.stage = { stage: p.stage, step: p.step, done: p.done, total: p.total };
  });
  const step = (name: (typeof STEPS)[number], detail = '') => {
    Object.assign(progress, { step: name, done: STEPS.indexOf(name), stage: undefined });
    setCurrentDetails(`**refresh**: ${name}${detail ? ` — ${detail}` : ''}`);
  };
  const child = (stage: StageName) => ({ workflowId: stageWorkflowId(workflowInfo().workflowId, stage), taskQueue: workflowInfo().taskQueue });

  // The pipeline's plan, resolved and checked on a worker before anything is paid.
  const { config, ...plan } = patched(RESOLVE_PLAN_PATCH) ? await resolvePlan(input.config) : pipelinePlan(await legacyResolution(input.config));
  const cpu = queueActivities(config, 'cpu');

  step('read deployment');
  const deployed = await cpu.readDeployment({ config, deployment: input.deployment });
  const data = await cpu.prepareTaskData({ plan: plan.prototype.data });

  step('read traffic');
  const traffic = await cpu.readTraffic({ config, traffic: input.traffic, data, freshShare: input.freshShare });

  // The task's own labelled data (memoised: the deployed student's pipeline made it), then the traffic's.
  step('label traffic', `${traffic.counts.train} inputs to train on, ${traffic.counts.fresh} fresh`);
  const base: PrototypeResult = await executeChild(prototypeStage, { ...child('prototype'), args: [{ config }] });
  // The traffic's labels, paid once: labelBatch is the prototype stage's (request cache, spend ledger, resume).
  // Labelled here rather than in a stage child, so that the refresh's spend ledger counts every request.
  const before = await cpu.refreshSpend();
  const batchSize = plan.prototype.label.batchSize;
  const labelAll = async (inputs: ArtifactRef, count: number): Promise<ArtifactRef[]> => {
    const batches: ArtifactRef[] = [];
    const total = Math.ceil(count / batchSize);
    while (batches.length < total) {
      progress.stage = { stage: 'prototype', step: 'label traffic', done: batches.length, total };
      const window = Array.from({ length: Math.min(2, total - batches.length) }, (_, i) => batches.length + i);
      const results = await Promise.all(window.map((batchIndex) => cpu.labelBatch({ plan: plan.prototype.label, inputs, batchIndex })));
      batches.push(...results.map((r) => r.samples));
    }
    return batches;
  };
  // Inputs serve's cascade already had the teacher answer come labelled by that answer (not paid again).
  const answered = (ref: ArtifactRef, count: number) => (count > 0 ? [ref] : []);
  const trainBatches = [...(await labelAll(traffic.train, traffic.counts.trainToLabel)), ...answered(traffic.answered.train, traffic.counts.train - traffic.counts.trainToLabel)];
  const freshBatches = [...(await labelAll(traffic.fresh, traffic.counts.freshToLabel)), ...answered(traffic.answered.fresh, traffic.counts.fresh - traffic.counts.freshToLabel)];
  const after = await cpu.refreshSpend();
  const teacherRequests = await cpu.countTeacherRequests({ batches: [...trainBatches, ...freshBatches] });
  const fresh = await cpu.freshReference({ config, batches: freshBatches });
  const trafficData = trainBatches.length > 0
    ? await cpu.assembleDataset({ plan: plan.prototype.assemble, data: { ...data, train: traffic.train, counts: { ...data.counts, train: traffic.counts.train } }, batches: trainBatches })
    : undefined;
  const training = trafficData ? await cpu.mergeTrainingData({ config, base, traffic: trafficData }) : base;

  step('train candidate', deployed.startNote);
  const transfer: TransferResult = await executeChild(transferStage, {
    ...child('transfer'),
    args: [{ config, prototype: training, ...(deployed.trainedModel ? { startFrom: deployed.trainedModel } : {}) }],
  });
  step('compress candidate');
  const compress: CompressResult = await executeChild(compressStage, { ...child('compress'), args: [{ config, prototype: training, transfer }] });
  const candidate = compress.deployed?.model ?? compress.chosen;

  step('compare', `frozen ${config.evaluate.split} split and ${fresh.count} fresh inputs`);
  const frozenGold = data[config.evaluate.split];
  const scoring = scoringSteps(cpu, plan.score);
  const [frozenDeployed, frozenCandidate] = await Promise.all([deployed.model, candidate].map((model) => scoring.onnx(model, frozenGold)));
  const empty = { exactMatch: 0, intentAccuracy: 0, slotF1: 0, count: 0, teacherShare: null, threshold: null, byShare: [] };
  const [freshDeployed, freshCandidate] =
    fresh.count > 0 ? await Promise.all([deployed.model, candidate].map((model) => scoring.cascade(model, fresh.gold))) : [empty, empty];

  step('decide');
  const decision = decidePromotion(
    { frozen: { deployed: frozenDeployed, candidate: frozenCandidate }, fresh: { deployed: freshDeployed, candidate: freshCandidate } },
    { frozenTolerancePoints: input.frozenTolerancePoints, freshMinGainPoints: input.freshMinGainPoints },
  );
  let promoted = false;
  let candidateVersion: string | undefined;
  let refused: string | undefined;
  if (decision.promote) {
    const switched = await cpu.promoteCandidate({
      deployment: deployed.deployment,
      expectedVersion: deployed.version,
      model: candidate,
      provenance: { trainedModel: transfer.student, family: config.transfer.student.family, refresh: workflowInfo().workflowId, from: deployed.version },
      reason: `refresh ${workflowInfo().workflowId}: ${decision.reason}`,
    });
    promoted = switched.promoted;
    candidateVersion = switched.version;
    refused = switched.refused;
  }
  const servingVersion = promoted ? candidateVersion! : deployed.version;

  step('report');
  const report = await cpu.writeRefreshReport({
    refresh: workflowInfo().workflowId,
    pipeline: config.name,
    startedAt,
    deployment: { path: deployed.deployment, deployed_version: deployed.version, candidate_version: candidateVersion ?? null, serving_after: servingVersion },
    start: { from: deployed.trainedModel ? 'deployed' : 'base', note: deployed.startNote },
    traffic: {
      ...traffic.counts,
      source: input.traffic,
      fresh_with_reference: fresh.count,
      fresh_without_agreement: fresh.withoutAgreement,
      accepted_for_training: Number(training.summary.trafficAccepted ?? 0),
    },
    teacherRequests,
    trafficPaid: { requests: after.paidRequests - before.paidRequests, usd: after.spentUsd - before.spentUsd },
    frozen: {
      split: config.evaluate.split,
      examples: frozenCandidate.count,
      deployed: { exact_match: frozenDeployed.exactMatch, intent_acc: frozenDeployed.intentAccuracy },
      candidate: { exact_match: frozenCandidate.exactMatch, intent_acc: frozenCandidate.intentAccuracy },
    },
    fresh: {
      examples: fresh.count,
      deployed: freshRow(freshDeployed),
      candidate: freshRow(freshCandidate),
    },
    gates: compress.gates,
    decision: { ...decision, promoted, ...(refused ? { refused } : {}) },
  });
  const reason = refused ?? decision.reason;
  Object.assign(progress, { step: 'done', done: STEPS.length, stage: undefined });
  setCurrentDetails(`**${promoted ? 'promoted' : 'kept'}** ${servingVersion}: ${reason} Report: ${report.reportPath}`);
  return { promoted, reason, deployedVersion: deployed.version, ...(candidateVersion ? { candidateVersion } : {}), servingVersion, decision, reportPath: report.reportPath };
}
