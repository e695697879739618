// The student's tokenizer, read from the model folder's tokenizer.json by @huggingface/tokenizers
// (the tokenizer library of Transformers.js), plus the byte string of every token for constrained decoding.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { StudentModelError } from './errors';

const utf8 = new TextEncoder();

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

/** GPT-2's byte-to-character table of byte-level BPE: printable bytes map to themselves, the rest above 255. */
function byteLevelCharToByte(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = [...bytes];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + extra++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCodePoint(chars[i]), b]));
}

async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new StudentModelError('missing_file', `${what} not found: ${file}`, file, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new StudentModelError('invalid_file', `${what} ${file} is not valid JSON: ${(err as Error).message}`, file, { cause: err });
  }
}

export interface TokenizerFiles {
  tokenizer: Tokenizer;
  tokenizerFile: string;
  tokenizerJson: Record<string, unknown>;
  /** tokenizer_config.json, {} when the folder has none. */
  config: Record<string, unknown>;
}

/** Builds the @huggingface/tokenizers Tokenizer of a model folder (tokenizer.json, optional tokenizer_config.json). */
export async function loadTokenizerFiles(folder: string): Promise<TokenizerFiles> {
  const tokenizerFile = path.join(folder, 'tokenizer.json');
  const tokenizerJson = (await readJson(tokenizerFile, 'tokenizer file')) as Record<string, unknown>;
  const configFile = path.join(folder, 'tokenizer_config.json');
  const config = (await readJson(configFile, 'tokenizer config').catch((err: StudentModelError) => {
    if (err.kind === 'missing_file') return {};
    throw err;
  })) as Record<string, unknown>;
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, config);
  } catch (err) {
    throw new StudentModelError('tokenizer', `cannot build a tokenizer from ${tokenizerFile}: ${(err as Error).message}`, tokenizerFile, { cause: err });
  }
  return { tokenizer, tokenizerFile, tokenizerJson, config };
}

export class StudentTokenizer {
  /** Ids of special added tokens (pad, bos, sep, eos, ...): never part of a call's text. */
  readonly specialIds: ReadonlySet<number>;
  /**
   * The UTF-8 bytes each token contributes to the decoded text; undefined for special tokens.
   * Present only for byte-level BPE tokenizers, where a token is an exact byte string.
   */
  readonly tokenBytes: readonly (Uint8Array | undefined)[] | undefined;
  /** Added tokens are split off before pre-tokenization, whatever the pre-tokens. */
  private readonly addedContents: readonly string[];

  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly vocabSize: number,
    addedTokens: readonly AddedTokenJson[],
    byteLevel: boolean,
    /** transformers 5 does not clean up spaces unless the tokenizer config asks; Tokenizers.js defaults to true. */
    private readonly cleanUpSpaces: boolean,
  ) {
    this.specialIds = new Set(addedTokens.filter((t) => t.special).map((t) => t.id));
    this.addedContents = addedTokens.map((t) => t.content).filter((c) => c.length > 1);
    this.tokenBytes = byteLevel ? this.byteTable(addedTokens) : undefined;
  }

  /** Reads tokenizer.json (required) and tokenizer_config.json (optional) from a model folder. */
  static async load(folder: string): Promise<StudentTokenizer> {
    const { tokenizer, tokenizerJson, config } = await loadTokenizerFiles(folder);
    const addedTokens = Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as AddedTokenJson[]) : [];
    const vocab = tokenizer.get_vocab(true);
    const vocabSize = Math.max(...vocab.values()) + 1;
    const decoder = tokenizerJson.decoder as { type?: string } | null | undefined;
    const cleanUp = (config as { clean_up_tokenization_spaces?: unknown }).clean_up_tokenization_spaces === true;
    return new StudentTokenizer(tokenizer, vocabSize, addedTokens, decoder?.type === 'ByteLevel', cleanUp);
  }

  /** Token ids of a text; special-token strings in the text (e.g. "<|bos|>") become their single ids. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** The text of generated ids without special tokens, as transformers' `decode(skip_special_tokens=True)`. */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: true, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /**
   * Whether a pre-token ends at the end of `text` whichever of `next` follows it, so that the tokens of `text` are
   * the same in any longer text (BPE merges never cross pre-tokens). False where the normalizer would change the
   * text or an added token could start before the end and go on after it.
   */
  endsPreToken(text: string, next: readonly string[]): boolean {
    const preTokenizer = this.tokenizer.pre_tokenizer;
    if (!preTokenizer || !this.tokenBytes) return false;
    if (this.addedContents.some((added) => [...added].some((_, k) => k > 0 && text.endsWith(added.slice(0, k))))) return false;
    const end = utf8.encode(text).length;
    return next.every((c) => {
      const probe = text + c;
      if (this.tokenizer.normalizer && this.tokenizer.normalizer.normalize(probe) !== probe) return false;
      // Byte-level pre-tokens have a character per byte.
      const pieces = preTokenizer.pre_tokenize(probe);
      let offset = 0;
      let boundary = false;
      for (const piece of pieces) {
        if (offset === end) boundary = true;
        offset += piece.length;
      }
      return boundary && offset === utf8.encode(probe).length;
    });
  }

  /** The id of a token string that must exist (e.g. the template's eos token). */
  requireTokenId(token: string, role: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) throw new StudentModelError('tokenizer', `the tokenizer has no ${role} token ${JSON.stringify(token)}`);
    return id;
  }

  private byteTable(addedTokens: readonly AddedTokenJson[]): (Uint8Array | undefined)[] {
    const charToByte = byteLevelCharToByte();
    const added = new Map(addedTokens.map((t) => [t.id, t]));
    const encoder = new TextEncoder();
    const table: (Uint8Array | undefined)[] = new Array(this.vocabSize).fill(undefined);
    for (let id = 0; id < this.vocabSize; id++) {
      const addedToken = added.get(id);
      if (addedToken) {
        table[id] = addedToken.special ? undefined : encoder.encode(addedToken.content);
        continue;
      }
      const token = this.tokenizer.id_to_token(id);
      if (token === undefined) continue;
      const chars = [...token];
      const bytes = chars.map((c) => charToByte.get(c));
      table[id] = bytes.every((b) => b !== undefined) ? Uint8Array.from(bytes as number[]) : undefined;
    }
    return table;
  }
}
