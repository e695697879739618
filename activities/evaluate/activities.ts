// The one evaluator: scores the teacher (over its API), the PyTorch student (trainer `predict`) and the
// ONNX students (onnxruntime-node) with the same metrics, measures single-request latency, and writes
// report.json and report.html.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../artifacts/atomic-write';
import type { ArtifactRef } from '../../artifacts/ref';
import type { ArtifactStore } from '../../artifacts/store';
import { joinInside } from '../../artifacts/confined-path';
import { createLogger } from '../../config/logger';
import { QUANTIZATION_NAMES, type PipelineConfig, type Quantization, type StudentFamilyChoice } from '../../config/pipeline';
import type { ScorePlan } from '../../config/plan';
import { ENCODER_BASES, registryBaseOf, type EncoderBaseName } from '../../config/encoder-bases';
import type { Call } from '../../tasks/call-format';
import type { TaskSpec } from '../../tasks/define';
import type { CallMetrics, CallPrediction } from '../../tasks/metrics';
import { loadStudent } from '../../runtime/student';
import type { ActivityDeps } from '../deps';
import { withLiveness, type ActivityLiveness } from '../liveness';
import type { CalibratedModel, CompressResult, EvaluateResult, PrototypeResult, TransferResult } from '../types';
import { EncoderStudent, type EncoderPrediction } from '../../runtime/student/encoder-model';
import { type Calibration, type EncoderSignals, CALIBRATION_FILE, calibratedConfidence, expectedCalibrationError, fitCalibration, rawConfidence } from '../../runtime/student/confidence';
import { parseGold, type GoldExample } from '../gold-examples';
import { sharedChatSettings, teacherKeyParts } from '../teacher/settings';
import { createTeacherClient, type TeacherClient, type TeacherResult } from '../../runtime/teacher/teacher-client';
import { asTeacherFailure } from '../teacher/teacher-outage';
import { currentPipelineSpend, teacherBudgetUsd } from '../teacher/spend-ledger';
import type { TaskResources, TaskSource } from '../task-resources';
import { runTrainer } from '../trainer/trainer-process';
import { activityOutputKey } from '../output-keys';
import { cascadeCurve, shareCurve, type CascadeScoring } from './cascade';
import { costReport } from './cost';
import { estimateVsActual, folderTreeBytes, labellingSpan } from './estimate-vs-actual';
import { renderReportHtml, type ModelName, type ModelReport, type PipelineReport } from './report';
import { predictionRow, type PredictionRow } from './predictions';

const log = createLogger('evaluate');

export interface DevScore extends Record<string, unknown> {
  exactMatch: number;
  intentAccuracy: number;
  slotF1: number;
  schemaValidRate: number;
  count: number;
  /** scoreOnDev: bytes of the scored model's files (the compress gate's size of each step). */
  modelBytes?: number;
}

/** cascadeOnSplit's result: the model's metrics on the split and its cascade's teacher share (null: no threshold is within 1 point). */
export interface CascadeOnSplit extends Record<string, unknown> {
  exactMatch: number;
  intentAccuracy: number;
  slotF1: number;
  count: number;
  teacherShare: number | null;
  threshold: number | null;
  /** Exact match when the least confident 0%, 5%, ..., 100% of inputs go to the teacher. */
  byShare: { teacher_share: number; exact_match: number }[];
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

function latencySummary(latencies: number[]): Pick<ModelReport, 'latency_ms_p50' | 'latency_ms_p95' | 'throughput_rps'> {
  const sorted = [...latencies].sort((a, b) => a - b);
  const total = latencies.reduce((a, b) => a + b, 0);
  return { latency_ms_p50: percentile(sorted, 50), latency_ms_p95: percentile(sorted, 95), throughput_rps: total > 0 ? (latencies.length / total) * 1000 : 0 };
}

type Predictions = Map<string, { call?: Call; schemaValid: boolean }>;

/** Each gold row with its prediction, the gold read back with the task's own call format. */
function scoreRows(task: TaskSpec<any>, gold: readonly GoldExample[], predictions: Predictions): CallPrediction[] {
  return gold.map((g) => {
    const p = predictions.get(g.id);
    return { gold: parseGold(task, g), prediction: p?.call, schemaValid: p?.schemaValid ?? false };
  });
}

/** The task's own metrics of a model's predictions on the gold rows. */
function scoreWith(task: TaskSpec<any>, gold: readonly GoldExample[], predictions: Predictions): CallMetrics {
  return task.metrics(scoreRows(task, gold, predictions));
}

async function folderBytes(dir: string, match: (name: string) => boolean): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    if (entry.isFile() && match(entry.name)) total += (await fs.stat(path.join(dir, entry.name))).size;
  }
  return total;
}

/**
 * Writes the report folder (`reportPath` and its siblings) from the report's artifacts, each file whole and
 * verified. Runs whether the report was just made or reused from its memo, so the folder the CLI prints is
 * restored when it was lost or damaged. report.json goes last: when it is there, its siblings are too.
 */
export async function publishReport(store: ArtifactStore, result: EvaluateResult): Promise<void> {
  const reportDir = path.dirname(result.reportPath);
  for (const [name, ref] of Object.entries(result.predictions ?? {})) await store.materializeFile(ref, joinInside(reportDir, `predictions-${name}.jsonl`));
  await store.materializeFile(result.html, path.join(reportDir, 'report.html'));
  // The folder to serve (the chosen model with its calibration), verified and rebuilt whole when damaged.
  if (result.student) await store.ensureDirectoryCopy(result.student, path.join(reportDir, 'student'));
  await store.materializeFile(result.report, result.reportPath);
}

export function createEvaluateActivities(deps: ActivityDeps, resources: TaskResources) {
  const { store, env } = deps;

  /** A model folder kept per worker under a path named by its hash, verified against the artifact at each use. */
  async function localFolder(ref: ArtifactRef): Promise<string> {
    const { dir, rebuilt, problem } = await store.ensureDirectoryCopy(ref, path.join(env.dataDir, 'models', ref.sha256));
    if (rebuilt && problem) log.warn(`model copy ${ref.sha256.slice(0, 12)} was damaged (${problem}): rebuilt from the artifact`);
    return dir;
  }

  async function onnxPredictions(source: TaskSource, ref: ArtifactRef, gold: readonly GoldExample[]) {
    const { task } = await resources.loadTask(source);
    const folder = await localFolder(ref);
    const model = await loadStudent(folder, { task });
    try {
      const cpu = process.cpuUsage();
      // One request at a time, as a lightly loaded server answers: int8's dynamic quantization of activations
      // makes a batched answer depend on its batch-mates (on MASSIVE test, 2820 of 2974 int8 answers matched).
      const out = await model.predictBatch(gold.map((g) => g.text), { batchSize: 1 });
      const used = process.cpuUsage(cpu);
      const predictions = new Map(
        gold.map((g, i) => {
          const signals = (out[i] as Partial<EncoderPrediction>).signals;
          const answer: { call?: Call; schemaValid: boolean; confidence: number; signals?: EncoderSignals } = { call: out[i].call, schemaValid: out[i].call !== undefined, confidence: out[i].confidence };
          if (signals) answer.signals = signals;
          return [g.id, answer] as const;
        }),
      );
      return { model, predictions, folder, cpuSeconds: (used.user + used.system) / 1e6 };
    } catch (err) {
      await model.release();
      throw err;
    }
  }

  /** The PyTorch student's answers through the trainer's `predict`, parsed and checked against the task. */
  async function predictWithTrainer(source: TaskSource, model: ArtifactRef, gold: readonly GoldExample[], latencySamples: number, runDir: string) {
    const { task } = await resources.loadTask(source);
    const modelDir = await localFolder(model);
    const inputsFile = path.join(runDir, 'predict-inputs.jsonl');
    await writeFileAtomic(inputsFile, gold.map((g) => JSON.stringify({ id: g.id, utterance: g.text })).join('\n') + '\n');
    const done = await runTrainer({ env, command: 'predict', runDir, config: { model: modelDir, data: inputsFile, latency_samples: latencySamples } });
    const rows = (await fs.readFile(done.outputs.predictions, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; prediction: string });
    const predictions = new Map(
      rows.map((r) => {
        const parsed = task.callFormat.parse(r.prediction);
        const valid = parsed.ok && task.validateCall(parsed.call).ok;
        return [r.id, { call: valid && parsed.ok ? parsed.call : undefined, schemaValid: valid }];
      }),
    );
    return { predictions, metrics: done.metrics };
  }

  return {
    /** Dev quality of a PyTorch checkpoint after a transfer step, so the value of each step is visible. */
    async scoreStudentOnDev({ plan, model, dev }: { plan: ScorePlan; model: ArtifactRef; dev: ArtifactRef }): Promise<DevScore> {
      const { task, fingerprint } = await resources.loadTask(plan);
      const key = await activityOutputKey(env.projectRoot, 'scoreStudentOnDev', {
        plan,
        inputs: { model: model.sha256, dev: dev.sha256, task: fingerprint },
      });
      const { value } = await store.memo(key, async () => {
        const gold = await store.readJsonl<GoldExample>(dev);
        const { predictions } = await predictWithTrainer(plan, model, gold, 0, await store.workDir(key));
        const m = scoreWith(task, gold, predictions);
        return { score: await store.putJson('dev-score', m), exactMatch: m.exactMatch, intentAccuracy: m.intentAccuracy, slotF1: m.slotF1, schemaValidRate: m.schemaValidRate, count: m.count };
      });
      const { score: _score, ...rest } = value;
      return rest as DevScore;
    },

    async scoreOnDev({ plan, model, dev }: { plan: ScorePlan; model: ArtifactRef; dev: ArtifactRef }): Promise<DevScore> {
      const { task, fingerprint } = await resources.loadTask(plan);
      const key = await activityOutputKey(env.projectRoot, 'scoreOnDev', { plan, inputs: { model: model.sha256, dev: dev.sha256, task: fingerprint } });
      const { value } = await store.memo(key, async () => {
        const gold = await store.readJsonl<GoldExample>(dev);
        const { model: session, predictions } = await onnxPredictions(plan, model, gold);
        await session.release();
        const m = scoreWith(task, gold, predictions);
        return { score: await store.putJson('dev-score', m), exactMatch: m.exactMatch, intentAccuracy: m.intentAccuracy, slotF1: m.slotF1, schemaValidRate: m.schemaValidRate, count: m.count };
      });
      const { score: _score, ...rest } = value;
      // A directory artifact's ref counts its manifest's bytes; the gate reports the files' total.
      const modelBytes = model.kind.endsWith('/dir')
        ? (await store.readManifest(model)).files.reduce((sum, f) => sum + f.bytes, 0)
        : model.bytes;
      return { ...(rest as DevScore), modelBytes };
    },

    /**
     * A served model on a labelled split with its cascade: exact match alone, and the share of requests the
     * cascade (its confidence against a threshold, as `serve --cascade-threshold` does) must send to the teacher
     * to stay within 1 point of it. The refresh calls it on the fresh slice, whose gold calls are the teacher's
     * labels: there the teacher is the reference, so its share is that of the student's answers it must fix.
     */
    async cascadeOnSplit({ plan, model, gold: goldRef }: { plan: ScorePlan; model: ArtifactRef; gold: ArtifactRef }): Promise<CascadeOnSplit> {
      const { task, fingerprint } = await resources.loadTask(plan);
      const key = await activityOutputKey(env.projectRoot, 'cascadeOnSplit', { plan, inputs: { model: model.sha256, gold: goldRef.sha256, task: fingerprint } });
      const { value } = await store.memo(key, async (): Promise<CascadeOnSplit> => {
        const gold = await store.readJsonl<GoldExample>(goldRef);
        const { model: session, predictions } = await onnxPredictions(plan, model, gold);
        await session.release();
        const m = scoreWith(task, gold, predictions);
        const scoring: CascadeScoring = {
          parse: task.callFormat.parse,
          exactMatch: (g, p) => task.metrics([{ gold: g, prediction: p, schemaValid: p !== undefined }]).exactMatch === 1,
        };
        const inputs = gold.map((g) => ({ gold: g.gold, student: predictions.get(g.id) ?? { confidence: 0 }, teacher: { call: parseGold(task, g) } }));
        const cascade = cascadeCurve('student', inputs, undefined, scoring);
        return {
          exactMatch: m.exactMatch,
          intentAccuracy: m.intentAccuracy,
          slotF1: m.slotF1,
          count: m.count,
          teacherShare: cascade.chosen?.teacher_share ?? null,
          threshold: cascade.chosen?.threshold ?? null,
          byShare: shareCurve(inputs, scoring),
        };
      });
      return value;
    },

    /**
     * The folder to deploy: the chosen encoder with calibration.json, a logistic regression of exact match on its
     * confidence signals fitted on the dev split, so that its confidence ranks its own errors and the cascade's
     * threshold is a probability of being right. A decoder, or dev answers all right or all wrong, keep the model as it is.
     */
    async calibrateConfidence({ plan, model, dev }: { plan: ScorePlan; model: ArtifactRef; dev: ArtifactRef }): Promise<CalibratedModel> {
      const { task, fingerprint } = await resources.loadTask(plan);
      const key = await activityOutputKey(env.projectRoot, 'calibrateConfidence', { plan, inputs: { model: model.sha256, dev: dev.sha256, task: fingerprint } });
      const { value } = await store.memo(key, async (): Promise<CalibratedModel> => {
        const gold = await store.readJsonl<GoldExample>(dev);
        const student = await loadStudent(await localFolder(model), { task });
        try {
          if (!(student instanceof EncoderStudent)) return { model, skipped: `the ${student.family} family's confidence is not calibrated` };
          // One request at a time, as the server answers (int8's activation scales depend on the batch).
          const out = await student.predictBatch(gold.map((g) => g.text), { batchSize: 1 });
          const rows = gold.flatMap((g, i) => {
            const call = out[i].call;
            return call ? [{ signals: out[i].signals, correct: task.metrics([{ gold: parseGold(task, g), prediction: call, schemaValid: true }]).exactMatch === 1 }] : [];
          });
          let calibration: Calibration;
          try {
            calibration = fitCalibration(rows, 'dev');
          } catch (error) {
            return { model, skipped: (error as Error).message };
          }
          const eceRaw = expectedCalibrationError(rows.map((r) => ({ confidence: rawConfidence(r.signals), correct: r.correct })));
          const eceCalibrated = expectedCalibrationError(rows.map((r) => ({ confidence: calibratedConfidence(calibration, r.signals), correct: r.correct })));
          const deployed = await store.withFile(model, CALIBRATION_FILE, JSON.stringify(calibration, null, 2) + '\n');
          return { model: deployed, calibration: { examples: rows.length, exactMatch: calibration.fitted.exact_match, eceRaw, eceCalibrated } };
        } finally {
          await student.release();
        }
      });
      return value;
    },

    async evaluateModels(input: {
      config: PipelineConfig;
      prototype: PrototypeResult;
      transfer: TransferResult;
      compress: CompressResult;
      studentFamily?: StudentFamilyChoice;
    }): Promise<EvaluateResult> {
      const { config, prototype, transfer, compress, studentFamily } = input;
      const split = config.evaluate.split;
      const goldRef = prototype.data[split];
      const resolved = await resources.teacher(config);
      const { task, files, fingerprint } = await resources.loadTask(config);
      // Everything the report shows: the whole config, the gates and the transfer metrics are in it too.
      // The quantized models (QUANTIZATIONS' order), each a row of the report.
      const quantizations = QUANTIZATION_NAMES.filter((q) => compress[q]);
      const key = await activityOutputKey(env.projectRoot, 'evaluateModels', {
        plan: config,
        inputs: {
          task: fingerprint,
          gold: goldRef.sha256,
          transferSteps: transfer.steps.map((s) => ({ step: s.step, model: s.model.sha256, metrics: s.metrics })),
          gates: compress.gates,
          chosen: compress.chosen.sha256,
          student: transfer.student.sha256,
          onnx: compress.onnx.sha256,
          quantized: Object.fromEntries(quantizations.map((q) => [q, compress[q]!.sha256])),
          ...(compress.deployed ? { deployed: compress.deployed.model.sha256 } : {}),
          ...(studentFamily ? { studentFamily } : {}),
        },
        teacher: teacherKeyParts(resolved),
      });
      // A readable copy for people; the artifacts are the content-addressed originals.
      // A readable copy for people; the artifacts are the content-addressed originals. config.name is a slug;
      // the joins keep it and the model names inside reports/ whatever they hold.
      const reportDir = joinInside(path.join(env.dataDir, 'reports'), `${config.name}-${key.slice(-12)}`);
      const teachers: TeacherClient[] = [];
      const produceReport = async (live: ActivityLiveness) => {
        const startedAt = Date.now();
        const heartbeat = (step: string, done: number, total: number) => live.beat({ step: done, total, phase: step });
        const gold = await store.readJsonl<GoldExample>(goldRef);
        const latencyGold = gold.slice(0, config.evaluate.latencySamples);
        const models: PipelineReport['models'] = {};
        // Each model's answers on the report split, for auditing and for `supertiny score`.
        const predictionFiles: Partial<Record<ModelName, PredictionRow[]>> = {};
        const goldCalls = new Map(gold.map((g) => [g.id, parseGold(task, g)]));
        const keepPredictions = (name: ModelName, predictions: Predictions) => {
          predictionFiles[name] = gold.map((g) => predictionRow(task, { id: g.id, text: g.text, gold: goldCalls.get(g.id)! }, predictions.get(g.id)?.call));
        };
        const total = 3 + quantizations.length;

        // Teacher, over its API, at temperature 0, each request paid once: the first latencySamples inputs go
        // one at a time, and their latency is that of the paid requests (kept with the cached answers), so a
        // retried or repeated evaluation pays nothing again and reports the same figures.
        heartbeat('teacher', 0, total);
        // An outage fails the activity (never a report that scores the teacher's failed requests as wrong).
        const stops = { signal: live.signal, stopOnEndpointFault: true };
        // Evaluation's teacher requests count against the pipeline's budget like the labelling's.
        const spend = currentPipelineSpend(env.dataDir);
        const teacher = createTeacherClient(
          task,
          { ...sharedChatSettings(config.teacher, resolved), temperature: 0, recordLatency: true, cacheDir: path.join(env.dataDir, 'teacher-cache') },
          { ...stops, spend: spend.guard(teacherBudgetUsd(config)) },
        );
        teachers.push(teacher);
        const teacherResults: TeacherResult[] = [];
        for (const g of latencyGold) teacherResults.push(await teacher.label({ id: g.id, text: g.text }, 1));
        teacherResults.push(...(await Promise.all(gold.slice(latencyGold.length).map((g) => teacher.label({ id: g.id, text: g.text }, 1)))));
        const teacherPredictions = new Map(teacherResults.map((r) => [r.id, { call: r.samples[0]?.call, schemaValid: r.samples[0]?.outcome === 'ok' }]));
        const teacherLatencies = teacherResults.slice(0, latencyGold.length).flatMap((r) => (r.latencyMs === undefined ? [] : [r.latencyMs]));
        keepPredictions('teacher', teacherPredictions);
        models.teacher = {
          ...metricsRow(scoreWith(task, gold, teacherPredictions)),
          ...latencySummary(teacherLatencies),
          params: null,
          bytes: null,
          latency_note: `${teacherLatencies.length} sequential requests (routing + final call) to ${config.teacher.model} on endpoint "${resolved.endpoint}"${resolved.simulated ? ' (the teacher SIMULATOR on loopback: not an LLM latency)' : ''}, timed when first paid`,
        };

        // The PyTorch student checkpoint, through the trainer's `predict` (eager mode, batch 1 for latency).
        heartbeat('student', 1, total);
        const studentDir = await localFolder(transfer.student);
        const pytorch = await predictWithTrainer(config, transfer.student, gold, latencyGold.length, await store.workDir(key));
        const params = Number(pytorch.metrics.parameters ?? NaN);
        keepPredictions('student', pytorch.predictions);
        models.student = {
          ...metricsRow(scoreWith(task, gold, pytorch.predictions)),
          latency_ms_p50: Number(pytorch.metrics.latency_ms_p50),
          latency_ms_p95: Number(pytorch.metrics.latency_ms_p95),
          throughput_rps: Number(pytorch.metrics.latency_throughput_rps ?? 0),
          params: Number.isFinite(params) ? params : null,
          bytes: await folderBytes(studentDir, (n) => n.endsWith('.safetensors') || n.endsWith('.bin')),
          latency_note: `PyTorch eager, ${config.transfer.student.family === 'encoder' ? 'one forward pass, constrained tags' : 'unconstrained greedy'}, batch 1, ${latencyGold.length} sequential requests (measured by the trainer)`,
        };

        // The ONNX students in TypeScript: constrained greedy decoding with the KV cache.
        const onnxAnswers = new Map<string, Awaited<ReturnType<typeof onnxPredictions>>>();
        const onnxRow = async (ref: ArtifactRef, label: string, name: ModelName): Promise<ModelReport> => {
          const answers = await onnxPredictions(config, ref, gold);
          const { model, predictions, folder } = answers;
          onnxAnswers.set(label, answers);
          keepPredictions(name, predictions);
          try {
            const latencies: number[] = [];
            for (const g of latencyGold) {
              live.signal.throwIfAborted();
              latencies.push((await model.predict(g.text)).latencyMs);
            }
            return {
              ...metricsRow(scoreWith(task, gold, predictions)),
              ...latencySummary(latencies),
              params: models.student?.params ?? null,
              bytes: await folderBytes(folder, (n) => n.startsWith('model.onnx')),
              latency_note: `onnxruntime-node ${label}, ${model.family === 'encoder' ? 'one forward pass, tokenization included, constrained BIO decoding' : 'constrained greedy with KV cache'}, batch 1, ${latencies.length} sequential requests`,
            };
          } finally {
            await model.release();
          }
        };
        heartbeat('student_onnx', 2, total);
        models.student_onnx = await onnxRow(compress.onnx, 'fp32', 'student_onnx');
        for (const [i, q] of quantizations.entries()) {
          heartbeat(`student_${q}`, 3 + i, total);
          models[`student_${q}`] = await onnxRow(compress[q]!, q, `student_${q}`);
        }
        // The cascade of the student that would be served (the chosen quantized model, else the first, else fp32).
        const servedLabel: Quantization | 'fp32' = quantizations.find((q) => compress[q]!.sha256 === compress.chosen.sha256) ?? quantizations.at(0) ?? 'fp32';
        let served = onnxAnswers.get(servedLabel)!;
        const servedName = servedLabel === 'fp32' ? 'student_onnx' : (`student_${servedLabel}` as const);
        if (compress.deployed) {
          // The deployed folder is the chosen model with its calibration: the same answers, the served confidence.
          served = await onnxPredictions(config, compress.deployed.model, gold);
          await served.model.release();
        }
        const scoring: CascadeScoring = {
          parse: task.callFormat.parse,
          exactMatch: (g, p) => task.metrics([{ gold: g, prediction: p, schemaValid: p !== undefined }]).exactMatch === 1,
        };
        const cascade = cascadeCurve(
          servedName,
          gold.map((g) => ({ gold: g.gold, student: served.predictions.get(g.id) ?? { confidence: 0 }, teacher: teacherPredictions.get(g.id) ?? {} })),
          undefined,
          scoring,
        );
        const servedCorrect = new Map(gold.map((g) => [g.id, scoring.exactMatch(goldCalls.get(g.id)!, served.predictions.get(g.id)?.call)]));
        const withCall = gold.filter((g) => served.predictions.get(g.id)?.call);
        const ece = (confidence: (id: string) => number) => expectedCalibrationError(withCall.map((g) => ({ confidence: confidence(g.id), correct: servedCorrect.get(g.id)! })));
        // Every confidence the encoder offers, side by side with the oracle (one that knows which answers are wrong).
        const candidates: [string, (id: string) => number, boolean][] = [];
        if (compress.deployed?.calibration) candidates.push(['calibrated on dev (served)', (id) => served.predictions.get(id)?.confidence ?? 0, true]);
        if (withCall.every((g) => served.predictions.get(g.id)?.signals)) {
          candidates.push(['raw: intent × least tag', (id) => rawConfidence(served.predictions.get(id)!.signals!), true]);
        }
        candidates.push(['oracle', (id) => (servedCorrect.get(id) ? 1 : 0), false]);
        cascade.candidates = candidates.map(([name, confidence, calibrated]) => {
          const inputs = gold.map((g) => ({ gold: g.gold, student: { call: served.predictions.get(g.id)?.call, confidence: confidence(g.id) }, teacher: teacherPredictions.get(g.id) ?? {} }));
          return { name, chosen: cascadeCurve(name, inputs, undefined, scoring).chosen, by_share: shareCurve(inputs, scoring), ece: calibrated ? ece(confidence) : null };
        });
        if (compress.deployed?.calibration) cascade.calibration = compress.deployed.calibration;
        const teacherPromptTokens = teacherResults.reduce((sum, r) => sum + r.usage.promptTokens, 0);
        const teacherCompletionTokens = teacherResults.reduce((sum, r) => sum + r.usage.completionTokens, 0);
        const cost = costReport({
          teacher: {
            promptTokens: teacherPromptTokens,
            completionTokens: teacherCompletionTokens,
            requests: teacherResults.length,
            prices: resolved.prices,
            simulated: resolved.simulated,
          },
          student: {
            model: servedName,
            cpuSeconds: served.cpuSeconds,
            requests: gold.length,
            vcpuHourUsd: config.evaluate.vcpuHourUsd,
            how: 'onnxruntime-node, one request at a time (no batching: a conservative figure), CPU time of the worker process, HTTP not included',
          },
          cascade: cascade.chosen,
          prototypeUsd: prototype.summary.costUsd ?? 0,
          training: trainingCompute(transfer, config),
          // The evaluation's were the pipeline's last teacher requests: this is what the pipeline paid.
          spend: { ...(await spend.snapshot()), budgetUsd: teacherBudgetUsd(config) },
        });
        const spent = await spend.snapshot();
        const trainingSteps = transfer.steps.map((t) => t.metrics);
        const peaks = trainingSteps.map((m) => m.peak_memory_bytes).filter((b): b is number => typeof b === 'number');
        const labelling = await labellingSpan(spend.file, new Date(startedAt));
        const estimate = estimateVsActual({
          config,
          splits: prototype.data.counts,
          prices: resolved.prices,
          simulated: resolved.simulated,
          actual: {
            teacherRequests: spent.paidRequests,
            teacherUsd: spent.spentUsd,
            labellingUsd: prototype.summary.costUsd ?? 0,
            evaluationRequests: teacherResults.reduce((sum, r) => sum + r.usage.requests, 0),
            evaluationPromptTokens: teacherPromptTokens,
            evaluationCompletionTokens: teacherCompletionTokens,
            trainingCpuSeconds: trainingSteps.reduce((sum, m) => sum + (m.compute_cpu_s ?? 0), 0),
            trainingWallSeconds: trainingSteps.reduce((sum, m) => sum + (m.compute_wall_s ?? 0), 0),
            trainerPeakMemoryBytes: peaks.length > 0 ? Math.max(...peaks) : null,
            evaluationWallSeconds: (Date.now() - startedAt) / 1000,
            labellingWallSeconds: labelling ? (labelling.last.getTime() - labelling.first.getTime()) / 1000 : null,
            runWallSeconds: labelling ? (Date.now() - labelling.first.getTime()) / 1000 : null,
            dataFolderBytes: await folderTreeBytes(env.dataDir),
          },
        });

        const report: PipelineReport = {
          pipeline: config.name,
          dataset: { name: task.displayName, path: config.task.dataPath ?? files.data ?? null, split, examples: gold.length },
          config,
          ...(studentFamily ? { student_family: { family: studentFamily.family, chosen_from: studentFamily.chosenFrom, reason: studentFamily.reason } } : {}),
          ...(config.transfer.student.family === 'encoder' ? { student_base: studentBaseReport(config.transfer.student) } : {}),
          models,
          gates: compress.gates,
          transfer: transfer.steps.map((t) => ({ step: t.step, dev_exact_match: t.metrics.dev_exact_match ?? null, dev_intent_acc: t.metrics.dev_intent_accuracy ?? null })),
          prototype: prototype.summary,
          cascade,
          cost,
          estimate,
          predictions: Object.fromEntries(Object.keys(predictionFiles).map((name) => [name, `predictions-${name}.jsonl`])),
          createdAt: new Date().toISOString(),
        };
        const predictionRefs: Record<string, ArtifactRef> = {};
        for (const [name, rows] of Object.entries(predictionFiles)) predictionRefs[name] = await store.putJsonl(`predictions/${name}`, rows);
        return {
          predictions: predictionRefs,
          report: await store.putJson('report', report),
          html: await store.putBytes('report-html', renderReportHtml(report)),
          reportPath: path.join(reportDir, 'report.json'),
          ...(compress.deployed ? { student: compress.deployed.model, studentPath: path.join(reportDir, 'student') } : {}),
          models: Object.fromEntries(Object.entries(models).map(([k, m]) => [k, { exact_match: m.exact_match, intent_acc: m.intent_acc, latency_ms_p50: m.latency_ms_p50 }])),
        };
      };
      // Beats every few seconds in every phase (teacher requests, predict, ONNX), and stops on cancellation.
      const { value } = await withLiveness((live) => store.memo(key, () => produceReport(live))).catch((err) => {
        throw asTeacherFailure(err, teachers.map((t) => t.chat));
      });
      const result = {
        ...(value as EvaluateResult),
        reportPath: path.join(reportDir, 'report.json'),
        ...((value as EvaluateResult).student ? { studentPath: path.join(reportDir, 'student') } : {}),
      };
      await publishReport(store, result);
      return result;
    },
  };
}

function metricsRow(m: CallMetrics): Pick<ModelReport, 'intent_acc' | 'slot_f1' | 'exact_match' | 'schema_valid'> {
  return { intent_acc: m.intentAccuracy, slot_f1: m.slotF1, exact_match: m.exactMatch, schema_valid: m.schemaValidRate };
}

/**
 * The transfer stage's training compute as its trainer commands measured it: CPU-seconds of each command's
 * process, and wall seconds of those that ran on a GPU. A session cut short by a crash is not counted (its
 * resumed session is), so this is a floor.
 */
function trainingCompute(transfer: TransferResult, config: PipelineConfig) {
  let cpuSeconds = 0;
  let gpuSeconds = 0;
  for (const step of transfer.steps) {
    cpuSeconds += step.metrics.compute_cpu_s ?? 0;
    if (step.metrics.compute_gpu === 1) gpuSeconds += step.metrics.compute_wall_s ?? 0;
  }
  return {
    cpuSeconds,
    gpuSeconds,
    vcpuHourUsd: config.evaluate.vcpuHourUsd,
    gpuHourUsd: config.evaluate.gpuHourUsd,
    note: `compute of the transfer steps (${transfer.steps.map((s) => s.step).join(', ')}) as the trainer measured it, at $${config.evaluate.vcpuHourUsd} per vCPU-hour and $${config.evaluate.gpuHourUsd} per GPU-hour; crashed sessions and the compress steps are not counted`,
  };
}

/** What the report says of the encoder's pretrained base: the registry's entry, or the config's own folder. */
export function studentBaseReport(student: { base?: EncoderBaseName; baseModelPath?: string }): NonNullable<PipelineReport['student_base']> {
  const name = registryBaseOf(student);
  if (name === undefined) return { name: 'folder', title: path.basename(student.baseModelPath!), license: 'as stated by the folder', source: 'transfer.student.baseModelPath' };
  const entry = ENCODER_BASES[name];
  return { name, title: entry.title, license: entry.license, source: `Maven Central ${entry.artifact}` };
}
