// The report: the evaluation's scores (scoreModel, one per row of the plan's evaluation) set side by side with the
// cascade of the served model, the cost per request, the plan's estimate against the run, and each model's
// answers, written as report.json and report.html.
import * as path from 'node:path';
import type { ArtifactRef } from '../../artifacts/ref';
import type { ArtifactStore } from '../../artifacts/store';
import { joinInside } from '../../artifacts/confined-path';
import type { DecoderStudentConfig, PipelineConfig, StudentFamilyChoice } from '../../config/pipeline';
import { pipelinePlan, scoredModel, stepApplies, type EvaluateStepPlan } from '../../config/plan';
import { ENCODER_BASES, registryBaseOf, type EncoderBaseName } from '../../config/encoder-bases';
import { DECODER_BASES } from '../../config/decoder-bases';
import type { ActivityDeps } from '../deps';
import type { CompressResult, EvaluateResult, PrototypeResult, TransferResult } from '../types';
import { expectedCalibrationError, isDecoderSignals, RAW_CONFIDENCE_NAMES, rawConfidenceOf } from '../../runtime/student/confidence';
import { parseGold, type GoldExample } from '../gold-examples';
import { teacherKeyParts } from '../teacher/settings';
import { currentPipelineSpend, teacherBudgetUsd } from '../teacher/spend-ledger';
import type { TaskResources } from '../task-resources';
import { activityOutputKey } from '../output-keys';
import { cascadeCurve, shareCurve } from './cascade';
import { costReport } from './cost';
import { estimateVsActual, folderTreeBytes, labellingSpan } from './estimate-vs-actual';
import { renderReportHtml, type ModelName, type PipelineReport } from './report';
import { predictionRow, type PredictionRow } from './predictions';
import { cascadeScoring, latencySummary, type createScoreActivities, type ModelScore } from './score';

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

/** The stage results the evaluation scores and reports on. */
export interface EvaluateInputs {
  config: PipelineConfig;
  prototype: PrototypeResult;
  transfer: TransferResult;
  compress: CompressResult;
  studentFamily?: StudentFamilyChoice;
}

export interface WriteReportInput extends EvaluateInputs {
  /** The evaluation's scoring steps that applied, in the plan's order, each with its score on the report split. */
  scores: { row: EvaluateStepPlan['row']; score: ModelScore }[];
  /** When the evaluation started (ms since the epoch): its wall time in the estimate against the run. */
  startedAt: number;
}

const ONNX_LABEL = (row: string) => (row === 'student_onnx' ? 'fp32' : row.replace(/^student_/, ''));

export function createEvaluateActivities(deps: ActivityDeps, resources: TaskResources, scoring: ReturnType<typeof createScoreActivities>) {
  const { store, env } = deps;

  async function writeReport(input: WriteReportInput): Promise<EvaluateResult> {
    const { config, prototype, transfer, compress, studentFamily, scores, startedAt } = input;
    const split = config.evaluate.split;
    const goldRef = prototype.data[split];
    const resolved = await resources.teacher(config);
    const { task, files, fingerprint } = await resources.loadTask(config);
    const byRow = new Map(scores.map((s) => [s.row, s.score]));
    const teacherScore = byRow.get('teacher');
    if (!teacherScore) throw new Error('the report needs the teacher\'s score on the report split');
    const key = await activityOutputKey(env.projectRoot, 'writeReport', {
      // The report shows the whole config.
      plan: config,
      inputs: {
        task: fingerprint,
        gold: goldRef.sha256,
        transferSteps: transfer.steps.map((s) => ({ step: s.step, model: s.model.sha256, metrics: s.metrics })),
        gates: compress.gates,
        chosen: compress.chosen.sha256,
        ...(compress.deployed ? { deployed: compress.deployed.model.sha256 } : {}),
        scores,
        ...(studentFamily ? { studentFamily } : {}),
      },
      teacher: teacherKeyParts(resolved),
    });
    // A readable copy for people; the artifacts are the content-addressed originals. config.name is a slug;
    // the joins keep it and the model names inside reports/ whatever they hold.
    const reportDir = joinInside(path.join(env.dataDir, 'reports'), `${config.name}-${key.slice(-12)}`);
    const { value } = await store.memo(key, async () => {
      const gold = await store.readJsonl<GoldExample>(goldRef);
      const goldCalls = new Map(gold.map((g) => [g.id, parseGold(task, g)]));
      const answers = new Map(await Promise.all(scores.map(async (s) => [s.row, await scoring.answersOf(s.score)] as const)));
      const family = config.transfer.student.family;
      const models: PipelineReport['models'] = {};
      // Each model's answers on the report split, for auditing and for `supertiny score`.
      const predictionFiles: Partial<Record<ModelName, PredictionRow[]>> = {};
      const latencyOf = (s: ModelScore) => {
        const l = s.latency ?? latencySummary([]);
        return { latency_ms_p50: l.p50, latency_ms_p95: l.p95, throughput_rps: l.throughputRps };
      };
      for (const { row, score } of scores) {
        if (row === 'served') continue;
        const rowAnswers = answers.get(row)!;
        predictionFiles[row] = gold.map((g) => predictionRow(task, { id: g.id, text: g.text, gold: goldCalls.get(g.id)! }, rowAnswers.get(g.id)?.call));
        const base = { intent_acc: score.intentAccuracy, slot_f1: score.slotF1, exact_match: score.exactMatch, schema_valid: score.schemaValidRate, ...latencyOf(score) };
        const timed = score.latency?.samples ?? 0;
        if (row === 'teacher') {
          models.teacher = {
            ...base,
            params: null,
            bytes: null,
            latency_note: `${timed} sequential requests (routing + final call) to ${config.teacher.model} on endpoint "${resolved.endpoint}"${resolved.simulated ? ' (the teacher SIMULATOR on loopback: not an LLM latency)' : ''}, timed when first paid`,
          };
        } else if (row === 'student') {
          models.student = {
            ...base,
            params: score.params ?? null,
            bytes: score.weightBytes ?? null,
            latency_note: `PyTorch eager, ${family === 'encoder' ? 'one forward pass, constrained tags' : 'unconstrained greedy'}, batch 1, ${Math.min(config.evaluate.latencySamples, gold.length)} sequential requests (measured by the trainer)`,
          };
        } else {
          // The ONNX students in TypeScript: constrained decoding (the decoder's with the KV cache).
          models[row] = {
            ...base,
            params: models.student?.params ?? null,
            bytes: score.weightBytes ?? null,
            latency_note: `onnxruntime-node ${ONNX_LABEL(row)}, ${family === 'encoder' ? 'one forward pass, tokenization included, constrained BIO decoding' : 'constrained greedy with KV cache'}, batch 1, ${timed} sequential requests`,
          };
        }
      }

      // The cascade of the student that would be served: the deployed folder (the chosen model with its
      // calibration: the same answers, the served confidence), else the chosen model's row (older runs).
      const quantizedRows = scores.filter((s) => s.row !== 'student_onnx' && s.row.startsWith('student_'));
      const chosenRow = quantizedRows.find((s) => {
        const q = ONNX_LABEL(s.row) as keyof CompressResult;
        return (compress[q] as ArtifactRef | undefined)?.sha256 === compress.chosen.sha256;
      });
      // Where no quantization was kept, the served model is a float graph: the exported one (student_onnx), or the
      // one a pruning step made from it, which has no row of its own (its answers are the 'served' scoring's).
      const chosenName = chosenRow?.row ?? (compress.chosen.sha256 === compress.onnx.sha256 ? 'student_onnx' : undefined);
      const servedRow = chosenName ?? quantizedRows.at(0)?.row ?? 'student_onnx';
      const servedScore = byRow.get('served') ?? byRow.get(servedRow)!;
      const served = answers.get(byRow.has('served') ? 'served' : servedRow)!;
      const kept = compress.gates.filter((g) => g.kept).map((g) => g.step);
      const servedName = chosenName ?? (byRow.has('served') && kept.length > 0 ? `the float graph after ${kept.join(', ')}` : servedRow);
      const teacherAnswers = answers.get('teacher')!;
      const scoringRule = cascadeScoring(task);
      const cascade = cascadeCurve(
        servedName,
        gold.map((g) => ({ gold: g.gold, student: { call: served.get(g.id)?.call, confidence: served.get(g.id)?.confidence ?? 0 }, teacher: { call: teacherAnswers.get(g.id)?.call } })),
        undefined,
        scoringRule,
      );
      const servedCorrect = new Map(gold.map((g) => [g.id, scoringRule.exactMatch(goldCalls.get(g.id)!, served.get(g.id)?.call)]));
      const withCall = gold.filter((g) => served.get(g.id)?.call);
      const ece = (confidence: (id: string) => number) => expectedCalibrationError(withCall.map((g) => ({ confidence: confidence(g.id), correct: servedCorrect.get(g.id)! })));
      // Every confidence the student offers, side by side with the oracle (one that knows which answers are wrong).
      const candidates: [string, (id: string) => number, boolean][] = [];
      if (compress.deployed?.calibration) candidates.push(['calibrated on dev (served)', (id) => served.get(id)?.confidence ?? 0, true]);
      if (withCall.length > 0 && withCall.every((g) => served.get(g.id)?.signals)) {
        const rawName = RAW_CONFIDENCE_NAMES[isDecoderSignals(served.get(withCall[0].id)!.signals!) ? 'decoder' : 'encoder'];
        candidates.push([rawName, (id) => rawConfidenceOf(served.get(id)!.signals!), true]);
      }
      candidates.push(['oracle', (id) => (servedCorrect.get(id) ? 1 : 0), false]);
      cascade.candidates = candidates.map(([name, confidence, calibrated]) => {
        const inputs = gold.map((g) => ({ gold: g.gold, student: { call: served.get(g.id)?.call, confidence: confidence(g.id) }, teacher: { call: teacherAnswers.get(g.id)?.call } }));
        return { name, chosen: cascadeCurve(name, inputs, undefined, scoringRule).chosen, by_share: shareCurve(inputs, scoringRule), ece: calibrated ? ece(confidence) : null };
      });
      if (compress.deployed?.calibration) cascade.calibration = compress.deployed.calibration;

      const spend = currentPipelineSpend(env.dataDir);
      const usage = teacherScore.usage ?? { promptTokens: 0, completionTokens: 0, requests: 0 };
      const cost = costReport({
        teacher: { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, requests: teacherScore.count, prices: resolved.prices, simulated: resolved.simulated },
        student: {
          model: servedName,
          cpuSeconds: servedScore.cpuSeconds ?? 0,
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
          evaluationRequests: usage.requests,
          evaluationPromptTokens: usage.promptTokens,
          evaluationCompletionTokens: usage.completionTokens,
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
        ...withStudentBase(studentBaseReport(config.transfer.student)),
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
    });
    const result = {
      ...(value as EvaluateResult),
      reportPath: path.join(reportDir, 'report.json'),
      ...((value as EvaluateResult).student ? { studentPath: path.join(reportDir, 'student') } : {}),
    };
    await publishReport(store, result);
    return result;
  }

  return {
    /** The report of the evaluation's scores: report.json, report.html, the predictions files, the folder to serve. */
    writeReport,

    /**
     * The evaluation of histories recorded before it was a list of scoring steps (patch `score-model`): the same
     * steps in this one activity, then the report.
     */
    async evaluateModels(input: EvaluateInputs): Promise<EvaluateResult> {
      const startedAt = Date.now();
      const gold = input.prototype.data[input.config.evaluate.split];
      const scores: WriteReportInput['scores'] = [];
      for (const step of pipelinePlan(input.config, input.studentFamily).evaluate.steps) {
        if (!stepApplies(step, input)) continue;
        scores.push({ row: step.row, score: await scoring.scoreModel({ plan: step.score, model: scoredModel(step, input), gold }) });
      }
      return writeReport({ ...input, scores, startedAt });
    },
  };
}

/**
 * The transfer stage's training compute as its trainer commands measured it: CPU-seconds of each command's
 * process, and wall seconds of those that ran on a GPU. A session cut short by a crash is not counted (its
 * resumed session is), so this is a floor.
 */
function withStudentBase(base: PipelineReport['student_base']): Pick<PipelineReport, 'student_base'> {
  return base ? { student_base: base } : {};
}

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

/**
 * What the report says of the student's pretrained base: the registry's entry (the encoder's or the decoder's),
 * or the config's own folder; undefined for a decoder initialised at random from its shape.
 */
export function studentBaseReport(student: { family?: 'encoder'; base?: EncoderBaseName; baseModelPath?: string } | DecoderStudentConfig): PipelineReport['student_base'] {
  const folder = (dir: string) => ({ name: 'folder', title: path.basename(dir), license: 'as stated by the folder', source: 'transfer.student.baseModelPath' });
  if (student.family === 'decoder') {
    if (student.base !== undefined) {
      const entry = DECODER_BASES[student.base];
      return { name: student.base, title: entry.title, license: entry.license, source: `PyPI ${entry.package}==${entry.version} (${entry.gguf}, converted to float32)` };
    }
    return student.baseModelPath !== undefined ? folder(student.baseModelPath) : undefined;
  }
  const name = registryBaseOf(student);
  if (name === undefined) return folder(student.baseModelPath!);
  const entry = ENCODER_BASES[name];
  return { name, title: entry.title, license: entry.license, source: `Maven Central ${entry.artifact}` };
}
