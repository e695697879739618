// Constrained decoding: a byte-level prefix checker for the compact call format of one task. A token is
// allowed when its bytes keep the output a prefix of `name(key="value", ...)` that the task's schema
// accepts. Only the printed form is accepted (separator ", ", no other whitespace), as the student is
// trained on printCall's output.
import { z } from 'zod';
import type { Call } from '../../tasks/call-format';
import type { TaskSpec } from '../../tasks/define';

/**
 * Which slot values may be generated for the task's span arguments (TaskSpec.spanArguments; every argument
 * when the task does not say); any other argument takes any string its schema accepts, an enum's value
 * constrained from its first byte:
 * - `spans`: substrings of the input that start and end at word boundaries and are not padded with
 *   whitespace (MASSIVE's slot values are such spans; its verifier checks exactly this);
 * - `substrings`: any non-empty substring of the input;
 * - `any`: any non-empty JSON string.
 */
export type SlotValueRule = 'spans' | 'substrings' | 'any';

interface FunctionGrammar {
  slots: readonly string[];
  repeatable: ReadonlySet<string>;
  parameters: z.ZodObject;
  /** Arguments whose values are spans of the input. */
  spanKeys: ReadonlySet<string>;
  /** Enum arguments: each allowed value as the bytes between its JSON quotes. */
  enums: ReadonlyMap<string, Uint8Array[]>;
  /** Arguments the tool's JSON Schema types as numbers: their values are written as JSON numbers, in quotes. */
  numbers: ReadonlyMap<string, 'integer' | 'number'>;
}

/** The values of an enum parameter (optional or not), else undefined. */
function enumOptions(type: z.ZodType): string[] | undefined {
  const inner = type instanceof z.ZodOptional ? (type.unwrap() as z.ZodType) : type;
  return inner instanceof z.ZodEnum ? (inner.options as unknown[]).filter((o): o is string => typeof o === 'string') : undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isIdentifierByte = (b: number) => (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x5f;
const isHexByte = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46);
// Starts of the string forms of JSON numbers (tasks/from-files/arguments.ts: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?).
const INTEGER_PREFIX = /^-?(0|[1-9]\d*)?$/;
const NUMBER_PREFIX = /^-?$|^-?(0|[1-9]\d*)(\.\d*)?$|^-?(0|[1-9]\d*)(\.\d+)?[eE][+-]?\d*$/;
const JSON_ESCAPES = new Set([...'"\\/bfnrtu'].map((c) => c.charCodeAt(0)));
// The word characters of the span check (tasks/spans.ts, spanOffsets).
const isWordChar = (ch: string | undefined) => ch !== undefined && /[A-Za-z0-9]/.test(ch);
const isSpace = (ch: string | undefined) => ch !== undefined && /\s/.test(ch);

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** The input as it appears inside a JSON string literal, with where a slot value may start and end. */
interface InputText {
  /** UTF-8 bytes of JSON.stringify(input) without the quotes. */
  bytes: Uint8Array;
  /** Offsets where a value may start. */
  starts: number[];
  /** endAllowed[i]: a value may end just before bytes[i] (i may be bytes.length). */
  endAllowed: Uint8Array;
}

function inputText(input: string, rule: 'spans' | 'substrings'): InputText {
  const chars = [...input];
  const pieces = chars.map((ch) => utf8.encode(JSON.stringify(ch).slice(1, -1)));
  const length = pieces.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(length);
  const starts: number[] = [];
  const endAllowed = new Uint8Array(length + 1);
  let offset = 0;
  for (let i = 0; i <= chars.length; i++) {
    if (rule === 'substrings') {
      if (i < chars.length) starts.push(offset);
      endAllowed[offset] = 1;
    } else {
      if (i < chars.length && !isWordChar(chars[i - 1]) && !isSpace(chars[i])) starts.push(offset);
      endAllowed[offset] = i > 0 && !isWordChar(chars[i]) && !isSpace(chars[i - 1]) ? 1 : 0;
    }
    if (i < chars.length) {
      bytes.set(pieces[i], offset);
      offset += pieces[i].length;
    }
  }
  return { bytes, starts, endAllowed };
}

/**
 * How many times one key may appear in a call when the schema lets it repeat. The schema itself sets no
 * bound; without one a student stuck in a loop writes the same slot until the token limit cuts the answer
 * (seen once in 2,974 MASSIVE test answers). MASSIVE never has a slot type more than 3 times in an utterance.
 */
export const MAX_KEY_REPEATS = 3;

/**
 * The values a student has given each function's arguments, counted: a draft of a value (CallPrefix.draftBytes)
 * guesses the most frequent one that starts with what is generated so far. It holds at most `capacity` distinct
 * values per argument (later new ones are not kept), in memory only.
 */
export class ValueMemory {
  private readonly values = new Map<string, Map<string, { bytes: Uint8Array; count: number }>>();

  constructor(readonly capacity = 256) {}

  remember(call: Call): void {
    for (const { key, value } of call.args) {
      const slot = `${call.name}(${key}`;
      let values = this.values.get(slot);
      if (!values) this.values.set(slot, (values = new Map()));
      const known = values.get(value);
      if (known) known.count++;
      else if (values.size < this.capacity) values.set(value, { bytes: utf8.encode(JSON.stringify(value).slice(1, -1)), count: 1 });
    }
  }

  /** The most frequent remembered value of the argument (as bytes inside its JSON quotes) that starts with `prefix`; the first remembered on ties. */
  guess(name: string, key: string, prefix: readonly number[]): Uint8Array | undefined {
    let best: { bytes: Uint8Array; count: number } | undefined;
    for (const value of this.values.get(`${name}(${key}`)?.values() ?? []) {
      if ((best === undefined || value.count > best.count) && value.bytes.length >= prefix.length && prefix.every((b, i) => value.bytes[i] === b)) best = value;
    }
    return best?.bytes;
  }
}

/** The grammar of one task's calls; `start(input)` begins the prefix of one answer. */
export class CallGrammar {
  private readonly functions: ReadonlyMap<string, FunctionGrammar>;
  private readonly namePrefixes: ReadonlySet<string>;
  /** @internal */ readonly functionNames: readonly string[];

  constructor(
    private readonly task: Pick<TaskSpec, 'functions' | 'validateCall'> & Partial<Pick<TaskSpec, 'spanArguments'>>,
    readonly slotValues: SlotValueRule = 'spans',
    /** Earlier answers' values, for drafts (CallPrefix.draftBytes); they never change what the grammar allows. */
    readonly memory?: ValueMemory,
  ) {
    const functions = new Map<string, FunctionGrammar>();
    for (const [name, fn] of Object.entries(task.functions)) {
      const shape = fn.parameters.shape as Record<string, z.ZodType>;
      const slots = Object.keys(shape);
      // A repeated key becomes an array of values (callArgumentsObject); the schema says whether it may.
      const repeatable = new Set(slots.filter((key) => shape[key].safeParse(['a', 'b']).success));
      const spanKeys = new Set(task.spanArguments ? (task.spanArguments[name] ?? []) : slots);
      const enums = new Map<string, Uint8Array[]>();
      for (const key of slots) {
        const options = enumOptions(shape[key]);
        if (options && !spanKeys.has(key)) enums.set(key, options.map((o) => utf8.encode(JSON.stringify(o).slice(1, -1))));
      }
      const properties = (fn.toolSchema?.parameters as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties ?? {};
      const numbers = new Map<string, 'integer' | 'number'>();
      for (const key of slots) {
        const type = properties[key]?.type;
        if ((type === 'integer' || type === 'number') && !spanKeys.has(key)) numbers.set(key, type);
      }
      functions.set(name, { slots, repeatable, parameters: fn.parameters, spanKeys, enums, numbers });
    }
    this.functions = functions;
    this.functionNames = [...functions.keys()];
    this.namePrefixes = new Set([...functions.keys()].flatMap((name) => [...name].map((_, i) => name.slice(0, i + 1))));
  }

  start(input: string): CallPrefix {
    const text = this.slotValues === 'any' ? undefined : inputText(input, this.slotValues);
    return new CallPrefix(this, text, text?.bytes ?? utf8.encode(JSON.stringify(input).slice(1, -1)));
  }

  /** @internal */ isNamePrefix(prefix: string): boolean {
    return this.namePrefixes.has(prefix);
  }

  /** @internal */ function(name: string): FunctionGrammar | undefined {
    return this.functions.get(name);
  }

  /** @internal */ acceptsValue(fn: FunctionGrammar, key: string, value: string): boolean {
    return (fn.parameters.shape[key] as z.ZodType).safeParse(value).success;
  }

  /** @internal */ acceptsCall(call: Call): boolean {
    return this.task.validateCall(call).ok;
  }
}

enum Phase {
  Name,
  ArgsOrClose,
  Key,
  KeyStart,
  Quote,
  Value,
  AfterValue,
  Space,
  Done,
}

/** The state of one answer being generated; `accepts` tries bytes without changing the state. */
export class CallPrefix {
  private phase = Phase.Name;
  private name = '';
  private fn: FunctionGrammar | undefined;
  private key = '';
  private args: { key: string; value: string }[] = [];
  /** Raw bytes of the current value between its quotes. */
  private valueBytes: number[] = [];
  /** For `spans`/`substrings`: offsets into the input's bytes where the value continues. */
  private matches: number[] = [];
  /** For `any`: 0 outside an escape, 1 after a backslash, 2..5 hex digits still expected + 1. */
  private escape = 0;
  /** For `any`: UTF-8 continuation bytes still expected. */
  private continuation = 0;
  /** Whether the current value is a span of the input (else any string its schema accepts). */
  private spanValue = false;
  private readonly bytes: number[] = [];

  /** @internal */ constructor(
    private readonly grammar: CallGrammar,
    private readonly text: InputText | undefined,
    /** The input's bytes as in a JSON string, for drafts of free values that copy it. */
    private readonly inputBytes: Uint8Array,
  ) {}

  /** The call text so far. */
  get textSoFar(): string {
    return utf8Decoder.decode(Uint8Array.from(this.bytes));
  }

  /** True when the call is complete: the only continuation is the end of the answer. */
  get complete(): boolean {
    return this.phase === Phase.Done;
  }

  /** Would the bytes keep the output a valid prefix? The state is not changed. */
  accepts(bytes: Uint8Array): boolean {
    if (bytes.length === 0) return false;
    const trial = this.clone();
    for (const b of bytes) if (!trial.step(b)) return false;
    return true;
  }

  /** Would the bytes complete the call? The state is not changed. */
  completedBy(bytes: Uint8Array): boolean {
    const trial = this.clone();
    return bytes.every((b) => trial.step(b)) && trial.phase === Phase.Done;
  }

  /** The bytes the grammar allows after `bytes` (none when they break the call or complete it). The state is not changed. */
  allowedAfter(bytes: Uint8Array): number[] {
    const trial = this.clone();
    if (!bytes.every((b) => trial.step(b))) return [];
    return Array.from({ length: 256 }, (_, b) => b).filter((b) => trial.clone().step(b));
  }

  /**
   * The longest byte string every valid continuation starts with: what the grammar leaves no choice over, such as
   * the rest of the only key that fits or `", ` while a required key is missing. Empty at a choice (inside a free
   * value, between `,` and `)`, between keys or names) and once the call is complete. Found by trying every byte
   * on the grammar's own steps, so that it cannot disagree with `accepts`.
   */
  forcedBytes(): Uint8Array {
    const trial = this.clone();
    const forced: number[] = [];
    for (;;) {
      const allowed: number[] = [];
      for (let b = 0; b < 256 && allowed.length < 2; b++) if (trial.clone().step(b)) allowed.push(b);
      if (allowed.length !== 1) return Uint8Array.from(forced);
      trial.step(allowed[0]);
      forced.push(allowed[0]);
    }
  }

  /**
   * A guess at how the call goes on, at most `limit` bytes, for a draft that the model confirms or not (it is never
   * forced on the answer): what the grammar forces; the schema's first unused key, in declaration order; the rest of
   * an input span from where the value so far is in the input; the same for a free value whose end is in the
   * input; `, ` while a key is unused, else `)`. It stops where there is no guess: a value's first byte, a choice
   * between functions or enum values. The state is not changed.
   */
  draftBytes(limit: number): Uint8Array {
    let trial = this.clone();
    const guessed: number[] = [];
    while (guessed.length < limit) {
      let next: CallPrefix | undefined;
      for (const b of trial.guesses()) {
        const attempt = trial.clone();
        if (attempt.step(b)) {
          next = attempt;
          guessed.push(b);
          break;
        }
      }
      if (!next) break;
      trial = next;
    }
    return Uint8Array.from(guessed);
  }

  /** The next byte's guesses, best first (draftBytes takes the first the grammar allows). */
  private guesses(): number[] {
    switch (this.phase) {
      case Phase.Name: {
        const names = this.grammar.functionNames.filter((name) => name.startsWith(this.name));
        if (names.length !== 1) return [];
        return [names[0].length === this.name.length ? 0x28 : names[0].charCodeAt(this.name.length)];
      }
      case Phase.ArgsOrClose:
      case Phase.KeyStart:
      case Phase.Key: {
        const typed = this.phase === Phase.Key ? this.key : '';
        const key = this.nextKey(typed);
        if (key === undefined) return this.phase === Phase.ArgsOrClose ? [0x29] : [];
        return [key.length === typed.length ? 0x3d : key.charCodeAt(typed.length)];
      }
      case Phase.Quote:
        return [QUOTE];
      case Phase.Value:
        return this.valueGuesses();
      case Phase.AfterValue:
        return this.nextKey('') !== undefined ? [0x2c, 0x29] : [0x29];
      case Phase.Space:
        return [0x20];
      case Phase.Done:
        return [];
    }
  }

  /** The first key in the schema's order that starts with `prefix` and is not used yet (or may be used again). */
  private nextKey(prefix: string): string | undefined {
    const candidates = this.fn!.slots.filter((key) => key.startsWith(prefix) && this.keyAvailable(key));
    return candidates.find((key) => !this.args.some((a) => a.key === key)) ?? (prefix ? candidates[0] : undefined);
  }

  /**
   * A value's next byte: the only enum value that fits; the student's most frequent earlier value of this argument
   * that starts with the value so far (ValueMemory); the input's next byte where the value so far (a span) or its
   * end (a free value) is in the input; else the closing quote.
   */
  private valueGuesses(): number[] {
    const at = this.valueBytes.length;
    const next = (bytes: Uint8Array | undefined) => (bytes === undefined ? [] : [at < bytes.length ? bytes[at] : QUOTE]);
    const options = this.fn!.enums.get(this.key);
    if (options) {
      const fits = options.filter((o) => o.length >= at && this.valueBytes.every((v, i) => o[i] === v));
      return fits.length === 1 ? next(fits[0]) : next(this.grammar.memory?.guess(this.name, this.key, this.valueBytes));
    }
    const guesses = next(this.grammar.memory?.guess(this.name, this.key, this.valueBytes));
    if (this.spanValue && at > 0) {
      const from = this.matches[0];
      guesses.push(from < this.text!.bytes.length ? this.text!.bytes[from] : QUOTE);
    } else if (at > 0) {
      // A free value: the input's next byte after the longest end of the value (2 to 24 bytes) found in the input.
      for (let length = Math.min(at, 24); length >= 2; length--) {
        const found = indexOfBytes(this.inputBytes, this.valueBytes.slice(at - length));
        if (found < 0) continue;
        guesses.push(found + length < this.inputBytes.length ? this.inputBytes[found + length] : QUOTE);
        break;
      }
    }
    if (at > 0) guesses.push(QUOTE);
    return guesses;
  }

  /** Appends bytes that `accepts` allowed; throws on bytes that break the grammar. */
  advance(bytes: Uint8Array): void {
    for (const b of bytes) {
      if (!this.step(b)) throw new Error(`byte ${b} does not continue the call ${JSON.stringify(this.textSoFar)}`);
    }
  }

  private clone(): CallPrefix {
    const copy = new CallPrefix(this.grammar, this.text, this.inputBytes);
    copy.phase = this.phase;
    copy.name = this.name;
    copy.fn = this.fn;
    copy.key = this.key;
    copy.args = this.args;
    copy.valueBytes = this.valueBytes.slice();
    copy.matches = this.matches;
    copy.escape = this.escape;
    copy.continuation = this.continuation;
    copy.spanValue = this.spanValue;
    return copy;
  }

  private keyAvailable(key: string): boolean {
    const uses = this.args.filter((a) => a.key === key).length;
    return uses === 0 || (this.fn!.repeatable.has(key) && uses < MAX_KEY_REPEATS);
  }

  private isKeyPrefix(prefix: string): boolean {
    return this.fn!.slots.some((key) => key.startsWith(prefix) && this.keyAvailable(key));
  }

  private closeCall(): boolean {
    if (!this.grammar.acceptsCall({ name: this.name, args: this.args })) return false;
    this.phase = Phase.Done;
    return true;
  }

  /** Consumes one byte; false (state unusable) when the byte breaks the grammar. */
  private step(b: number): boolean {
    const ok = this.consume(b);
    if (ok) this.bytes.push(b);
    return ok;
  }

  private consume(b: number): boolean {
    const ch = String.fromCharCode(b);
    switch (this.phase) {
      case Phase.Name:
        if (isIdentifierByte(b) && this.grammar.isNamePrefix(this.name + ch)) {
          this.name += ch;
          return true;
        }
        if (ch === '(' && this.grammar.function(this.name)) {
          this.fn = this.grammar.function(this.name);
          this.phase = Phase.ArgsOrClose;
          return true;
        }
        return false;
      case Phase.ArgsOrClose:
        if (ch === ')') return this.closeCall();
        return this.startKey(b, ch);
      case Phase.KeyStart:
        return this.startKey(b, ch);
      case Phase.Key:
        if (isIdentifierByte(b) && this.isKeyPrefix(this.key + ch)) {
          this.key += ch;
          return true;
        }
        if (ch === '=' && this.fn!.slots.includes(this.key) && this.keyAvailable(this.key)) {
          this.phase = Phase.Quote;
          return true;
        }
        return false;
      case Phase.Quote:
        if (b !== QUOTE) return false;
        this.phase = Phase.Value;
        this.valueBytes = [];
        this.escape = 0;
        this.continuation = 0;
        this.spanValue = this.text !== undefined && this.fn!.spanKeys.has(this.key);
        this.matches = this.spanValue ? this.text!.starts : [];
        return true;
      case Phase.Value:
        return this.spanValue ? this.consumeSpanByte(b, this.text!) : this.consumeStringByte(b);
      case Phase.AfterValue:
        // A comma only where another slot can follow: otherwise the call would reach a dead end.
        if (ch === ',' && this.fn!.slots.some((key) => this.keyAvailable(key))) {
          this.phase = Phase.Space;
          return true;
        }
        if (ch === ')') return this.closeCall();
        return false;
      case Phase.Space:
        if (ch !== ' ') return false;
        this.phase = Phase.KeyStart;
        return true;
      case Phase.Done:
        return false;
    }
  }

  private startKey(b: number, ch: string): boolean {
    if (!isIdentifierByte(b) || !this.isKeyPrefix(ch)) return false;
    this.key = ch;
    this.phase = Phase.Key;
    return true;
  }

  private consumeSpanByte(b: number, text: InputText): boolean {
    if (b === QUOTE && this.valueBytes.length > 0 && this.matches.some((at) => text.endAllowed[at])) return this.closeValue();
    const next: number[] = [];
    for (const at of this.matches) if (at < text.bytes.length && text.bytes[at] === b) next.push(at + 1);
    if (next.length === 0) return false;
    this.matches = next;
    this.valueBytes.push(b);
    return true;
  }

  private consumeStringByte(b: number): boolean {
    const numeric = this.fn!.numbers.get(this.key);
    if (numeric && b !== QUOTE) {
      // A number's value: only bytes that keep it the start of a JSON number (an integer's: digits after an optional '-').
      const prefix = String.fromCharCode(...this.valueBytes, b);
      if (!(numeric === 'integer' ? INTEGER_PREFIX : NUMBER_PREFIX).test(prefix)) return false;
    }
    const options = this.fn!.enums.get(this.key);
    if (options && b !== QUOTE) {
      // An enum's value: only bytes that keep it a prefix of one of its values.
      const at = this.valueBytes.length;
      if (!options.some((o) => o.length > at && o[at] === b && this.valueBytes.every((v, i) => o[i] === v))) return false;
    }
    if (this.escape === 1) {
      if (!JSON_ESCAPES.has(b)) return false;
      this.escape = b === 0x75 ? 5 : 0;
    } else if (this.escape > 1) {
      if (!isHexByte(b)) return false;
      this.escape = this.escape === 2 ? 0 : this.escape - 1;
    } else if (this.continuation > 0) {
      if ((b & 0xc0) !== 0x80) return false;
      this.continuation--;
    } else if (b === QUOTE) {
      return this.valueBytes.length > 0 && this.closeValue();
    } else if (b === BACKSLASH) {
      this.escape = 1;
    } else if (b < 0x20) {
      return false;
    } else if (b >= 0x80) {
      if ((b & 0xe0) === 0xc0 && b >= 0xc2) this.continuation = 1;
      else if ((b & 0xf0) === 0xe0) this.continuation = 2;
      else if ((b & 0xf8) === 0xf0 && b <= 0xf4) this.continuation = 3;
      else return false;
    }
    this.valueBytes.push(b);
    return true;
  }

  private closeValue(): boolean {
    let value: string;
    try {
      value = JSON.parse(`"${utf8Decoder.decode(Uint8Array.from(this.valueBytes))}"`) as string;
    } catch {
      return false;
    }
    if (!this.grammar.acceptsValue(this.fn!, this.key, value)) return false;
    this.args = [...this.args, { key: this.key, value }];
    this.phase = Phase.AfterValue;
    return true;
  }
}

/** Where `needle` first occurs in `haystack`, or -1. */
function indexOfBytes(haystack: Uint8Array, needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
