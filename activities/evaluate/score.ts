// The one scoring activity: a model's answers to a labelled split, scored with the task's own metrics. The model
// answers through the runtime the plan names (onnxruntime-node as served, the trainer's `predict` on a PyTorch
// folder, or the teacher over its API); the first latencySamples inputs are also timed one request at a time.
// Every answer is kept as an artifact, so the report, the cascade and the calibration read them instead of
// asking the model again. The transfer steps' dev scores, the compress gate, the refresh's comparison and every
// row of the report are this activity with another plan.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../artifacts/atomic-write';
import type { ArtifactRef } from '../../artifacts/ref';
import { createLogger } from '../../config/logger';
import { devScorePlan, type ScoreModelPlan, type ScorePlan, type TeacherScorePlan } from '../../config/plan';
import type { Call } from '../../tasks/call-format';
import type { TaskSpec } from '../../tasks/define';
import type { CallMetrics, CallPrediction } from '../../tasks/metrics';
import { loadStudent } from '../../runtime/student';
import { readStudentFamily } from '../../runtime/student/model-folder';
import {
  type Calibration,
  type DecoderSignals,
  type EncoderSignals,
  CALIBRATION_FILE,
  calibratedConfidence,
  calibratedDecoderConfidence,
  expectedCalibrationError,
  fitCalibration,
  fitDecoderCalibration,
  isDecoderSignals,
  rawConfidenceOf,
} from '../../runtime/student/confidence';
import { createTeacherClient, type TeacherClient, type TeacherResult } from '../../runtime/teacher/teacher-client';
import type { ActivityDeps } from '../deps';
import { parseGold, type GoldExample } from '../gold-examples';
import { withLiveness, type ActivityLiveness } from '../liveness';
import { activityOutputKey } from '../output-keys';
import type { ResolvedTeacher, TaskResources } from '../task-resources';
import { sharedChatSettings, teacherKeyParts } from '../teacher/settings';
import { currentPipelineSpend, teacherBudgetUsd } from '../teacher/spend-ledger';
import { asTeacherFailure } from '../teacher/teacher-outage';
import { runTrainer } from '../trainer/trainer-process';
import type { CalibratedModel } from '../types';
import { cascadeCurve, shareCurve, type CascadeScoring } from './cascade';

const log = createLogger('score');

/** One answer of a scored model, a line of ModelScore.answers in the split's order. */
export interface ScoredAnswer {
  id: string;
  /** The answer when it parsed as a valid call of the task. */
  call?: Call;
  schemaValid: boolean;
  /** The student's confidence (the served one: calibrated when the folder carries calibration.json). */
  confidence?: number;
  /** The student's confidence signals (calibration's inputs): the encoder's, or the decoder's when it gave a call. */
  signals?: EncoderSignals | DecoderSignals;
}

/** The cascade of a served model against the gold calls as the teacher's answers (ScoreModelPlan.cascade). */
export interface GoldCascade extends Record<string, unknown> {
  /** The share of requests the cascade must send to the teacher to stay within 1 point of it (null: none is). */
  teacherShare: number | null;
  threshold: number | null;
  /** Exact match when the least confident 0%, 5%, ..., 100% of inputs go to the teacher. */
  byShare: { teacher_share: number; exact_match: number }[];
}

export interface ModelScore extends Record<string, unknown> {
  exactMatch: number;
  intentAccuracy: number;
  slotF1: number;
  schemaValidRate: number;
  count: number;
  /** JSONL of ScoredAnswer, one line per input in the split's order. */
  answers: ArtifactRef;
  /** A model's files: all of them (the compress gate's size), and its weights alone (the report's: model.onnx*, or the PyTorch *.safetensors/*.bin). */
  modelBytes?: number;
  weightBytes?: number;
  /** Single requests, one at a time, on the first latencySamples inputs (absent when none were timed). */
  latency?: { p50: number; p95: number; throughputRps: number; samples: number };
  /** CPU-seconds of this worker answering every input (onnx): the student's cost per request. */
  cpuSeconds?: number;
  /** The PyTorch model's parameters, as the trainer counts them. */
  params?: number | null;
  /** The teacher's: its tokens and requests for these answers. */
  usage?: { promptTokens: number; completionTokens: number; requests: number };
  cascade?: GoldCascade;
}

export interface ScoreModelInput {
  plan: ScoreModelPlan;
  /** The model folder or graph (absent for the teacher). */
  model?: ArtifactRef;
  /** The labelled split (JSONL of GoldExample). */
  gold: ArtifactRef;
}

/** The dev scores of the transfer steps and the compress gate (the result of scoreOnDev and scoreStudentOnDev). */
export interface DevScore extends Record<string, unknown> {
  exactMatch: number;
  intentAccuracy: number;
  slotF1: number;
  schemaValidRate: number;
  count: number;
  /** scoreOnDev: bytes of the scored model's files (the compress gate's size of each step). */
  modelBytes?: number;
}

/** cascadeOnSplit's result: the model's metrics on the split and its cascade's teacher share. */
export interface CascadeOnSplit extends GoldCascade {
  exactMatch: number;
  intentAccuracy: number;
  slotF1: number;
  count: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function latencySummary(latencies: readonly number[]): NonNullable<ModelScore['latency']> {
  const sorted = [...latencies].sort((a, b) => a - b);
  const total = latencies.reduce((a, b) => a + b, 0);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), throughputRps: total > 0 ? (latencies.length / total) * 1000 : 0, samples: latencies.length };
}

/** The task's own metrics of answers on the gold rows (a missing answer counts as wrong). */
export function scoreAnswers(task: TaskSpec<any>, gold: readonly GoldExample[], answers: ReadonlyMap<string, Pick<ScoredAnswer, 'call' | 'schemaValid'>>): CallMetrics {
  const rows: CallPrediction[] = gold.map((g) => {
    const a = answers.get(g.id);
    return { gold: parseGold(task, g), prediction: a?.call, schemaValid: a?.schemaValid ?? false };
  });
  return task.metrics(rows);
}

/** Exact match of one answer as the task counts it, and its call format: what the cascade compares. */
export function cascadeScoring(task: TaskSpec<any>): CascadeScoring {
  return {
    parse: task.callFormat.parse,
    exactMatch: (g, p) => task.metrics([{ gold: g, prediction: p, schemaValid: p !== undefined }]).exactMatch === 1,
  };
}

/**
 * A model's bytes: a file artifact's size; a folder's files summed (the compress gate's size), or with `weights`
 * only the files at its top level whose names it accepts (the report's size).
 */
async function filesBytes(deps: ActivityDeps, model: ArtifactRef, weights?: (name: string) => boolean): Promise<number> {
  if (!model.kind.endsWith('/dir')) return model.bytes;
  const files = (await deps.store.readManifest(model)).files;
  return files.filter((f) => !weights || (!f.path.includes('/') && weights(f.path))).reduce((sum, f) => sum + f.bytes, 0);
}

export function createScoreActivities(deps: ActivityDeps, resources: TaskResources) {
  const { store, env } = deps;

  /** A model folder kept per worker under a path named by its hash, verified against the artifact at each use. */
  async function localFolder(ref: ArtifactRef): Promise<string> {
    const { dir, rebuilt, problem } = await store.ensureDirectoryCopy(ref, path.join(env.dataDir, 'models', ref.sha256));
    if (rebuilt && problem) log.warn(`model copy ${ref.sha256.slice(0, 12)} was damaged (${problem}): rebuilt from the artifact`);
    return dir;
  }

  type Answered = { answers: ScoredAnswer[] } & Pick<ModelScore, 'latency' | 'cpuSeconds' | 'params' | 'usage'>;

  /** The ONNX model as served: one request at a time, tokenization included, then latencySamples timed requests. */
  async function onnxAnswers(task: TaskSpec<any>, model: ArtifactRef, gold: readonly GoldExample[], latencySamples: number, live: ActivityLiveness): Promise<Answered> {
    const student = await loadStudent(await localFolder(model), { task });
    try {
      const cpu = process.cpuUsage();
      // One request at a time, as a lightly loaded server answers: int8's dynamic quantization of activations
      // makes a batched answer depend on its batch-mates (on MASSIVE test, 2820 of 2974 int8 answers matched).
      const out = await student.predictBatch(gold.map((g) => g.text), { batchSize: 1 });
      const used = process.cpuUsage(cpu);
      const answers = gold.map((g, i): ScoredAnswer => {
        const signals = (out[i] as { signals?: EncoderSignals | DecoderSignals }).signals;
        return { id: g.id, ...(out[i].call ? { call: out[i].call } : {}), schemaValid: out[i].call !== undefined, confidence: out[i].confidence, ...(signals ? { signals } : {}) };
      });
      const latencies: number[] = [];
      for (const g of gold.slice(0, latencySamples)) {
        live.signal.throwIfAborted();
        latencies.push((await student.predict(g.text)).latencyMs);
      }
      return { answers, cpuSeconds: (used.user + used.system) / 1e6, ...(latencies.length > 0 ? { latency: latencySummary(latencies) } : {}) };
    } finally {
      await student.release();
    }
  }

  /** The PyTorch student through the trainer's `predict`, each answer parsed and checked against the task. */
  async function trainerAnswers(task: TaskSpec<any>, model: ArtifactRef, gold: readonly GoldExample[], latencySamples: number, runDir: string): Promise<Answered> {
    const modelDir = await localFolder(model);
    const inputsFile = path.join(runDir, 'predict-inputs.jsonl');
    await writeFileAtomic(inputsFile, gold.map((g) => JSON.stringify({ id: g.id, utterance: g.text })).join('\n') + '\n');
    const done = await runTrainer({ env, command: 'predict', runDir, config: { model: modelDir, data: inputsFile, latency_samples: latencySamples } });
    const rows = (await fs.readFile(done.outputs.predictions, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; prediction: string });
    const byId = new Map(rows.map((r) => [r.id, r.prediction]));
    const answers = gold.map((g): ScoredAnswer => {
      const text = byId.get(g.id);
      const parsed = text === undefined ? undefined : task.callFormat.parse(text);
      const valid = parsed !== undefined && parsed.ok && task.validateCall(parsed.call).ok;
      return { id: g.id, ...(valid && parsed.ok ? { call: parsed.call } : {}), schemaValid: valid };
    });
    const m = done.metrics;
    const params = Number(m.parameters ?? NaN);
    const timed = Math.min(latencySamples, gold.length);
    const latency = timed > 0 ? { p50: Number(m.latency_ms_p50), p95: Number(m.latency_ms_p95), throughputRps: Number(m.latency_throughput_rps ?? 0), samples: timed } : undefined;
    return { answers, params: Number.isFinite(params) ? params : null, ...(latency ? { latency } : {}) };
  }

  /**
   * The teacher over its API: each request paid once (the answers are cached), the first latencySamples inputs
   * one at a time with their latency as first paid, so a repeated scoring pays nothing and reports the same.
   * Its requests count against the pipeline's budget; an outage fails the activity, never scores as wrong answers.
   */
  async function teacherAnswers(plan: TeacherScorePlan, resolved: ResolvedTeacher, task: TaskSpec<any>, gold: readonly GoldExample[], live: ActivityLiveness, teachers: TeacherClient[]): Promise<Answered> {
    const teacher = createTeacherClient(
      task,
      { ...sharedChatSettings(plan.client, resolved), temperature: plan.teacher.temperature, recordLatency: true, cacheDir: path.join(env.dataDir, 'teacher-cache') },
      { signal: live.signal, stopOnEndpointFault: true, spend: currentPipelineSpend(env.dataDir).guard(teacherBudgetUsd({ teacher: plan.client })) },
    );
    teachers.push(teacher);
    const timed = gold.slice(0, plan.latencySamples);
    const results: TeacherResult[] = [];
    for (const g of timed) results.push(await teacher.label({ id: g.id, text: g.text }, 1));
    results.push(...(await Promise.all(gold.slice(timed.length).map((g) => teacher.label({ id: g.id, text: g.text }, 1)))));
    const answers = results.map((r): ScoredAnswer => ({ id: r.id, ...(r.samples[0]?.call ? { call: r.samples[0].call } : {}), schemaValid: r.samples[0]?.outcome === 'ok' }));
    const latencies = results.slice(0, timed.length).flatMap((r) => (r.latencyMs === undefined ? [] : [r.latencyMs]));
    const usage = {
      promptTokens: results.reduce((sum, r) => sum + r.usage.promptTokens, 0),
      completionTokens: results.reduce((sum, r) => sum + r.usage.completionTokens, 0),
      requests: results.reduce((sum, r) => sum + r.usage.requests, 0),
    };
    return { answers, usage, ...(latencies.length > 0 ? { latency: latencySummary(latencies) } : {}) };
  }

  /** The activity's work, also called in-process by the evaluation of histories recorded before it existed. */
  async function scoreModel({ plan, model, gold: goldRef }: ScoreModelInput): Promise<ModelScore> {
    if ((plan.runtime === 'teacher') !== (model === undefined)) {
      throw new Error(plan.runtime === 'teacher' ? 'scoring the teacher takes no model artifact' : `scoring with the ${plan.runtime} runtime needs a model artifact`);
    }
    const { task, fingerprint } = await resources.loadTask(plan);
    const { client: _client, ...keyed } = plan as ScoreModelPlan & { client?: unknown };
    const resolved = plan.runtime === 'teacher' ? await resources.teacher({ task: plan.task, teacher: { endpoint: plan.teacher.endpoint, model: plan.teacher.model, maxSpendUsd: plan.client.maxSpendUsd } }) : undefined;
    const key = await activityOutputKey(
      env.projectRoot,
      'scoreModel',
      { plan: keyed, inputs: { model: model?.sha256 ?? null, gold: goldRef.sha256, task: fingerprint }, ...(resolved ? { teacher: teacherKeyParts(resolved) } : {}) },
      plan.runtime,
    );
    const teachers: TeacherClient[] = [];
    const produce = async (live: ActivityLiveness): Promise<ModelScore> => {
      const gold = await store.readJsonl<GoldExample>(goldRef);
      const answered =
        plan.runtime === 'teacher'
          ? await teacherAnswers(plan, resolved!, task, gold, live, teachers)
          : plan.runtime === 'trainer'
            ? await trainerAnswers(task, model!, gold, plan.latencySamples, await store.workDir(key))
            : await onnxAnswers(task, model!, gold, plan.latencySamples, live);
      const { answers, ...measured } = answered;
      const byId = new Map(answers.map((a) => [a.id, a]));
      const m = scoreAnswers(task, gold, byId);
      const score: ModelScore = {
        exactMatch: m.exactMatch,
        intentAccuracy: m.intentAccuracy,
        slotF1: m.slotF1,
        schemaValidRate: m.schemaValidRate,
        count: m.count,
        answers: await store.putJsonl(`answers/${plan.runtime}`, answers),
        ...measured,
      };
      if (model) {
        score.modelBytes = await filesBytes(deps, model);
        score.weightBytes = await filesBytes(deps, model, plan.runtime === 'onnx' ? (n) => n.startsWith('model.onnx') : (n) => n.endsWith('.safetensors') || n.endsWith('.bin'));
      }
      if (plan.runtime !== 'teacher' && plan.cascade) {
        // The refresh's fresh slice: the gold calls are the teacher's labels, so the teacher is the reference and
        // its share is that of the student's answers it must fix.
        const scoring = cascadeScoring(task);
        const inputs = gold.map((g) => ({ gold: g.gold, student: { call: byId.get(g.id)?.call, confidence: byId.get(g.id)?.confidence ?? 0 }, teacher: { call: parseGold(task, g) } }));
        const chosen = cascadeCurve('student', inputs, undefined, scoring).chosen;
        score.cascade = { teacherShare: chosen?.teacher_share ?? null, threshold: chosen?.threshold ?? null, byShare: shareCurve(inputs, scoring) };
      }
      return score;
    };
    // Beats every few seconds (teacher requests, predict, ONNX) and stops on cancellation.
    const { value } = await withLiveness((live) => store.memo(key, () => produce(live))).catch((err) => {
      throw plan.runtime === 'teacher' ? asTeacherFailure(err, teachers.map((t) => t.chat)) : err;
    });
    return value;
  }

  /** The answers of a ModelScore, by input id. */
  async function answersOf(score: Pick<ModelScore, 'answers'>): Promise<Map<string, ScoredAnswer>> {
    return new Map((await store.readJsonl<ScoredAnswer>(score.answers)).map((a) => [a.id, a]));
  }

  const devScore = ({ exactMatch, intentAccuracy, slotF1, schemaValidRate, count }: ModelScore): DevScore => ({ exactMatch, intentAccuracy, slotF1, schemaValidRate, count });

  return {
    scoreModel,
    answersOf,

    // The scoring activities of histories recorded before scoreModel (patch `score-model`): its results in their shapes.
    /** Dev quality of a PyTorch checkpoint after a transfer step. */
    async scoreStudentOnDev({ plan, model, dev }: { plan: ScorePlan; model: ArtifactRef; dev: ArtifactRef }): Promise<DevScore> {
      return devScore(await scoreModel({ plan: devScorePlan(plan, 'trainer'), model, gold: dev }));
    },
    /** Dev quality of an ONNX model with its files' bytes (the compress gate). */
    async scoreOnDev({ plan, model, dev }: { plan: ScorePlan; model: ArtifactRef; dev: ArtifactRef }): Promise<DevScore> {
      const score = await scoreModel({ plan: devScorePlan(plan, 'onnx'), model, gold: dev });
      return { ...devScore(score), modelBytes: score.modelBytes };
    },
    /** A served model on a labelled split with its cascade against the gold calls (the refresh). */
    async cascadeOnSplit({ plan, model, gold }: { plan: ScorePlan; model: ArtifactRef; gold: ArtifactRef }): Promise<CascadeOnSplit> {
      const score = await scoreModel({ plan: { ...devScorePlan(plan, 'onnx'), cascade: true }, model, gold });
      return { exactMatch: score.exactMatch, intentAccuracy: score.intentAccuracy, slotF1: score.slotF1, count: score.count, ...score.cascade! };
    },

    /**
     * The folder to deploy: the chosen model with calibration.json, a logistic regression of exact match on its
     * confidence signals (the encoder's or the decoder's) fitted on the dev split (the answers of its dev scoring), so
     * that its confidence ranks its own errors and the cascade's threshold is a probability of being right. Dev
     * answers all right or all wrong, or too few, keep the model as it is.
     */
    async calibrateConfidence({ plan, model, dev }: { plan: ScorePlan; model: ArtifactRef; dev: ArtifactRef }): Promise<CalibratedModel> {
      const { task, fingerprint } = await resources.loadTask(plan);
      const key = await activityOutputKey(env.projectRoot, 'calibrateConfidence', { plan, inputs: { model: model.sha256, dev: dev.sha256, task: fingerprint } });
      const { value } = await store.memo(key, async (): Promise<CalibratedModel> => {
        // The folder's family from its description, without loading a session for it.
        const family = await readStudentFamily(await localFolder(model));
        // The gate scored this model on dev already: its answers (one request at a time, as the server answers).
        const score = await scoreModel({ plan: devScorePlan(plan, 'onnx'), model, gold: dev });
        const answers = await answersOf(score);
        const gold = await store.readJsonl<GoldExample>(dev);
        const rows = gold.flatMap((g) => {
          const a = answers.get(g.id);
          if (!a?.call || !a.signals || isDecoderSignals(a.signals) !== (family === 'decoder')) return [];
          return [{ signals: a.signals, correct: task.metrics([{ gold: parseGold(task, g), prediction: a.call, schemaValid: true }]).exactMatch === 1 }];
        });
        let calibration: Calibration;
        try {
          calibration =
            family === 'decoder'
              ? fitDecoderCalibration(rows as { signals: DecoderSignals; correct: boolean }[], 'dev')
              : fitCalibration(rows as { signals: EncoderSignals; correct: boolean }[], 'dev');
        } catch (error) {
          return { model, skipped: (error as Error).message };
        }
        const calibrated = (s: EncoderSignals | DecoderSignals) => (isDecoderSignals(s) ? calibratedDecoderConfidence(calibration, s) : calibratedConfidence(calibration, s));
        const eceRaw = expectedCalibrationError(rows.map((r) => ({ confidence: rawConfidenceOf(r.signals), correct: r.correct })));
        const eceCalibrated = expectedCalibrationError(rows.map((r) => ({ confidence: calibrated(r.signals), correct: r.correct })));
        const deployed = await store.withFile(model, CALIBRATION_FILE, JSON.stringify(calibration, null, 2) + '\n');
        return { model: deployed, calibration: { examples: rows.length, exactMatch: calibration.fitted.exact_match, eceRaw, eceCalibrated } };
      });
      return value;
    },
  };
}
