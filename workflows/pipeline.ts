// distillationPipeline: prototype -> transfer -> compress -> evaluate, each a child workflow.
// A corrupted or missing artifact re-runs the stage that produced it (its memoised activities redo
// only the broken part); a cancel signal or update stops the running stage cleanly.
import {
  ApplicationFailure,
  CancellationScope,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { collectRefs } from '../artifacts/ref';
import { FailureType } from '../config/failure-types';
import { ARTIFACT_CORRUPTED, ARTIFACT_MISSING, type ArtifactRef } from '../artifacts/ref';
import {
  parsePipelineConfig,
  InvalidConfigError,
  studentFamilyGiven,
  TimeoutsConfigSchema,
  type PipelineConfig,
  type PipelineConfigInput,
  type StudentFamily,
  type StudentFamilyChoice,
} from '../config/pipeline';
import type { PipelinePlan } from '../config/plan';
import type { PipelineResult } from '../activities/types';
import type { SupertinyActivities } from '../activities';
import { activityOptions } from './activity-options';
import {
  cancelSignal,
  cancelUpdate,
  progressQuery,
  STAGE_SEARCH_ATTRIBUTE,
  stageProgressSignal,
  stageWorkflowId,
  STAGES,
  type PipelineProgress,
  type StageName,
} from './messages';
import { prototypeStage } from './prototype';
import { transferStage } from './transfer';
import { compressStage } from './compress';
import { evaluateStage } from './evaluate';

const MAX_RECOVERIES = 3;
const TEACHER_ENDPOINTS_PATCH = 'teacher-endpoints-and-config-check';
const FAMILY_FROM_SCHEMA_PATCH = 'student-family-from-schema';
/** Runs from before the resolvePlan activity resolve their config as they did then (legacyResolution). */
export const RESOLVE_PLAN_PATCH = 'resolve-plan';

/** A config recorded before teacher endpoints were the worker's: its URL, key variable and prices are dropped. */
function withoutLegacyTeacherFields(input: unknown): unknown {
  if (!input || typeof input !== 'object' || !('teacher' in input)) return input;
  const { baseURL: _u, apiKeyEnv: _k, prices: _p, maxSteps: _s, ...teacher } = (input as { teacher: Record<string, unknown> }).teacher ?? {};
  return { ...input, teacher };
}

/** The config, or the InvalidConfigError as a non-retryable failure (the same config fails the same way). */
export function parseOrFail(input: unknown, family?: StudentFamily): PipelineConfig {
  try {
    return parsePipelineConfig(input, family);
  } catch (err) {
    if (err instanceof InvalidConfigError) throw ApplicationFailure.nonRetryable(err.message, FailureType.InvalidConfig, err.issues);
    throw err;
  }
}

/** The config's timeouts, for the activity that resolves it; the defaults where they are not valid (it then names the field). */
export function timeoutsOf(input: unknown): PipelineConfig['timeouts'] {
  const timeouts = TimeoutsConfigSchema.safeParse((input as { timeouts?: unknown } | null | undefined)?.timeouts ?? {});
  return timeouts.success ? timeouts.data : TimeoutsConfigSchema.parse({});
}

/**
 * The run's plan: `input`, the config as the user wrote it, resolved and checked on a worker before anything is
 * paid (endpoint, models, paths inside the worker's roots, and the student family from the task's schema when the
 * config names none). Every stage sees the resolved config, with its family's defaults.
 */
export async function resolvePlan(input: unknown): Promise<PipelinePlan> {
  setCurrentDetails('resolving the config on the worker');
  const plan = await proxyActivities<SupertinyActivities>({ ...activityOptions({ timeouts: timeoutsOf(input) }, 'cpu'), startToCloseTimeout: '2 minutes' }).resolvePlan({
    input,
  });
  if (plan.studentFamily) setCurrentDetails(familyDetails(plan.studentFamily));
  return plan;
}

const familyDetails = (choice: StudentFamilyChoice) => `student family **${choice.family}**, chosen from the task's schema: ${choice.reason}`;

/** How runs from before resolvePlan resolved their config: parsed here, checked by an activity, parsed again with the family it chose. */
async function legacyResolution(input: PipelineConfigInput): Promise<{ config: PipelineConfig; studentFamily?: StudentFamilyChoice }> {
  // Histories from before named teacher endpoints carry the old teacher fields and no config check.
  if (!patched(TEACHER_ENDPOINTS_PATCH)) return { config: parseOrFail(withoutLegacyTeacherFields(input)) };
  // Provisional while the config names no student family: the config check chooses it from the task's schema.
  const config = parseOrFail(input);
  setCurrentDetails('checking the config on the worker');
  const chooseFamily = patched(FAMILY_FROM_SCHEMA_PATCH) && !studentFamilyGiven(input);
  const checked = await proxyActivities<SupertinyActivities>({ ...activityOptions(config, 'cpu'), startToCloseTimeout: '2 minutes' }).checkPipelineConfig(
    chooseFamily ? { config, input } : { config },
  );
  if (!chooseFamily || !checked?.studentFamily) return { config };
  setCurrentDetails(familyDetails(checked.studentFamily));
  return { config: parseOrFail(input, checked.studentFamily.family), studentFamily: checked.studentFamily };
}

export async function distillationPipeline(input: PipelineConfigInput): Promise<PipelineResult> {
  const progress: PipelineProgress = {
    status: 'running',
    stage: 'prototype',
    step: 'starting',
    done: 0,
    total: 0,
    stagesDone: [],
    artifacts: {},
    recoveries: 0,
  };
  const result: PipelineResult = { status: 'completed', recoveries: 0 };
  const producedBy = new Map<string, StageName>();
  const stageScope = new CancellationScope();
  let cancelRequested = false;

  const requestCancel = (reason?: string) => {
    if (cancelRequested) return;
    cancelRequested = true;
    progress.cancelReason = reason ?? 'cancel requested';
    stageScope.cancel();
  };
  setHandler(progressQuery, () => progress);
  setHandler(stageProgressSignal, (p) => {
    if (p.stage === progress.stage) Object.assign(progress, { metrics: undefined, ...p }); // a step's metrics do not outlive it
  });
  setHandler(cancelSignal, requestCancel);
  setHandler(
    cancelUpdate,
    (reason) => {
      requestCancel(reason);
      return { accepted: true as const, stage: progress.stage };
    },
    {
      validator: (_reason: string) => {
        if (progress.status !== 'running') throw new Error(`pipeline already ${progress.status}`);
      },
    },
  );

  const enterStage = (stage: StageName) => {
    Object.assign(progress, { stage, step: 'starting', done: 0, total: 0, counts: undefined });
    upsertSearchAttributes([{ key: STAGE_SEARCH_ATTRIBUTE, value: stage }]);
    setCurrentDetails(`**${stage}**: starting`);
  };
  const child = <T>(stage: StageName, run: (workflowId: string) => Promise<T>): Promise<T> =>
    stageScope.run(() => run(stageWorkflowId(workflowInfo().workflowId, stage)));

  const runStage = async (stage: StageName): Promise<void> => {
    enterStage(stage);
    const opts = (workflowId: string) => ({ workflowId, taskQueue: workflowInfo().taskQueue });
    switch (stage) {
      case 'prototype':
        result.prototype = await child(stage, (id) => executeChild(prototypeStage, { ...opts(id), args: [{ config }] }));
        break;
      case 'transfer':
        result.transfer = await child(stage, (id) =>
          executeChild(transferStage, { ...opts(id), args: [{ config, prototype: result.prototype! }] }),
        );
        break;
      case 'compress':
        result.compress = await child(stage, (id) =>
          executeChild(compressStage, { ...opts(id), args: [{ config, prototype: result.prototype!, transfer: result.transfer! }] }),
        );
        break;
      case 'evaluate':
        result.evaluate = await child(stage, (id) =>
          executeChild(evaluateStage, {
            ...opts(id),
            args: [
              {
                config,
                prototype: result.prototype!,
                transfer: result.transfer!,
                compress: result.compress!,
                ...(result.studentFamily ? { studentFamily: result.studentFamily } : {}),
              },
            ],
          }),
        );
        break;
    }
    for (const ref of collectRefs(result[stage])) if (!producedBy.has(ref.sha256)) producedBy.set(ref.sha256, stage);
    progress.artifacts = { ...progress.artifacts, ...namedRefs(stage, result[stage]) };
    progress.stagesDone = [...progress.stagesDone.filter((s) => s !== stage), stage];
  };

  const { config, studentFamily } = patched(RESOLVE_PLAN_PATCH) ? await resolvePlan(input) : await legacyResolution(input);
  if (studentFamily) result.studentFamily = studentFamily;

  let next = 0;
  while (next < STAGES.length) {
    try {
      await runStage(STAGES[next]);
      next += 1;
    } catch (err) {
      if (cancelRequested && isCancellation(err)) break;
      const broken = findArtifactFailure(err);
      if (!broken || progress.recoveries >= MAX_RECOVERIES) throw err;
      // Re-run from the stage that produced the broken artifact (or the failing stage itself).
      const producer = producedBy.get(broken.sha256) ?? STAGES[next];
      progress.recoveries += 1;
      result.recoveries = progress.recoveries;
      progress.step = `recovering ${broken.kind} ${broken.sha256.slice(0, 12)} from ${producer}`;
      next = STAGES.indexOf(producer);
    }
  }

  if (cancelRequested) {
    progress.status = 'cancelled';
    result.status = 'cancelled';
    result.cancelReason = progress.cancelReason;
    setCurrentDetails(`cancelled during **${progress.stage}**: ${progress.cancelReason}`);
  } else {
    progress.status = 'completed';
    progress.step = 'done';
    upsertSearchAttributes([{ key: STAGE_SEARCH_ATTRIBUTE, value: 'done' }]);
    setCurrentDetails(`done${result.evaluate ? `: report ${result.evaluate.reportPath}` : ''}`);
  }
  return result;
}

function namedRefs(stage: StageName, value: unknown): Record<string, ArtifactRef> {
  const out: Record<string, ArtifactRef> = {};
  if (!value || typeof value !== 'object') return out;
  for (const [name, v] of Object.entries(value)) {
    const refs = collectRefs(v);
    if (refs.length === 1 && refs[0] === v) out[`${stage}.${name}`] = refs[0];
  }
  return out;
}

/** The ArtifactRef named by an ArtifactMissing/ArtifactCorrupted failure anywhere in the cause chain. */
function findArtifactFailure(err: unknown): ArtifactRef | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 10; depth += 1) {
    if (cur instanceof ApplicationFailure && (cur.type === ARTIFACT_CORRUPTED || cur.type === ARTIFACT_MISSING)) {
      const ref = cur.details?.[0] as ArtifactRef | undefined;
      if (ref && typeof ref.sha256 === 'string') return ref;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}
