// Refresh activities: read the deployment and the traffic, turn the teacher's labels of the traffic into
// training rows and a fresh reference, promote a candidate by the deployment's atomic pointer, write the
// refresh's report. Labelling, training, compression and scoring are the pipeline's own activities.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ArtifactRefSchema, type ArtifactRef } from '../../artifacts/ref';
import { joinInside } from '../../artifacts/confined-path';
import type { PipelineConfig } from '../../config/pipeline';
import { addVersion, promote, readCurrent, VERSION_INFO_FILE } from '../../runtime/deployments';
import { pathInRoots } from '../worker-paths';
import type { ActivityDeps } from '../deps';
import { InvalidInputError } from '../failures';
import type { TaskResources } from '../task-resources';
import type { PrototypeResult, TaskData } from '../types';
import type { GoldExample } from '../gold-examples';
import type { TeacherInput, TeacherResult } from '../../runtime/teacher/teacher-client';
import { reviewAll, type PreferenceRow, type SftRow } from '../prototype/rejection-sampling';
import { currentPipelineSpend } from '../teacher/spend-ledger';
import { readTrafficFiles, splitTraffic, trafficFiles, type TrafficCounts, type TrafficInput } from './traffic';
import { renderRefreshHtml, type RefreshReport } from './report';

/** The version a refresh starts from, read from the deployment's current pointer. */
export interface DeployedVersion extends Record<string, unknown> {
  /** The deployment folder's real path. */
  deployment: string;
  version: string;
  /** The version's folder as a directory artifact: what is served, scored the same way as the candidate. */
  model: ArtifactRef;
  /** The trained (PyTorch) folder the version was compressed from, when its provenance names one that is in the store. */
  trainedModel?: ArtifactRef;
  /** Why the candidate starts where it does. */
  startNote: string;
}

export interface RefreshTraffic extends Record<string, unknown> {
  /** TeacherInput lines to label: those the candidate trains on, and those of the fresh slice. */
  train: ArtifactRef;
  fresh: ArtifactRef;
  /** TeacherResult lines of the inputs serve's cascade had the teacher answer (captured): labels not paid again. */
  answered: { train: ArtifactRef; fresh: ArtifactRef };
  /** train and fresh count every input of each part; *ToLabel those the teacher is asked about. */
  counts: TrafficCounts & { train: number; fresh: number; trainToLabel: number; freshToLabel: number; labelsFromCapture: number };
}

/** What a version's deployment-version.json says of where it came from (written by the refresh, and by whoever deploys a pipeline's student). */
export interface VersionProvenance {
  /** The trained PyTorch folder in the artifact store (the pipeline's transfer.student). */
  trainedModel?: ArtifactRef;
  family?: string;
}

export interface PromoteInput {
  deployment: string;
  /** The version the refresh compared against: nothing is switched when the deployment moved meanwhile. */
  expectedVersion: string;
  model: ArtifactRef;
  provenance: VersionProvenance & Record<string, unknown>;
  reason: string;
}

export interface PromoteResult extends Record<string, unknown> {
  promoted: boolean;
  version: string;
  /** Present when nothing was switched although the rule said to. */
  refused?: string;
}

export type RefreshReportInput = Omit<RefreshReport, 'createdAt' | 'wall_seconds' | 'cost'> & { startedAt: string; teacherRequests: number; trafficPaid: { requests: number; usd: number } };

export interface RefreshReportResult extends Record<string, unknown> {
  report: ArtifactRef;
  html: ArtifactRef;
  reportPath: string;
}

const sha12 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

/** The user's text of an sft or preference row (its last user message). */
function userText(messages: readonly { role: string; content?: unknown }[]): string {
  const user = [...messages].reverse().find((m) => m.role === 'user');
  return typeof user?.content === 'string' ? user.content : JSON.stringify(user?.content ?? null);
}

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // called outside an activity (a unit test): nothing to tell
  }
}

export function createRefreshActivities(deps: ActivityDeps, resources: TaskResources) {
  const { store, env } = deps;
  // A deployment is written (new versions, the pointer): it must lie in the data roots or the worker's own data folder.
  const deploymentRoots = () => [...env.dataRoots, path.join(env.dataDir, 'deployments')];
  const deploymentFolder = (dir: string) => pathInRoots('deployment', dir, deploymentRoots(), 'SUPERTINY_DATA_ROOTS or SUPERTINY_DATA_DIR/deployments', 'directory');

  return {
    async readDeployment({ config, deployment }: { config: PipelineConfig; deployment: string }): Promise<DeployedVersion> {
      const dir = await deploymentFolder(deployment);
      const current = await readCurrent(dir);
      if (!current) throw new InvalidInputError(`deployment ${deployment} has no current.json: deploy a student there first (initDeployment)`);
      const model = await store.putDirectory('deployed/dir', current.path);
      let info: VersionProvenance = {};
      let unreadable = '';
      try {
        info = JSON.parse(await fs.readFile(path.join(current.path, VERSION_INFO_FILE), 'utf8')) as VersionProvenance;
      } catch (err) {
        unreadable = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : 'is not valid JSON';
      }
      const family = config.transfer.student.family;
      let trainedModel: ArtifactRef | undefined;
      let startNote: string;
      const named = ArtifactRefSchema.safeParse(info?.trainedModel);
      if (unreadable) {
        startNote = `from the base: version ${current.version}'s ${VERSION_INFO_FILE} ${unreadable}`;
      } else if (!named.success) {
        startNote = `from the base: version ${current.version}'s ${VERSION_INFO_FILE} names no trained model (trainedModel)`;
      } else if (info.family !== undefined && info.family !== family) {
        startNote = `from the base: version ${current.version} is a ${info.family} student and the config trains the ${family} family`;
      } else {
        try {
          await store.verifyDirectory(named.data);
          trainedModel = named.data;
          startNote = `from the deployed student's trained weights (version ${current.version}, trained model ${named.data.sha256.slice(0, 12)})`;
        } catch (err) {
          startNote = `from the base: version ${current.version}'s trained model ${named.data.sha256.slice(0, 12)} is not in this worker's store (${(err as Error).message})`;
        }
      }
      return { deployment: dir, version: current.version, model, ...(trainedModel ? { trainedModel } : {}), startNote };
    },

    async readTraffic({ config, traffic, data, freshShare }: { config: PipelineConfig; traffic: string; data: TaskData; freshShare: number }): Promise<RefreshTraffic> {
      const source = await pathInRoots('traffic', traffic, env.dataRoots, 'SUPERTINY_DATA_ROOTS', 'file or directory');
      const files = await trafficFiles(source);
      const read = await readTrafficFiles(files, (file) => heartbeat({ file: path.basename(file) }));
      const texts = async (ref: ArtifactRef) => new Set((await store.readJsonl<{ text: string }>(ref)).map((r) => r.text.trim()));
      const frozenTexts = new Set([...(await texts(data.dev)), ...(await texts(data.test))]);
      const split = splitTraffic(read.inputs, { freshShare, frozenTexts, trainTexts: await texts(data.train) });
      if (split.train.length + split.fresh.length === 0) {
        throw new InvalidInputError(`traffic: all ${read.inputs.length} distinct inputs of ${traffic} are in the task's frozen splits (dev, test): nothing to learn from or compare on`);
      }
      // An input whose captured line holds the teacher's call (serve's cascade asked it) is labelled by that answer,
      // as one sample, and not paid again; the others go to the teacher. A captured call the task no longer
      // accepts (a changed schema) is asked again rather than trusted.
      const { task } = await resources.loadTask(config);
      const answeredBy = (input: TrafficInput): TeacherResult | undefined => {
        if (!input.teacherCall) return undefined;
        const decoded = task.decodeToolCall(input.teacherCall.name, JSON.stringify(input.teacherCall.arguments), [input.teacherCall.name]);
        if (decoded.kind !== 'call') return undefined;
        const usage = { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 };
        return { id: input.id, text: input.text, samples: [{ index: 0, outcome: 'ok', call: decoded.call, toolSteps: [], offered: [decoded.call.name], steps: 1 }], usage };
      };
      const part = async (rows: TrafficInput[]) => {
        const answered: TeacherResult[] = [];
        const ask: TeacherInput[] = [];
        for (const row of rows) {
          const result = answeredBy(row);
          if (result) answered.push(result);
          else ask.push({ id: row.id, text: row.text });
        }
        return { ask: await store.putJsonl('traffic-inputs', ask), asked: ask.length, answered: await store.putJsonl('teacher-samples', answered), reused: answered.length };
      };
      const train = await part(split.train);
      const fresh = await part(split.fresh);
      return {
        train: train.ask,
        fresh: fresh.ask,
        answered: { train: train.answered, fresh: fresh.answered },
        counts: {
          ...read.counts,
          inFrozenSplits: split.inFrozenSplits,
          newExamples: split.newExamples,
          train: split.train.length,
          fresh: split.fresh.length,
          trainToLabel: train.asked,
          freshToLabel: fresh.asked,
          labelsFromCapture: train.reused + fresh.reused,
        },
      };
    },

    /** What this refresh paid the teacher so far (its spend ledger): the workflow reads it before and after labelling. */
    async refreshSpend(): Promise<{ paidRequests: number; spentUsd: number }> {
      const snapshot = await currentPipelineSpend(env.dataDir).snapshot();
      return { paidRequests: snapshot.paidRequests, spentUsd: snapshot.spentUsd };
    },

    /** Teacher requests behind the labels in `batches` (paid now, earlier, or answered by the request cache). */
    async countTeacherRequests({ batches }: { batches: ArtifactRef[] }): Promise<number> {
      let requests = 0;
      for (const ref of batches) for (const r of await store.readJsonl<TeacherResult>(ref)) requests += r.usage.requests;
      return requests;
    },

    /**
     * The fresh slice's reference: the call the teacher's samples agree on (the pipeline's vote rule), as gold rows.
     * An input without agreement has no reference and is left out (counted).
     */
    async freshReference({ config, batches }: { config: PipelineConfig; batches: ArtifactRef[] }): Promise<{ gold: ArtifactRef; count: number; withoutAgreement: number }> {
      const { task } = await resources.loadTask(config);
      const results: TeacherResult[] = [];
      for (const ref of batches) results.push(...(await store.readJsonl<TeacherResult>(ref)));
      const decisions = reviewAll(task, results, { voteThreshold: config.teacher.voteThreshold });
      const rows: GoldExample[] = decisions.filter((d) => d.accepted && d.winner).map((d) => ({ id: d.id, text: d.text, gold: task.callFormat.print(d.winner!.call) }));
      return { gold: await store.putJsonl('gold/fresh', rows), count: rows.length, withoutAgreement: decisions.length - rows.length };
    },

    /** The task's training data (the deployed student's) plus the traffic's accepted samples; an input in both counts once. */
    async mergeTrainingData({ base, traffic }: { config: PipelineConfig; base: PrototypeResult; traffic: PrototypeResult }): Promise<PrototypeResult> {
      const sft = await store.readJsonl<SftRow>(base.sft);
      const seen = new Set(sft.map((r) => userText(r.messages)));
      const added = (await store.readJsonl<SftRow>(traffic.sft)).filter((r) => !seen.has(userText(r.messages)));
      const preferences = await store.readJsonl<PreferenceRow>(base.preferences);
      const seenPairs = new Set(preferences.map((r) => userText(r.input.messages)));
      const addedPairs = (await store.readJsonl<PreferenceRow>(traffic.preferences)).filter((r) => !seenPairs.has(userText(r.input.messages)));
      const rejected = [...(await store.readJsonl(base.rejected)), ...(await store.readJsonl(traffic.rejected))];
      return {
        data: base.data,
        sft: await store.putJsonl('sft', [...sft, ...added]),
        preferences: await store.putJsonl('preferences', [...preferences, ...addedPairs]),
        rejected: await store.putJsonl('rejected', rejected),
        stats: await store.putJson('stats', { task: await store.readJson(base.stats), traffic: await store.readJson(traffic.stats) }),
        summary: { taskAccepted: sft.length, trafficAccepted: added.length, accepted: sft.length + added.length, costUsd: (base.summary.costUsd ?? 0) + (traffic.summary.costUsd ?? 0) },
      };
    },

    /**
     * Adds the candidate as a version of the deployment and switches the pointer to it (one atomic rename). Idempotent:
     * the same folder is the same version, and a pointer already on it stays. Nothing is switched when the deployment
     * no longer serves the version the candidate was compared with (a rollback or another refresh meanwhile).
     */
    async promoteCandidate({ deployment, expectedVersion, model, provenance, reason }: PromoteInput): Promise<PromoteResult> {
      const dir = await deploymentFolder(deployment);
      const folder = (await store.ensureDirectoryCopy(model, path.join(env.dataDir, 'models', model.sha256))).dir;
      const version = await addVersion(dir, folder, provenance);
      const current = await readCurrent(dir);
      if (current?.version === version) return { promoted: true, version };
      if (current?.version !== expectedVersion) {
        return { promoted: false, version, refused: `the deployment serves ${current?.version ?? 'nothing'} now, not ${expectedVersion} that the candidate was compared with: not switched (run the refresh again)` };
      }
      await promote(dir, version, reason.slice(0, 2000));
      return { promoted: true, version };
    },

    /** report.json and report.html in reports/refresh-<name>-<hash of the workflow id>/, from stored artifacts. */
    async writeRefreshReport(input: RefreshReportInput): Promise<RefreshReportResult> {
      const { startedAt, teacherRequests, trafficPaid, ...rest } = input;
      const spend = await currentPipelineSpend(env.dataDir).snapshot();
      const report: RefreshReport = {
        ...rest,
        cost: {
          teacher_usd: spend.spentUsd,
          teacher_paid_requests: spend.paidRequests,
          traffic_labelling: {
            teacher_requests: teacherRequests,
            paid_now: trafficPaid.requests,
            paid_now_usd: trafficPaid.usd,
            without_paying: Math.max(0, teacherRequests - trafficPaid.requests),
          },
        },
        wall_seconds: (Date.now() - Date.parse(startedAt)) / 1000,
        createdAt: new Date().toISOString(),
      };
      const reportDir = joinInside(path.join(env.dataDir, 'reports'), `refresh-${input.pipeline}-${sha12(input.refresh)}`);
      const result: RefreshReportResult = {
        report: await store.putJson('refresh-report', report),
        html: await store.putBytes('refresh-report-html', renderRefreshHtml(report)),
        reportPath: path.join(reportDir, 'report.json'),
      };
      await store.materializeFile(result.html, path.join(reportDir, 'report.html'));
      await store.materializeFile(result.report, result.reportPath);
      return result;
    },
  };
}
