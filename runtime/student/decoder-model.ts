// The decoder student in TypeScript (encoder-model.ts has the encoder's): an exported ONNX decoder run by
// onnxruntime-node, greedy decoding with the KV cache, optionally constrained to the task's calls, one request at
// a time or in left-padded batches.
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { parseCall } from '../../tasks/call-format';
import { CallGrammar, CallPrefix, SlotValueRule } from './call-grammar';
import { answerEach, predictionsOf, type RuntimeAnswer } from './answers';
import { StudentModelError, StudentRequestError } from './errors';
import { CacheNames, cacheNames, checkGraphNames, OnnxIo, readOnnxIo, readTemplate, requireFile, requireFolder, StudentTemplate } from './model-folder';
import { logSumExp } from './log-softmax';
import { createStudentSession } from './onnx-session';
import type { RuntimePrediction, StudentLoadOptions, StudentRuntime, StudentTask, TimedRuntimePrediction } from './student-runtime';
import { StudentTokenizer } from './tokenizer';

export type DecoderStudentOptions = StudentLoadOptions;

export interface DecodeOptions {
  /** Allow only tokens that keep the output a prefix of a call the task accepts. Default: true when a task is given. */
  constrained?: boolean;
  /** Which slot values constrained decoding allows (see SlotValueRule). Default "spans". */
  slotValues?: SlotValueRule;
  /** Default 64, as the trainer's `predict`. */
  maxNewTokens?: number;
  /**
   * Constrained, feed the tokens the grammar forces (e.g. `omain="` once `d` starts the only key that fits) in
   * the same forward pass as the chosen token instead of one pass each. Default true; unconstrained, no effect.
   */
  fastForward?: boolean;
}

export interface BatchDecodeOptions extends DecodeOptions {
  /** Requests decoded together. Default 16. */
  batchSize?: number;
}

export type StopReason = 'eos' | 'max_new_tokens' | 'no_allowed_token';

export interface StudentPrediction extends RuntimePrediction {
  /** The generated text up to eos, special tokens removed (the trainer's `predict` text). */
  text: string;
  /** Generated token ids (chosen and forced), without the eos. */
  tokenIds: number[];
  /** Forward passes of the model for this answer, the prompt's included. */
  forwardPasses: number;
  stopReason: StopReason;
  /**
   * With a call, the geometric mean of the output tokens' probabilities (eos and fast-forwarded tokens included)
   * under the model's full softmax, so a token the grammar forced against the model's belief lowers it; 0 without a call.
   */
  confidence: number;
}

export interface TimedStudentPrediction extends StudentPrediction, TimedRuntimePrediction {
  /** Wall time of the whole request: tokenizing, prefill, decoding, parsing. */
  latencyMs: number;
  /** Wall time of the prompt's forward pass (time to first token). */
  prefillMs: number;
}

const DEFAULT_MAX_NEW_TOKENS = 64;
const DEFAULT_BATCH_SIZE = 16;

/** A left-padded batch of requests being decoded; rows leave the batch when they finish. */
interface DecodingRow {
  input: string;
  prefix: CallPrefix | undefined;
  generated: number[];
  stopReason?: StopReason;
  /** Position id of the next token. */
  nextPosition: number;
  /** Sum of the chosen and forced tokens' log-probabilities (eos included), for the confidence. */
  logProbSum: number;
  /** Forced tokens fed in the pass just run after the chosen token, the last of `generated`; scored from its logits. */
  forced: number[];
  /** Index in the pass just run of the row's last token, whose logits choose the next one. */
  lastIndex: number;
  forwardPasses: number;
}

export class DecoderStudent implements StudentRuntime {
  readonly family = 'decoder' as const;
  private readonly cache: CacheNames;
  private readonly eosId: number;
  private readonly padId: number;
  private readonly grammars = new Map<SlotValueRule, CallGrammar>();

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly tokenizer: StudentTokenizer,
    readonly template: StudentTemplate,
    readonly io: OnnxIo,
    readonly task: StudentTask | undefined,
    readonly modelFile: string,
  ) {
    this.cache = cacheNames(io);
    this.eosId = tokenizer.requireTokenId(template.eos_token, 'eos');
    this.padId = template.pad_token ? tokenizer.requireTokenId(template.pad_token, 'pad') : this.eosId;
  }

  /** Loads an exported student folder; errors name the missing file or the mismatched tensors. */
  static async load(folder: string, options: DecoderStudentOptions = {}): Promise<DecoderStudent> {
    await requireFolder(folder);
    const modelFile = await requireFile(folder, options.modelFile ?? 'model.onnx', 'the ONNX graph');
    await requireFile(folder, 'tokenizer.json', 'the tokenizer');
    const [template, io, tokenizer] = await Promise.all([readTemplate(folder), readOnnxIo(folder), StudentTokenizer.load(folder)]);
    const session = await createStudentSession(modelFile, options.threads);
    const inputShapes = new Map(session.inputMetadata.flatMap((m) => (m.isTensor ? [[m.name, m.shape] as const] : [])));
    checkGraphNames(modelFile, io, session.inputNames, session.outputNames, inputShapes);
    const model = new DecoderStudent(session, tokenizer, template, io, options.task, modelFile);
    if (io.eos_token_id !== undefined && io.eos_token_id !== model.eosId) {
      throw new StudentModelError('io_mismatch', `onnx_io.json says eos is token ${io.eos_token_id}, the tokenizer says ${model.eosId}`, modelFile);
    }
    return model;
  }

  /** One request, timed (the single-request latency of a served student). */
  async predict(input: string, options: DecodeOptions = {}): Promise<TimedStudentPrediction> {
    const started = performance.now();
    const timing = { prefillMs: 0 };
    const [prediction] = await this.decode([input], [this.promptIds(input)], options, timing);
    return { ...prediction, latencyMs: performance.now() - started, prefillMs: timing.prefillMs };
  }

  /**
   * Many requests in left-padded batches of similar prompt length; answers come back in input order and,
   * for a float32 graph, are the same as one request at a time. A dynamically quantized int8 graph picks
   * its activation scales per batch tensor, so there a few answers can differ from single requests.
   */
  async predictBatch(inputs: readonly string[], options: BatchDecodeOptions = {}): Promise<StudentPrediction[]> {
    return predictionsOf(await this.predictEach(inputs, options));
  }

  /** As predictBatch, but a prompt longer than the model's context is refused alone (context_length_exceeded). */
  async predictEach(inputs: readonly string[], options: BatchDecodeOptions = {}): Promise<RuntimeAnswer<StudentPrediction>[]> {
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new StudentRequestError(`batchSize must be a positive integer, got ${batchSize}`);
    const prompts = inputs.map((input) => this.promptIds(input));
    return answerEach(
      inputs.length,
      (i) => this.lengthRefusal(prompts[i].length),
      async (accepted) => {
        const order = [...accepted].sort((a, b) => prompts[a].length - prompts[b].length || a - b);
        const results = new Map<number, StudentPrediction>();
        for (let start = 0; start < order.length; start += batchSize) {
          const batch = order.slice(start, start + batchSize);
          const predictions = await this.decode(batch.map((i) => inputs[i]), batch.map((i) => prompts[i]), options);
          batch.forEach((i, k) => results.set(i, predictions[k]));
        }
        return accepted.map((i) => results.get(i)!);
      },
    );
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private promptIds(input: string): number[] {
    return this.tokenizer.encode(this.template.prompt_prefix + input + this.template.prompt_suffix);
  }

  /** Why a prompt of `tokens` tokens cannot be decoded (no room left for an answer), or undefined. */
  private lengthRefusal(tokens: number): StudentRequestError | undefined {
    const limit = this.io.max_position_embeddings - 1;
    if (tokens <= limit) return undefined;
    return new StudentRequestError(`the prompt has ${tokens} tokens; this student takes at most ${limit}`, 'context_length_exceeded');
  }

  private grammar(rule: SlotValueRule): CallGrammar {
    if (!this.task) throw new StudentRequestError('constrained decoding needs the task: pass `task` to DecoderStudent.load');
    if (!this.tokenizer.tokenBytes) {
      throw new StudentRequestError('constrained decoding needs a byte-level BPE tokenizer (tokenizer.json decoder "ByteLevel")');
    }
    let grammar = this.grammars.get(rule);
    if (!grammar) {
      grammar = new CallGrammar(this.task, rule);
      this.grammars.set(rule, grammar);
    }
    return grammar;
  }

  /**
   * Greedy decoding of one batch with the KV cache: prefill the left-padded prompts, then a step per chosen
   * token, which also feeds the tokens the grammar forces after it. Rows feeding fewer tokens in a step are
   * padded on the right with masked positions, so that a row decodes as it would alone.
   */
  private async decode(
    inputs: readonly string[],
    prompts: readonly number[][],
    options: DecodeOptions,
    timing?: { prefillMs: number },
  ): Promise<StudentPrediction[]> {
    const constrained = options.constrained ?? this.task !== undefined;
    const grammar = constrained ? this.grammar(options.slotValues ?? 'spans') : undefined;
    const fastForward = grammar !== undefined && (options.fastForward ?? true);
    const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new StudentRequestError(`maxNewTokens must be a positive integer, got ${maxNewTokens}`);

    const width = Math.max(...prompts.map((p) => p.length));
    const tooLong = this.lengthRefusal(width);
    if (tooLong) throw tooLong;
    const newTokenLimit = Math.min(maxNewTokens, this.io.max_position_embeddings - width);
    const rows: DecodingRow[] = inputs.map((input) => ({
      input,
      prefix: grammar?.start(input),
      generated: [],
      nextPosition: 0,
      logProbSum: 0,
      forced: [],
      lastIndex: 0,
      forwardPasses: 1,
    }));
    // The answer may start forced (e.g. by the name of the task's only function): that goes in with the prompt.
    if (fastForward) for (const row of rows) this.feedForced(row, newTokenLimit);
    const fedPrompts = prompts.map((prompt, r) => [...prompt, ...rows[r].forced]);
    const fedWidth = Math.max(...fedPrompts.map((p) => p.length));

    // Prefill: left padding, pads masked out; position ids count real tokens only (pads get 0).
    const count = rows.length;
    const inputIds = new BigInt64Array(count * fedWidth).fill(BigInt(this.padId));
    const positions = new BigInt64Array(count * fedWidth);
    let mask: BigInt64Array<ArrayBuffer> = new BigInt64Array(count * fedWidth);
    fedPrompts.forEach((prompt, r) => {
      const pad = fedWidth - prompt.length;
      prompt.forEach((id, j) => {
        inputIds[r * fedWidth + pad + j] = BigInt(id);
        positions[r * fedWidth + pad + j] = BigInt(j);
        mask[r * fedWidth + pad + j] = 1n;
      });
      rows[r].nextPosition = prompt.length;
      rows[r].lastIndex = fedWidth - 1;
    });
    const emptyPast = new ort.Tensor('float32', new Float32Array(0), [count, this.io.num_kv_heads, 0, this.io.head_dim]);
    let past: ort.Tensor[] = this.cache.pastKey.flatMap(() => [emptyPast, emptyPast]);
    const prefillStarted = performance.now();
    let output = await this.step(inputIds, mask, positions, past, count, fedWidth);
    if (timing) timing.prefillMs = performance.now() - prefillStarted;

    let active = rows;
    let totalLength = fedWidth;
    for (;;) {
      const logits = output[0];
      const [, seq, vocab] = logits.dims;
      const data = logits.data as Float32Array;
      active.forEach((row, r) => {
        const offset = (r * seq + row.lastIndex) * vocab;
        // A forced token is scored by the logits of the position before it, as a chosen one would be.
        row.forced.forEach((id, j) => {
          const before = offset - (row.forced.length - j) * vocab;
          row.logProbSum += data[before + id] - logSumExp(data, before, vocab);
        });
        if (row.generated.length >= newTokenLimit) {
          row.stopReason = 'max_new_tokens';
          return;
        }
        const token = this.nextToken(data, offset, vocab, row.prefix);
        if (token !== undefined) row.logProbSum += data[offset + token] - logSumExp(data, offset, vocab);
        if (token === undefined) row.stopReason = 'no_allowed_token';
        else if (token === this.eosId) row.stopReason = 'eos';
        else {
          row.generated.push(token);
          row.prefix?.advance(this.tokenizer.tokenBytes![token]!);
          if (row.generated.length >= newTokenLimit) row.stopReason = 'max_new_tokens';
          else if (fastForward) this.feedForced(row, newTokenLimit);
        }
      });
      const keep = active.map((row, r) => (row.stopReason ? -1 : r)).filter((r) => r >= 0);
      if (keep.length === 0) break;
      past = output.slice(1);
      if (keep.length < active.length) {
        // Finished rows leave the batch: the others' cache rows are copied out (rows are independent).
        past = past.map((tensor) => selectRows(tensor, keep));
        mask = selectMaskRows(mask, totalLength, keep);
        active = keep.map((r) => active[r]);
      }
      // Each row feeds its chosen token and the forced ones after it; shorter rows end in masked pads.
      const fed = active.map((row) => row.generated.slice(row.generated.length - row.forced.length - 1));
      const stepLength = Math.max(...fed.map((tokens) => tokens.length));
      const nextLength = totalLength + stepLength;
      const nextMask = new BigInt64Array(active.length * nextLength);
      const nextIds = new BigInt64Array(active.length * stepLength).fill(BigInt(this.padId));
      const nextPositions = new BigInt64Array(active.length * stepLength);
      active.forEach((row, r) => {
        nextMask.set(mask.subarray(r * totalLength, (r + 1) * totalLength), r * nextLength);
        fed[r].forEach((id, j) => {
          nextIds[r * stepLength + j] = BigInt(id);
          nextPositions[r * stepLength + j] = BigInt(row.nextPosition + j);
          nextMask[r * nextLength + totalLength + j] = 1n;
        });
        row.nextPosition += fed[r].length;
        row.lastIndex = fed[r].length - 1;
        row.forwardPasses++;
      });
      mask = nextMask;
      totalLength = nextLength;
      output = await this.step(nextIds, mask, nextPositions, past, active.length, stepLength);
    }
    return rows.map((row) => this.prediction(row));
  }

  private async step(
    inputIds: BigInt64Array,
    mask: BigInt64Array,
    positions: BigInt64Array,
    past: ort.Tensor[],
    batch: number,
    seq: number,
  ): Promise<ort.Tensor[]> {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', inputIds, [batch, seq]),
      attention_mask: new ort.Tensor('int64', mask, [batch, mask.length / batch]),
      position_ids: new ort.Tensor('int64', positions, [batch, seq]),
    };
    this.cache.pastKey.forEach((name, i) => {
      feeds[name] = past[2 * i];
      feeds[this.cache.pastValue[i]] = past[2 * i + 1];
    });
    const result = await this.session.run(feeds);
    return [result.logits, ...this.cache.presentKey.flatMap((name, i) => [result[name], result[this.cache.presentValue[i]]])];
  }

  /** Appends to the row the tokens the grammar forces next, for the next pass to feed (none when over the limit). */
  private feedForced(row: DecodingRow, newTokenLimit: number): void {
    row.forced = this.forcedTokens(row.prefix!, row.generated, newTokenLimit - row.generated.length);
    for (const id of row.forced) {
      row.generated.push(id);
      row.prefix!.advance(this.tokenizer.tokenBytes![id]!);
    }
  }

  /**
   * At most `room` tokens for the bytes the grammar forces after the generated ones: the tokens that the call
   * text gets after them when tokenized whole, as in training, if they end on one of its token boundaries. The
   * last is left to the model where the text after it may merge with it (in a call `", ` is `",` then ` first`,
   * not `",` then ` `): unless it ends the call or ends a pre-token before every character the grammar allows next.
   */
  private forcedTokens(prefix: CallPrefix, generated: readonly number[], room: number): number[] {
    const forced = prefix.forcedBytes();
    if (forced.length === 0) return [];
    const tokenBytes = this.tokenizer.tokenBytes!;
    const soFar = concatBytes(generated.map((id) => tokenBytes[id]!));
    const text = wholeCharacters(soFar, forced);
    if (text === undefined) return [];
    const ids = this.tokenizer.encode(text);
    const bytes = ids.map((id) => tokenBytes[id]);
    // Only where the tokens spell the text byte for byte: not where a special token's name is spelled in a
    // free value, nor where the tokenizer's normalizer changes the text.
    if (bytes.some((b) => b === undefined) || !sameBytes(concatBytes(bytes as Uint8Array[]), utf8.encode(text))) return [];
    let at = 0;
    let length = 0;
    while (length < soFar.length) length += bytes[at++]!.length;
    if (length !== soFar.length) return [];
    const tokens = ids.slice(at);
    const fed = concatBytes(bytes.slice(at) as Uint8Array[]);
    if (!prefix.completedBy(fed) && !this.tokenizer.endsPreToken(text, nextCharacters(prefix.allowedAfter(fed)))) tokens.pop();
    return tokens.slice(0, room);
  }

  /** Greedy choice; constrained, the best-scoring allowed token, checking candidates best-first. */
  private nextToken(logits: Float32Array, offset: number, vocab: number, prefix: CallPrefix | undefined): number | undefined {
    let best = 0;
    for (let id = 1; id < vocab; id++) if (logits[offset + id] > logits[offset + best]) best = id;
    if (!prefix || this.allowed(best, prefix)) return best;
    // Higher logit first, lower id first on ties (as argmax). The allowed token is nearly always among the
    // best few, so those are ranked first and the whole vocabulary only when none of them is allowed.
    const before = (a: number, b: number) => logits[offset + b] - logits[offset + a] || a - b;
    const top = topCandidates(logits, offset, vocab, TOP_CANDIDATES, before);
    for (const id of top) if (id !== best && this.allowed(id, prefix)) return id;
    if (top.length === vocab) return undefined;
    const rest = Uint32Array.from({ length: vocab }, (_, id) => id).sort(before);
    for (const id of rest.subarray(top.length)) if (this.allowed(id, prefix)) return id;
    return undefined;
  }

  private allowed(id: number, prefix: CallPrefix): boolean {
    if (id === this.eosId) return prefix.complete;
    const bytes = this.tokenizer.tokenBytes![id];
    return bytes !== undefined && !prefix.complete && prefix.accepts(bytes);
  }

  private prediction(row: DecodingRow): StudentPrediction {
    const text = this.tokenizer.decode(row.generated);
    const base = { input: row.input, text, tokenIds: row.generated, forwardPasses: row.forwardPasses, stopReason: row.stopReason!, confidence: 0 };
    const parsed = parseCall(text);
    if (!parsed.ok) return { ...base, errors: [parsed.error] };
    if (this.task) {
      const validation = this.task.validateCall(parsed.call);
      if (!validation.ok) return { ...base, errors: validation.errors };
    }
    const scored = row.generated.length + (row.stopReason === 'eos' ? 1 : 0);
    return { ...base, call: parsed.call, confidence: scored > 0 ? Math.exp(row.logProbSum / scored) : 0 };
  }
}

const TOP_CANDIDATES = 64;

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

/**
 * Characters that may start with one of these bytes: the ASCII ones, and for any multi-byte character a letter,
 * a digit, a symbol and a space from beyond ASCII, the classes that pre-tokenizer rules tell apart.
 */
function nextCharacters(bytes: readonly number[]): string[] {
  const ascii = bytes.filter((b) => b < 0x80).map((b) => String.fromCharCode(b));
  return bytes.some((b) => b >= 0x80) ? [...ascii, 'é', '²', '“', '\u00a0'] : ascii;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `before` then the longest start of `forced` that ends on a character, as text; undefined when there is none. */
function wholeCharacters(before: Uint8Array, forced: Uint8Array): string | undefined {
  // A UTF-8 character is at most 4 bytes, so at most 3 bytes of an unfinished one are cut.
  for (let end = forced.length; end > 0 && end >= forced.length - 3; end--) {
    try {
      return strictUtf8.decode(concatBytes([before, forced.subarray(0, end)]));
    } catch {
      // cut one more byte
    }
  }
  return undefined;
}

/** The k best ids in `before` order, by one pass keeping a small sorted list. */
function topCandidates(logits: Float32Array, offset: number, vocab: number, k: number, before: (a: number, b: number) => number): number[] {
  const top: number[] = [];
  for (let id = 0; id < vocab; id++) {
    if (top.length === k && before(id, top[k - 1]) >= 0) continue;
    let at = top.length === k ? k - 1 : top.length;
    while (at > 0 && before(id, top[at - 1]) < 0) at--;
    top.splice(at, 0, id);
    if (top.length > k) top.pop();
  }
  return top;
}

/** The given batch rows of a [batch, ...] float32 tensor. */
function selectRows(tensor: ort.Tensor, rows: readonly number[]): ort.Tensor {
  const data = tensor.data as Float32Array;
  const rowSize = data.length / tensor.dims[0];
  const selected = new Float32Array(rows.length * rowSize);
  rows.forEach((r, k) => selected.set(data.subarray(r * rowSize, (r + 1) * rowSize), k * rowSize));
  return new ort.Tensor('float32', selected, [rows.length, ...tensor.dims.slice(1)]);
}

function selectMaskRows(mask: BigInt64Array, width: number, rows: readonly number[]): BigInt64Array<ArrayBuffer> {
  const selected = new BigInt64Array(rows.length * width);
  rows.forEach((r, k) => selected.set(mask.subarray(r * width, (r + 1) * width), k * width));
  return selected;
}
