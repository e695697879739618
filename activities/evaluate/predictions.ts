// Predictions files: each model's answers on the report split as JSONL ({id, input, gold, prediction,
// correct}), saved next to report.json, and the scoring of such a file (from supertiny or from elsewhere)
// with the task's own call format and metrics (`supertiny score`).
import type { Call } from '../../tasks/call-format';
import type { TaskSpec } from '../../tasks/define';
import type { CallMetrics, CallPrediction } from '../../tasks/metrics';

/** One line of a predictions file. gold and prediction are in the task's call format; prediction null without a call. */
export interface PredictionRow {
  id: string;
  input: string;
  gold: string;
  prediction: string | null;
  correct: boolean;
}

type Task = Pick<TaskSpec<any>, 'callFormat' | 'metrics' | 'decodeToolCall' | 'validateCall' | 'functionNames'>;

/** Exact match as the task's metrics count it. */
export function isCorrect(task: Pick<TaskSpec<any>, 'metrics'>, gold: Call, prediction: Call | undefined): boolean {
  return task.metrics([{ gold, prediction, schemaValid: prediction !== undefined }]).exactMatch === 1;
}

export function predictionRow(task: Task, example: { id: string; text: string; gold: Call }, prediction: Call | undefined): PredictionRow {
  return {
    id: example.id,
    input: example.text,
    gold: task.callFormat.print(example.gold),
    prediction: prediction ? task.callFormat.print(prediction) : null,
    correct: isCorrect(task, example.gold, prediction),
  };
}

export class PredictionsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PredictionsFileError';
  }
}

/**
 * A call written as the task's call format (a string) or as an OpenAI-style call ({name, arguments}, typed
 * arguments allowed): the call when it is a valid call of the task, else undefined (counts as no call).
 */
function readCall(task: Task, value: unknown): { call?: Call; valid: boolean } {
  if (typeof value === 'string') {
    const parsed = task.callFormat.parse(value);
    return parsed.ok && task.validateCall(parsed.call).ok ? { call: parsed.call, valid: true } : { valid: false };
  }
  if (value && typeof value === 'object' && typeof (value as { name?: unknown }).name === 'string') {
    const { name, arguments: args } = value as { name: string; arguments?: unknown };
    const decoded = task.decodeToolCall(name, typeof args === 'string' ? args : JSON.stringify(args ?? {}), task.functionNames);
    return decoded.kind === 'call' ? { call: decoded.call, valid: true } : { valid: false };
  }
  return { valid: false };
}

/**
 * Scores a predictions file with the task's metrics. Each line needs an id and a prediction (null for no
 * answer); its gold is the line's own or, when absent, the task's gold of that id. Errors name the line and
 * field, never the content.
 */
export function scorePredictions(task: Task, text: string, goldById: ReadonlyMap<string, Call> = new Map()): CallMetrics {
  const rows: CallPrediction[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    const at = `predictions line ${index + 1}`;
    let raw: { id?: unknown; gold?: unknown; prediction?: unknown };
    try {
      raw = JSON.parse(line);
    } catch {
      throw new PredictionsFileError(`${at}: not valid JSON`);
    }
    if (!raw || typeof raw !== 'object') throw new PredictionsFileError(`${at}: not a JSON object`);
    if (typeof raw.id !== 'string' || raw.id === '') throw new PredictionsFileError(`${at}: field id: must be a non-empty string`);
    if (seen.has(raw.id)) throw new PredictionsFileError(`${at}: field id: the same id as an earlier line`);
    seen.add(raw.id);
    if (!('prediction' in raw)) throw new PredictionsFileError(`${at}: field prediction: missing (null when the model gave no call)`);
    let gold: Call | undefined;
    if (raw.gold !== undefined && raw.gold !== null) {
      gold = readCall(task, raw.gold).call;
      if (!gold) throw new PredictionsFileError(`${at}: field gold: not a valid call of the task`);
    } else {
      gold = goldById.get(raw.id);
      if (!gold) throw new PredictionsFileError(`${at}: field gold: missing, and the task has no gold call of this id`);
    }
    const prediction = raw.prediction === null ? { valid: false } : readCall(task, raw.prediction);
    rows.push({ gold, prediction: prediction.call, schemaValid: prediction.valid });
  });
  return task.metrics(rows);
}
