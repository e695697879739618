// The encoder student's tokenizer: token ids from @huggingface/tokenizers, plus each token's character span
// in the original input. The library gives no offsets, so they are found by normalizing the input one
// character at a time (which keeps a map back to the original) and aligning the tokens to that text.
import type { Tokenizer } from '@huggingface/tokenizers';
import type { CharSpan } from './bio-tags';
import { StudentModelError } from './errors';
import { loadTokenizerFiles } from './tokenizer';

export interface EncodedText {
  ids: number[];
  /** Each token's span in the input; null for tokens the post-processor added ([CLS], [SEP]). */
  offsets: (CharSpan | null)[];
}

interface ComponentJson {
  type?: string;
  normalizers?: ComponentJson[];
  pretokenizers?: ComponentJson[];
}

// Normalizers that act on each character alone (so per-character normalization equals the whole text's)
// and pre-tokenizers whose words are substrings of the normalized text: what the alignment relies on.
const CHARACTER_NORMALIZERS = new Set(['BertNormalizer', 'Lowercase', 'StripAccents', 'NFD', 'NFKD', 'NFC', 'NFKC']);
const SUBSTRING_PRE_TOKENIZERS = new Set(['BertPreTokenizer', 'Whitespace', 'WhitespaceSplit', 'Punctuation', 'Digits']);

function unsupported(component: ComponentJson | null | undefined, supported: ReadonlySet<string>, children: 'normalizers' | 'pretokenizers'): string | undefined {
  if (!component) return undefined;
  if (component.type === 'Sequence') {
    for (const child of component[children] ?? []) {
      const bad = unsupported(child, supported, children);
      if (bad) return bad;
    }
    return undefined;
  }
  return supported.has(component.type ?? '') ? undefined : String(component.type);
}

/** Per-character normalizations are memoized: utterances reuse few characters. */
const MAX_CACHED_CHARACTERS = 10_000;

export class EncoderTokenizer {
  private readonly normalizedChars = new Map<string, string>();
  private readonly addedTokens: ReadonlySet<string>;
  private readonly unkToken: string | undefined;
  private readonly subwordPrefix: string;

  private constructor(
    private readonly tokenizer: Tokenizer,
    addedTokens: readonly string[],
  ) {
    const model = tokenizer.model!;
    this.addedTokens = new Set(addedTokens);
    this.unkToken = model.unk_token;
    this.subwordPrefix = String((model.config as { continuing_subword_prefix?: unknown }).continuing_subword_prefix ?? '##');
  }

  /** Reads a WordPiece tokenizer.json; errors name the file and the component the offsets cannot follow. */
  static async load(folder: string): Promise<EncoderTokenizer> {
    const { tokenizer, tokenizerFile, tokenizerJson } = await loadTokenizerFiles(folder);
    const model = tokenizerJson.model as ComponentJson | undefined;
    const fail = (field: string, message: string) => new StudentModelError('tokenizer', `${tokenizerFile}: field ${field} ${message}`, tokenizerFile);
    if (model?.type !== 'WordPiece') throw fail('model.type', `is ${JSON.stringify(model?.type)}; the encoder runtime reads WordPiece (BERT) tokenizers`);
    const badNormalizer = unsupported(tokenizerJson.normalizer as ComponentJson | null, CHARACTER_NORMALIZERS, 'normalizers');
    if (badNormalizer) throw fail('normalizer', `has type ${badNormalizer}, which the runtime cannot map back to input characters`);
    const badPreTokenizer = unsupported(tokenizerJson.pre_tokenizer as ComponentJson | null, SUBSTRING_PRE_TOKENIZERS, 'pretokenizers');
    if (badPreTokenizer) throw fail('pre_tokenizer', `has type ${badPreTokenizer}, which the runtime cannot map back to input characters`);
    const added = Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as { content: string }[]).map((t) => t.content) : [];
    return new EncoderTokenizer(tokenizer, added);
  }

  /**
   * Ids and character spans of a text with the post-processor's special tokens; over maxLength tokens, the
   * text's tokens are cut at the end and the special tokens kept (as the trainer's truncation).
   */
  encode(text: string, maxLength: number): EncodedText {
    const { ids, tokens } = this.tokenizer.encode(text);
    const offsets = this.align(text, tokens);
    if (ids.length <= maxLength) return { ids, offsets };
    let lead = 0;
    while (lead < offsets.length && offsets[lead] === null) lead++;
    let trail = 0;
    while (trail < offsets.length - lead && offsets[offsets.length - 1 - trail] === null) trail++;
    const keep = Math.max(0, maxLength - lead - trail);
    const cut = <T>(list: T[]) => [...list.slice(0, lead + keep), ...list.slice(list.length - trail)];
    return { ids: cut(ids), offsets: cut(offsets) };
  }

  /** The character span of every token (null for special tokens the text does not contain). */
  private align(text: string, tokens: readonly string[]): (CharSpan | null)[] {
    const { normalized, origStart, origEnd, normAt } = this.normalize(text);
    const words = this.words(normalized);
    const offsets: (CharSpan | null)[] = [];
    let at = 0;
    let word = 0;
    for (const token of tokens) {
      if (this.addedTokens.has(token)) {
        // An added token is written in the input itself, or the post-processor's ([CLS]), or the model's [UNK].
        let o = at < normalized.length ? origStart[at] : text.length;
        while (o < text.length && /\s/.test(text[o])) o++;
        if (text.startsWith(token, o)) {
          offsets.push({ start: o, end: o + token.length });
          at = normAt[o + token.length];
          continue;
        }
        if (token !== this.unkToken) {
          offsets.push(null);
          continue;
        }
      }
      while (word < words.length && words[word].end <= at) word++;
      if (word === words.length) {
        offsets.push(null);
        continue;
      }
      const { start: wordStart, end: wordEnd } = words[word];
      if (at < wordStart) at = wordStart;
      const piece = at > wordStart && token.startsWith(this.subwordPrefix) ? token.slice(this.subwordPrefix.length) : token;
      // [UNK] stands for the whole word; a piece that does not match (a normalization the map cannot follow)
      // takes the rest of its word, so later words stay aligned.
      const matches = token !== this.unkToken && piece.length > 0 && at + piece.length <= wordEnd && normalized.startsWith(piece, at);
      const end = matches ? at + piece.length : wordEnd;
      offsets.push({ start: origStart[at], end: origEnd[end - 1] });
      at = end;
    }
    return offsets;
  }

  /** The normalized text and, per UTF-16 unit of it, the span of the input character it came from. */
  private normalize(text: string) {
    const normalizer = this.tokenizer.normalizer;
    const parts: string[] = [];
    const origStart: number[] = [];
    const origEnd: number[] = [];
    const normAt = new Int32Array(text.length + 1);
    let length = 0;
    let i = 0;
    for (const char of text) {
      let piece = this.normalizedChars.get(char);
      if (piece === undefined) {
        piece = normalizer ? normalizer.normalize(char) : char;
        if (this.normalizedChars.size < MAX_CACHED_CHARACTERS) this.normalizedChars.set(char, piece);
      }
      for (let u = 0; u < char.length; u++) normAt[i + u] = length;
      for (let u = 0; u < piece.length; u++) {
        origStart.push(i);
        origEnd.push(i + char.length);
      }
      parts.push(piece);
      length += piece.length;
      i += char.length;
    }
    normAt[text.length] = length;
    return { normalized: parts.join(''), origStart, origEnd, normAt };
  }

  /** The pre-tokenizer's words, located in the normalized text. */
  private words(normalized: string): CharSpan[] {
    const preTokenizer = this.tokenizer.pre_tokenizer;
    if (!preTokenizer) return normalized.length ? [{ start: 0, end: normalized.length }] : [];
    const spans: CharSpan[] = [];
    let at = 0;
    for (const word of preTokenizer.pre_tokenize(normalized)) {
      const start = normalized.indexOf(word, at);
      if (start < 0) continue;
      spans.push({ start, end: start + word.length });
      at = start + word.length;
    }
    return spans;
  }
}
