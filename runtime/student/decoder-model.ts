// The decoder student in TypeScript (encoder-model.ts has the encoder's): an exported ONNX decoder run by
// onnxruntime-node, greedy decoding with the KV cache, optionally constrained to the task's calls, one request at
// a time or in left-padded batches.
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { parseCall } from '../../tasks/call-format';
import { CallGrammar, CallPrefix, SlotValueRule, ValueMemory } from './call-grammar';
import { answerEach, predictionsOf, type RuntimeAnswer } from './answers';
import { StudentModelError, StudentRequestError } from './errors';
import { CacheNames, cacheNames, checkGraphNames, OnnxIo, readOnnxIo, readTemplate, requireFile, requireFolder, StudentTemplate } from './model-folder';
import { logSumExp } from './log-softmax';
import { type Calibration, calibratedDecoderConfidence, type DecoderSignals, rawDecoderConfidence, readCalibration } from './confidence';
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
  /**
   * Constrained, feed after the chosen and forced tokens a draft of what likely follows (the schema's next key,
   * the rest of an input span being copied: CallPrefix.draftBytes) and keep the draft tokens the model confirms
   * in that pass. The answer is the one decoding without a draft gives (but for the numerics of a pass of several
   * tokens); only the passes change. Default: as fastForward.
   */
  draft?: boolean;
  /** At most this many draft tokens a pass. Default 4 (DEFAULT_DRAFT_TOKENS). */
  draftTokens?: number;
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
  /** Draft tokens fed (DecodeOptions.draft), and how many of them the model confirmed. */
  draftedTokens: number;
  acceptedDraftTokens: number;
  stopReason: StopReason;
  /**
   * With a call: with the folder's calibration.json, the calibrated probability that the call is an exact match (a
   * logistic curve over the raw confidence, fitted on the dev split); without one, the geometric mean of the output
   * tokens' probabilities (eos and fast-forwarded tokens included) under the model's full softmax, so a token the
   * grammar forced against the model's belief lowers it. 0 without a call.
   */
  confidence: number;
  /** With a call: what its tokens tell of its reliability (the calibration reads the mean; bench-cascade compares them all). */
  signals?: DecoderSignals;
}

export interface TimedStudentPrediction extends StudentPrediction, TimedRuntimePrediction {
  /** Wall time of the whole request: tokenizing, prefill, decoding, parsing. */
  latencyMs: number;
  /** Wall time of the prompt's forward pass (time to first token). */
  prefillMs: number;
}

const DEFAULT_MAX_NEW_TOKENS = 64;
const DEFAULT_BATCH_SIZE = 16;
/** Draft tokens a pass: a pass of 1 + 3 tokens costs about 30% more than one of 1 (the SmolLM2 int4 student, 2 threads). */
export const DEFAULT_DRAFT_TOKENS = 4;
/** Bytes of continuation CallPrefix.draftBytes proposes, enough for DEFAULT_DRAFT_TOKENS tokens of words. */
const DRAFT_BYTES = 48;

/** A request being decoded in a left-padded batch; rows leave the batch when they finish. */
interface DecodingRow {
  input: string;
  prefix: CallPrefix | undefined;
  /** Decided tokens (chosen and forced), without the eos. */
  generated: number[];
  stopReason?: StopReason;
  /** What the decided tokens (eos included) tell of the answer's reliability, as it is decoded (DecoderSignals). */
  signals: SignalSums;
  /** The tokens of the row's pass: decided ones (already in `generated`), then `drafted` draft tokens. */
  fed: number[];
  drafted: number;
  /** Index in `fed` of the first decided token whose log-probability comes from this pass's logits. */
  unscoredFrom: number;
  /** Position id of fed[0]. */
  firstPosition: number;
  /** Index in the pass's output of fed[0] (left padding in the prefill). */
  start: number;
  forwardPasses: number;
  draftedTokens: number;
  acceptedDraftTokens: number;
}

export class DecoderStudent implements StudentRuntime {
  readonly family = 'decoder' as const;
  private readonly cache: CacheNames;
  private readonly eosId: number;
  private readonly padId: number;
  private readonly grammars = new Map<SlotValueRule, CallGrammar>();
  /** This student's answers' values so far, for drafts (DecoderStudentOptions.rememberValues). */
  private readonly memory: ValueMemory | undefined;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly tokenizer: StudentTokenizer,
    readonly template: StudentTemplate,
    readonly io: OnnxIo,
    readonly task: StudentTask | undefined,
    readonly modelFile: string,
    rememberValues: boolean,
    /** From the folder's calibration.json: the confidence is then a calibrated probability of an exact match. */
    readonly calibration: Calibration | undefined,
  ) {
    this.memory = rememberValues ? new ValueMemory() : undefined;
    this.cache = cacheNames(io);
    this.eosId = tokenizer.requireTokenId(template.eos_token, 'eos');
    this.padId = template.pad_token ? tokenizer.requireTokenId(template.pad_token, 'pad') : this.eosId;
  }

  /** Loads an exported student folder; errors name the missing file or the mismatched tensors. */
  static async load(folder: string, options: DecoderStudentOptions = {}): Promise<DecoderStudent> {
    await requireFolder(folder);
    const modelFile = await requireFile(folder, options.modelFile ?? 'model.onnx', 'the ONNX graph');
    await requireFile(folder, 'tokenizer.json', 'the tokenizer');
    const [template, io, tokenizer, calibration] = await Promise.all([readTemplate(folder), readOnnxIo(folder), StudentTokenizer.load(folder), readCalibration(folder, 'decoder')]);
    const session = await createStudentSession(modelFile, options.threads);
    const inputShapes = new Map(session.inputMetadata.flatMap((m) => (m.isTensor ? [[m.name, m.shape] as const] : [])));
    checkGraphNames(modelFile, io, session.inputNames, session.outputNames, inputShapes);
    const model = new DecoderStudent(session, tokenizer, template, io, options.task, modelFile, options.rememberValues ?? true, calibration);
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
      grammar = new CallGrammar(this.task, rule, this.memory);
      this.grammars.set(rule, grammar);
    }
    return grammar;
  }

  /**
   * Greedy decoding of one batch with the KV cache: prefill the left-padded prompts, then a pass per chosen
   * token. A pass also feeds the tokens the grammar forces after the chosen one, and a draft of what may follow
   * them (DecodeOptions.draft), which the same pass checks: each draft token the model would have chosen is
   * kept, the first it would not have is replaced by the model's own choice, and the positions after it are
   * masked out of the cache. Rows feeding fewer tokens in a pass are padded on the right with masked positions,
   * so that a row decodes as it would alone.
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
    const draftLimit = grammar !== undefined && (options.draft ?? fastForward) ? (options.draftTokens ?? DEFAULT_DRAFT_TOKENS) : 0;
    if (!Number.isInteger(draftLimit) || draftLimit < 0) throw new StudentRequestError(`draftTokens must be a non-negative integer, got ${draftLimit}`);
    const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new StudentRequestError(`maxNewTokens must be a positive integer, got ${maxNewTokens}`);

    const width = Math.max(...prompts.map((p) => p.length));
    const tooLong = this.lengthRefusal(width);
    if (tooLong) throw tooLong;
    const newTokenLimit = Math.min(maxNewTokens, this.io.max_position_embeddings - width);
    const rows: DecodingRow[] = inputs.map((input, r) => {
      const row: DecodingRow = {
        input,
        prefix: grammar?.start(input),
        generated: [],
        signals: newSignalSums(prompts[r].length),
        fed: prompts[r],
        drafted: 0,
        unscoredFrom: prompts[r].length,
        firstPosition: 0,
        start: 0,
        forwardPasses: 1,
        draftedTokens: 0,
        acceptedDraftTokens: 0,
      };
      // The answer may start forced (e.g. by the name of the task's only function): that goes in with the prompt.
      const forced = fastForward ? this.pushForced(row, newTokenLimit) : [];
      const tokens = [...prompts[r], ...forced];
      this.planPass(row, tokens, draftLimit, newTokenLimit, this.io.max_position_embeddings - tokens.length);
      row.unscoredFrom = prompts[r].length;
      return row;
    });
    const fedWidth = Math.max(...rows.map((row) => row.fed.length));

    // Prefill: left padding, pads masked out; position ids count real tokens only (pads get 0).
    const count = rows.length;
    const inputIds = new BigInt64Array(count * fedWidth).fill(BigInt(this.padId));
    const positions = new BigInt64Array(count * fedWidth);
    let mask: BigInt64Array<ArrayBuffer> = new BigInt64Array(count * fedWidth);
    rows.forEach((row, r) => {
      row.start = fedWidth - row.fed.length;
      row.fed.forEach((id, j) => {
        inputIds[r * fedWidth + row.start + j] = BigInt(id);
        positions[r * fedWidth + row.start + j] = BigInt(j);
        mask[r * fedWidth + row.start + j] = 1n;
      });
    });
    const emptyPast = new ort.Tensor('float32', new Float32Array(0), [count, this.io.num_kv_heads, 0, this.io.head_dim]);
    let past: ort.Tensor[] = this.cache.pastKey.flatMap(() => [emptyPast, emptyPast]);
    const prefillStarted = performance.now();
    let output = await this.step(inputIds, mask, positions, past, count, fedWidth);
    if (timing) timing.prefillMs = performance.now() - prefillStarted;

    let active = rows;
    let totalLength = fedWidth;
    let passStart = 0;
    for (;;) {
      const logits = output[0];
      const [, seq, vocab] = logits.dims;
      const data = logits.data as Float32Array;
      active.forEach((row, r) => {
        const next = this.checkPass(row, data, (i) => (r * seq + row.start + i) * vocab, vocab, newTokenLimit, fastForward);
        if (row.stopReason) return;
        // Draft tokens the model did not confirm stay in the cache, masked out like pads.
        for (let i = next.last + 1; i < row.fed.length; i++) mask[r * totalLength + passStart + row.start + i] = 0n;
        const position = row.firstPosition + next.last + 1;
        this.planPass(row, next.tokens, draftLimit, newTokenLimit, this.io.max_position_embeddings - position - next.tokens.length);
        row.firstPosition = position;
        row.unscoredFrom = 1;
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
      // Each row feeds its chosen token, the forced ones after it and its draft; shorter rows end in masked pads.
      const stepLength = Math.max(...active.map((row) => row.fed.length));
      const nextLength = totalLength + stepLength;
      const nextMask = new BigInt64Array(active.length * nextLength);
      const nextIds = new BigInt64Array(active.length * stepLength).fill(BigInt(this.padId));
      const nextPositions = new BigInt64Array(active.length * stepLength);
      active.forEach((row, r) => {
        nextMask.set(mask.subarray(r * totalLength, (r + 1) * totalLength), r * nextLength);
        row.start = 0;
        row.fed.forEach((id, j) => {
          nextIds[r * stepLength + j] = BigInt(id);
          nextPositions[r * stepLength + j] = BigInt(row.firstPosition + j);
          nextMask[r * nextLength + totalLength + j] = 1n;
        });
        row.forwardPasses++;
      });
      mask = nextMask;
      passStart = totalLength;
      totalLength = nextLength;
      output = await this.step(nextIds, mask, nextPositions, past, active.length, stepLength);
    }
    return rows.map((row) => this.prediction(row));
  }

  /**
   * After a pass: scores the row's decided tokens that were fed unscored, then chooses the next token from the
   * logits of its last decided one, and goes on through the draft while the model's choice is the draft's token
   * (the tokens the grammar forces after a choice are taken as they are fed, or fed next). Returns the tokens
   * the next pass starts with and the index in this pass of the last token that stays in the cache; sets
   * `stopReason` when the answer is done.
   */
  private checkPass(
    row: DecodingRow,
    logits: Float32Array,
    offsetOf: (index: number) => number,
    vocab: number,
    newTokenLimit: number,
    fastForward: boolean,
  ): { tokens: number[]; last: number } {
    // chosen: the model's choice (its margin over its best other token is a signal); otherwise forced by the grammar.
    const score = (id: number, index: number, chosen = false) => {
      const offset = offsetOf(index);
      const logProb = logits[offset + id] - logSumExp(logits, offset, vocab);
      addTokenSignal(row.signals, logProb, chosen ? logits[offset + id] - bestOther(logits, offset, vocab, id) : undefined);
    };
    const decided = row.fed.length - row.drafted;
    // A token is scored by the logits of the position before it.
    for (let i = row.unscoredFrom; i < decided; i++) score(row.fed[i], i - 1);
    let at = decided - 1;
    for (;;) {
      if (row.generated.length >= newTokenLimit) {
        row.stopReason = 'max_new_tokens';
        return { tokens: [], last: at };
      }
      const token = this.nextToken(logits, offsetOf(at), vocab, row.prefix);
      if (token === undefined) row.stopReason = 'no_allowed_token';
      else {
        score(token, at, true);
        if (token === this.eosId) row.stopReason = 'eos';
      }
      if (row.stopReason) return { tokens: [], last: at };
      this.push(row, token!);
      if (row.generated.length >= newTokenLimit) {
        row.stopReason = 'max_new_tokens';
        return { tokens: [], last: at };
      }
      const forced = fastForward ? this.pushForced(row, newTokenLimit) : [];
      if (at + 1 >= row.fed.length || row.fed[at + 1] !== token) return { tokens: [token!, ...forced], last: at };
      // The draft's token: its logits choose the next one. The forced tokens after it are in the draft too when
      // the draft spelled them as the grammar forces them; the rest go into the next pass.
      row.acceptedDraftTokens++;
      at++;
      let f = 0;
      while (f < forced.length && at + 1 < row.fed.length && row.fed[at + 1] === forced[f]) {
        score(forced[f++], at);
        row.acceptedDraftTokens++;
        at++;
      }
      if (f < forced.length) {
        score(forced[f], at);
        return { tokens: forced.slice(f), last: at };
      }
    }
  }

  /** What the row feeds next: `tokens` (decided), then a draft of at most `draftLimit` tokens that fits in `room` positions. */
  private planPass(row: DecodingRow, tokens: number[], draftLimit: number, newTokenLimit: number, room: number): void {
    const limit = Math.min(draftLimit, newTokenLimit - row.generated.length, room);
    const draft = limit > 0 && row.prefix && !row.prefix.complete ? this.draftTokens(row.prefix, row.generated, limit) : [];
    row.fed = [...tokens, ...draft];
    row.drafted = draft.length;
    row.draftedTokens += draft.length;
  }

  private push(row: DecodingRow, token: number): void {
    row.generated.push(token);
    row.prefix?.advance(this.tokenizer.tokenBytes![token]!);
  }

  /** Appends to the row the tokens the grammar forces next and returns them (none when over the limit). */
  private pushForced(row: DecodingRow, newTokenLimit: number): number[] {
    const forced = this.callTokens(row.prefix!, row.generated, row.prefix!.forcedBytes(), newTokenLimit - row.generated.length);
    for (const id of forced) this.push(row, id);
    return forced;
  }

  /**
   * At most `room` tokens of a likely continuation (CallPrefix.draftBytes), not added to the row: tokenized as the
   * forced ones, but the last kept even where the text after it could merge with it (the model decides), and eos
   * after a draft that completes the call.
   */
  private draftTokens(prefix: CallPrefix, generated: readonly number[], room: number): number[] {
    const bytes = prefix.draftBytes(DRAFT_BYTES);
    const tokens = this.callTokens(prefix, generated, bytes, room, false);
    if (tokens.length < room && prefix.completedBy(concatBytes(tokens.map((id) => this.tokenizer.tokenBytes![id]!)))) tokens.push(this.eosId);
    return tokens;
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

  /**
   * At most `room` tokens for `bytes`, a continuation the grammar allows after the generated tokens: the tokens that
   * the call text gets after them when tokenized whole, as in training, if they end on one of its token boundaries.
   * The last is left to the model where the text after it may merge with it (in a call `", ` is `",` then ` first`,
   * not `",` then ` `): unless it ends the call or ends a pre-token before every character the grammar allows next.
   */
  private callTokens(prefix: CallPrefix, generated: readonly number[], continuation: Uint8Array, room: number, leaveOpen = true): number[] {
    if (continuation.length === 0 || room <= 0) return [];
    const tokenBytes = this.tokenizer.tokenBytes!;
    const soFar = concatBytes(generated.map((id) => tokenBytes[id]!));
    const text = wholeCharacters(soFar, continuation);
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
    if (leaveOpen && !prefix.completedBy(fed) && !this.tokenizer.endsPreToken(text, nextCharacters(prefix.allowedAfter(fed)))) tokens.pop();
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
    const base = {
      input: row.input,
      text,
      tokenIds: row.generated,
      forwardPasses: row.forwardPasses,
      draftedTokens: row.draftedTokens,
      acceptedDraftTokens: row.acceptedDraftTokens,
      stopReason: row.stopReason!,
      confidence: 0,
    };
    const parsed = parseCall(text);
    if (!parsed.ok) return { ...base, errors: [parsed.error] };
    if (this.task) {
      const validation = this.task.validateCall(parsed.call);
      if (!validation.ok) return { ...base, errors: validation.errors };
    }
    this.memory?.remember(parsed.call);
    const signals = decoderSignals(row.signals, parsed.call.args.length);
    const confidence = this.calibration ? calibratedDecoderConfidence(this.calibration, signals) : rawDecoderConfidence(signals);
    return { ...base, call: parsed.call, confidence, signals };
  }
}

const TOP_CANDIDATES = 64;

/** Running sums of an answer's token signals while it is decoded (DecoderSignals at the end). */
interface SignalSums {
  logProbs: number;
  tokens: number;
  least: number;
  leastChosen: number;
  leastMargin: number;
  chosen: number;
  promptTokens: number;
}

function newSignalSums(promptTokens: number): SignalSums {
  return { logProbs: 0, tokens: 0, least: 0, leastChosen: 0, leastMargin: Infinity, chosen: 0, promptTokens };
}

/** A scored token: its log-probability, and for a token the model chose, its lead over the best other token. */
function addTokenSignal(sums: SignalSums, logProb: number, margin: number | undefined): void {
  sums.logProbs += logProb;
  sums.tokens++;
  sums.least = Math.min(sums.least, logProb);
  if (margin === undefined) return;
  sums.chosen++;
  sums.leastChosen = Math.min(sums.leastChosen, logProb);
  sums.leastMargin = Math.min(sums.leastMargin, margin);
}

function decoderSignals(sums: SignalSums, args: number): DecoderSignals {
  return {
    meanLogProb: sums.tokens > 0 ? sums.logProbs / sums.tokens : 0,
    leastLogProb: sums.least,
    leastChosenLogProb: sums.leastChosen,
    // No choice at all (every token forced): as sure as the grammar.
    leastChosenMargin: Number.isFinite(sums.leastMargin) ? sums.leastMargin : 20,
    chosenTokens: sums.chosen,
    tokens: sums.tokens,
    promptTokens: sums.promptTokens,
    arguments: args,
  };
}

/** The highest logit of any token but `id`. */
function bestOther(logits: Float32Array, offset: number, vocab: number, id: number): number {
  let best = -Infinity;
  for (let t = 0; t < vocab; t++) if (t !== id && logits[offset + t] > best) best = logits[offset + t];
  return best;
}

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

/** `before` then the longest start of `after` that ends on a character, as text; undefined when there is none. */
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
