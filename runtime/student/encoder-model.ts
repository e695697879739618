// The encoder student in TypeScript (trainer/ENCODER_FORMAT.md): one forward pass of a BERT encoder with an
// intent head, a BIO tag head and optional value heads, then the intent's argmax, a Viterbi over the tags that
// intent allows and the argmax of each of its value heads, so every answer is a call of a known function with
// allowed slots, its span values the input's own text and its enum/boolean/integer values the schema's.
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { Call } from '../../tasks/call-format';
import { allowedTagIndices, type BioTag, bestBioPath, bioSpans, type CharSpan, parseBioTag, spanText } from './bio-tags';
import { EncoderTokenizer, type EncodedText } from './encoder-tokenizer';
import type { RuntimeAnswer } from './answers';
import { StudentModelError, StudentRequestError } from './errors';
import { type EncoderLabels, graphNameProblems, readEncoderLabels, requireFile, requireFolder, TEMPLATE_FILE } from './model-folder';
import { logSumExp, softmax } from './log-softmax';
import { type Calibration, calibratedConfidence, type EncoderSignals, rawConfidence, readCalibration } from './confidence';
import { createStudentSession } from './onnx-session';
import { decodeValueHeads, isNumberText, type ValueChoice, type ValueHead, valueLogitsWidth } from './value-heads';
import type { RuntimeBatchOptions, RuntimePrediction, StudentLoadOptions, StudentRuntime, StudentTask, TimedRuntimePrediction } from './student-runtime';

/** A slot value found in the input. */
export interface SlotSpan extends CharSpan {
  slot: string;
  /** input.slice(start, end): the user's own casing and spacing. */
  value: string;
  /** The lowest probability among the span's tokens' chosen tags. */
  probability: number;
}

export interface EncoderPrediction extends RuntimePrediction {
  /** The predicted function (also when the task rejects the call). */
  intent: string;
  intentProbability: number;
  /** The tagged spans in input order; a call's arguments are these, a repeated slot repeated, then `values`. */
  spans: SlotSpan[];
  /** The intent's value head choices (enum, boolean, integer arguments), in supertiny.json's head order. */
  values: ValueChoice[];
  /**
   * With a call: with the folder's calibration.json, the calibrated probability that the call is an exact match
   * (a logistic regression over `signals`, fitted on the dev split); without one, the intent's probability times
   * the lowest probability of any token's chosen tag (its O too: a token left outside every span at low
   * probability may be a missed argument) or value head's choice. 0 without a call.
   */
  confidence: number;
  /** What the forward pass tells of the answer's reliability: the calibration's inputs. */
  signals: EncoderSignals;
}

export interface TimedEncoderPrediction extends EncoderPrediction, TimedRuntimePrediction {}

const INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'];
/** The graph's outputs: value_logits only when the folder has value heads. */
const outputsOf = (labels: EncoderLabels) => ['intent_logits', 'tag_logits', ...(labels.value_heads?.length ? ['value_logits'] : [])];
const DEFAULT_BATCH_SIZE = 16;

export class EncoderStudent implements StudentRuntime {
  readonly family = 'encoder' as const;
  private readonly tags: readonly BioTag[];
  /** Per intent index, the indices into tags that its slots allow (O included). */
  private readonly intentTags: readonly (readonly number[])[];
  /** Per intent index, its value heads. */
  private readonly intentHeads: readonly (readonly ValueHead[])[];
  private readonly valueWidth: number;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly tokenizer: EncoderTokenizer,
    readonly labels: EncoderLabels,
    readonly task: StudentTask | undefined,
    readonly modelFile: string,
    /** From the folder's calibration.json: the confidence is then a calibrated probability of an exact match. */
    readonly calibration: Calibration | undefined,
  ) {
    this.tags = labels.tags.map(parseBioTag);
    this.intentTags = labels.intents.map((intent) => allowedTagIndices(this.tags, new Set(labels.intent_slots[intent])));
    const heads = (labels.value_heads ?? []) as ValueHead[];
    this.intentHeads = labels.intents.map((intent) => heads.filter((h) => h.function === intent));
    this.valueWidth = valueLogitsWidth(heads);
  }

  /** Loads an exported encoder folder; errors name the missing file, the wrong field or the mismatched tensors. */
  static async load(folder: string, options: StudentLoadOptions = {}): Promise<EncoderStudent> {
    await requireFolder(folder);
    const modelFile = await requireFile(folder, options.modelFile ?? 'model.onnx', 'the ONNX graph');
    await requireFile(folder, 'tokenizer.json', 'the tokenizer');
    const [labels, tokenizer, calibration] = await Promise.all([readEncoderLabels(folder), EncoderTokenizer.load(folder), readCalibration(folder)]);
    if (options.task) checkTaskLabels(folder, labels, options.task);
    const session = await createStudentSession(modelFile, options.threads);
    const problems = graphNameProblems(INPUTS, outputsOf(labels), session.inputNames, session.outputNames);
    if (problems.length) {
      await session.release();
      throw new StudentModelError('io_mismatch', `${modelFile} is not a supertiny-encoder/1 graph: ${problems.join('; ')}`, modelFile);
    }
    return new EncoderStudent(session, tokenizer, labels, options.task, modelFile, calibration);
  }

  async predict(input: string): Promise<TimedEncoderPrediction> {
    const started = performance.now();
    const [prediction] = await this.run([input], [this.tokenizer.encode(input, this.labels.max_length)]);
    return { ...prediction, latencyMs: performance.now() - started };
  }

  /**
   * Many requests in right-padded batches of similar length; answers come back in input order and, for a
   * float32 graph, are those of one request at a time. A dynamically quantized int8 graph picks its activation
   * scales per batch tensor (pads included), so there some answers differ from single requests.
   */
  async predictBatch(inputs: readonly string[], options: RuntimeBatchOptions = {}): Promise<EncoderPrediction[]> {
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new StudentRequestError(`batchSize must be a positive integer, got ${batchSize}`);
    const encoded = inputs.map((input) => this.tokenizer.encode(input, this.labels.max_length));
    const order = inputs.map((_, i) => i).sort((a, b) => encoded[a].ids.length - encoded[b].ids.length || a - b);
    const results: EncoderPrediction[] = new Array(inputs.length);
    for (let start = 0; start < order.length; start += batchSize) {
      const batch = order.slice(start, start + batchSize);
      const predictions = await this.run(batch.map((i) => inputs[i]), batch.map((i) => encoded[i]));
      batch.forEach((i, k) => (results[i] = predictions[k]));
    }
    return results;
  }

  /** Every input is taken: one longer than max_length is cut, as in training. */
  async predictEach(inputs: readonly string[], options: RuntimeBatchOptions = {}): Promise<RuntimeAnswer<EncoderPrediction>[]> {
    return (await this.predictBatch(inputs, options)).map((prediction) => ({ ok: true, prediction }));
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** One forward pass over a right-padded batch (pads masked out, token types all 0), then decoding per row. */
  private async run(inputs: readonly string[], encoded: readonly EncodedText[]): Promise<EncoderPrediction[]> {
    const count = inputs.length;
    const width = Math.max(...encoded.map((e) => e.ids.length));
    const ids = new BigInt64Array(count * width);
    const mask = new BigInt64Array(count * width);
    encoded.forEach((e, r) =>
      e.ids.forEach((id, j) => {
        ids[r * width + j] = BigInt(id);
        mask[r * width + j] = 1n;
      }),
    );
    const shape = [count, width];
    const result = await this.session.run({
      input_ids: new ort.Tensor('int64', ids, shape),
      attention_mask: new ort.Tensor('int64', mask, shape),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(count * width), shape),
    });
    const intentLogits = this.checkOutput(result, 'intent_logits', [count, this.labels.intents.length], 'intents');
    const tagLogits = this.checkOutput(result, 'tag_logits', [count, width, this.labels.tags.length], 'tags');
    const valueLogits = this.valueWidth ? this.checkOutput(result, 'value_logits', [count, this.valueWidth], 'value head columns') : undefined;
    return inputs.map((input, r) => this.decodeRow(input, encoded[r], intentLogits, tagLogits, r, width, valueLogits));
  }

  private checkOutput(result: ort.InferenceSession.ReturnType, name: string, expected: number[], labelField: string): Float32Array {
    const tensor = result[name];
    if (tensor.type !== 'float32' || tensor.dims.length !== expected.length || tensor.dims.some((d, i) => d !== expected[i])) {
      throw new StudentModelError(
        'io_mismatch',
        `${this.modelFile}: output ${name} is ${tensor.type} [${tensor.dims.join(', ')}], expected float32 [${expected.join(', ')}] (${expected[expected.length - 1]} ${labelField} in ${TEMPLATE_FILE})`,
        this.modelFile,
      );
    }
    return tensor.data as Float32Array;
  }

  private decodeRow(
    input: string,
    encoded: EncodedText,
    intentLogits: Float32Array,
    tagLogits: Float32Array,
    row: number,
    width: number,
    valueLogits: Float32Array | undefined,
  ): EncoderPrediction {
    const nIntents = this.labels.intents.length;
    const intentProbs = softmax(intentLogits, row * nIntents, nIntents);
    let intentIndex = 0;
    for (let i = 1; i < nIntents; i++) if (intentProbs[i] > intentProbs[intentIndex]) intentIndex = i;
    const intent = this.labels.intents[intentIndex];
    const intentProbability = intentProbs[intentIndex];
    let runnerUp = 0;
    let intentEntropy = 0;
    for (let i = 0; i < nIntents; i++) {
      if (i !== intentIndex && intentProbs[i] > runnerUp) runnerUp = intentProbs[i];
      if (intentProbs[i] > 0) intentEntropy -= intentProbs[i] * Math.log(intentProbs[i]);
    }

    // Tag scores (log-softmax over all tags) of the input's own tokens (not [CLS]/[SEP]).
    const nTags = this.labels.tags.length;
    const positions = encoded.offsets.flatMap((o, j) => (o ? [j] : []));
    const offsets = positions.map((j) => encoded.offsets[j]!);
    const logProbs = new Float64Array(positions.length * nTags);
    positions.forEach((j, t) => {
      const offset = (row * width + j) * nTags;
      const norm = logSumExp(tagLogits, offset, nTags);
      for (let tag = 0; tag < nTags; tag++) logProbs[t * nTags + tag] = tagLogits[offset + tag] - norm;
    });
    // With word_spans, a token right after the previous one (no character between) is in its word and span.
    const continues = this.labels.word_spans ? offsets.map((o, t) => t > 0 && o.start === offsets[t - 1].end) : undefined;
    // The intent's best tag path over the tags it allows; the log-softmax is over all tags, so a tag the
    // constraint forces against the model's belief shows a low probability.
    const allowed = this.intentTags[intentIndex];
    const scores = new Float64Array(positions.length * allowed.length);
    for (let t = 0; t < positions.length; t++) allowed.forEach((tag, k) => (scores[t * allowed.length + k] = logProbs[t * nTags + tag]));
    const allowedTags = allowed.map((k) => this.tags[k]);
    const { path } = bestBioPath(scores, positions.length, allowedTags, continues);
    const tokenProbability = path.map((k, t) => Math.exp(scores[t * allowed.length + k]));
    // Each token's lead of its chosen tag over the best other tag, any tag (the intent's constraint may overrule the model).
    const tagMargins = path.map((k, t) => {
      let best = -Infinity;
      for (let tag = 0; tag < nTags; tag++) if (tag !== allowed[k] && logProbs[t * nTags + tag] > best) best = logProbs[t * nTags + tag];
      return tokenProbability[t] - Math.exp(best);
    });
    // A number slot's span whose text is not a number is dropped, as the trainer's decoder drops it.
    const numbers = this.labels.number_slots?.[intent] ?? {};
    const spans = bioSpans(path, allowedTags)
      .map((span) => ({
        slot: span.slot,
        ...spanText(input, offsets, span),
        probability: Math.min(...tokenProbability.slice(span.first, span.last + 1)),
      }))
      .filter((span) => !Object.hasOwn(numbers, span.slot) || isNumberText(numbers[span.slot], span.value));

    const values = valueLogits ? decodeValueHeads(this.intentHeads[intentIndex], valueLogits, row * this.valueWidth) : [];
    const valueArgs = values.map((v) => ({ key: v.argument, value: v.value }));
    const callOf = (kept: typeof spans): Call => ({ name: intent, args: [...kept.map((s) => ({ key: s.slot, value: s.value })), ...valueArgs] });
    // A slot the function takes once keeps its most probable span (the trainer's decoder does the same).
    const repeatable = this.labels.intent_repeatable?.[intent];
    let kept = repeatable ? mostProbablePerSlot(spans, new Set(repeatable)) : spans;
    let call = callOf(kept);
    let validation = this.task?.validateCall(call);
    if (validation && !validation.ok) {
      // Folders without intent_repeatable: the task's schema says a slot was named twice; keep its best span.
      kept = mostProbablePerSlot(spans);
      call = callOf(kept);
      validation = this.task!.validateCall(call);
    }
    const inSpan = new Set(offsets.flatMap((o, t) => (kept.some((span) => o.start >= span.start && o.end <= span.end) ? [t] : [])));
    const signals: EncoderSignals = {
      intentProbability,
      intentMargin: intentProbability - runnerUp,
      intentEntropy,
      leastTag: Math.min(1, ...tokenProbability),
      meanLogTag: tokenProbability.length ? tokenProbability.reduce((a, p) => a + Math.log(Math.max(p, 1e-12)), 0) / tokenProbability.length : 0,
      leastTagMargin: Math.min(1, ...tagMargins),
      leastSpanTag: Math.min(1, ...tokenProbability.filter((_, t) => inSpan.has(t))),
      leastOutsideTag: Math.min(1, ...tokenProbability.filter((_, t) => !inSpan.has(t))),
      leastValue: Math.min(1, ...values.map((v) => v.probability)),
      tokens: positions.length,
      arguments: call.args.length,
    };
    if (validation && !validation.ok) return { input, intent, intentProbability, spans, values, confidence: 0, signals, errors: validation.errors };
    const confidence = this.calibration ? calibratedConfidence(this.calibration, signals) : rawConfidence(signals);
    return { input, intent, intentProbability, spans: kept, values, call, confidence, signals };
  }
}

/** One span per slot (except the `repeatable` ones), the most probable (ties: the first), in text order. */
export function mostProbablePerSlot<S extends { slot: string; probability: number }>(spans: readonly S[], repeatable: ReadonlySet<string> = new Set()): S[] {
  const best = new Map<string, S>();
  for (const span of spans) {
    if (repeatable.has(span.slot)) continue;
    const current = best.get(span.slot);
    if (!current || span.probability > current.probability) best.set(span.slot, span);
  }
  return spans.filter((span) => repeatable.has(span.slot) || best.get(span.slot) === span);
}

/** A folder trained for another task fails at load, not as wrong answers: intents and slots must be the task's. */
function checkTaskLabels(folder: string, labels: EncoderLabels, task: StudentTask): void {
  const file = path.join(folder, TEMPLATE_FILE);
  for (const intent of labels.intents) {
    const fn = task.functions[intent];
    if (!fn) throw new StudentModelError('io_mismatch', `${file}: intent "${intent}" is not a function of the task`, file);
    const unknown = labels.intent_slots[intent].filter((slot) => !(slot in fn.parameters.shape));
    if (unknown.length) {
      throw new StudentModelError('io_mismatch', `${file}: intent_slots.${intent} names ${unknown.join(', ')}, which function "${intent}" does not take`, file);
    }
  }
  for (const [i, head] of (labels.value_heads ?? []).entries()) {
    if (!(head.argument in task.functions[head.function].parameters.shape)) {
      throw new StudentModelError('io_mismatch', `${file}: value_heads[${i}] names argument ${head.argument}, which function "${head.function}" does not take`, file);
    }
  }
}
