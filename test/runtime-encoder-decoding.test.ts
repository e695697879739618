import { mostProbablePerSlot } from '../runtime/student/encoder-model';
// The encoder student's decoding rules without a model: the constrained BIO Viterbi, spans, and the
// tokenizer's character offsets (a WordPiece tokenizer.json written here).
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allowedTagIndices, bestBioPath, bioSpans, type BioTag, decodeValueHeads, EncoderTokenizer, parseBioTag, spanText, StudentModelError, type ValueHead, isNumberText, valueLogitsWidth, viterbiBio } from '../runtime/student';

const TAGS = ['O', 'B-time', 'I-time', 'B-date', 'I-date', 'B-place', 'I-place'].map(parseBioTag);
const tagNames = (path: number[], tags: readonly BioTag[] = TAGS) => path.map((k) => (tags[k].kind === 'O' ? 'O' : `${tags[k].kind}-${(tags[k] as { slot: string }).slot}`));

/** Scores from per-token preferences: the named tag gets `high`, every other tag 0 (log-space). */
function scores(prefs: Record<string, number>[], tags: readonly BioTag[] = TAGS): number[] {
  const names = tagNames(tags.map((_, k) => k), tags);
  return prefs.flatMap((pref) => names.map((name) => pref[name] ?? 0));
}

describe('viterbiBio', () => {
  test('follows the per-token best tags when they form a valid BIO sequence', () => {
    const s = scores([{ O: 5 }, { 'B-time': 5 }, { 'I-time': 5 }, { O: 5 }]);
    expect(tagNames(viterbiBio(s, 4, TAGS))).toEqual(['O', 'B-time', 'I-time', 'O']);
  });

  test('never starts with an I- tag', () => {
    const s = scores([{ 'I-time': 5, O: 1 }, { O: 5 }]);
    expect(tagNames(viterbiBio(s, 2, TAGS))).toEqual(['O', 'O']);
  });

  test('puts an I-x only after B-x or I-x, choosing the best whole path', () => {
    // The best single tags O, I-time would be invalid; B-time I-time (4 + 5) beats O O (5 + 1).
    const s = scores([{ O: 5, 'B-time': 4 }, { 'I-time': 5, O: 1 }]);
    expect(tagNames(viterbiBio(s, 2, TAGS))).toEqual(['B-time', 'I-time']);
    // I-date cannot follow B-time even when both are each token's best.
    const t = scores([{ 'B-time': 5 }, { 'I-date': 5, 'I-time': 1 }]);
    expect(tagNames(viterbiBio(t, 2, TAGS))).toEqual(['B-time', 'I-time']);
  });

  test('over an intent\'s allowed tags only, a disallowed slot is never chosen', () => {
    const allowed = allowedTagIndices(TAGS, new Set(['date'])).map((k) => TAGS[k]);
    expect(tagNames(allowed.map((_, k) => k), allowed)).toEqual(['O', 'B-date', 'I-date']);
    const s = scores([{ 'B-time': 9, 'B-date': 2 }, { 'I-time': 9, O: 1 }], TAGS);
    const restricted = [0, 1].flatMap((t) => allowedTagIndices(TAGS, new Set(['date'])).map((k) => s[t * TAGS.length + k]));
    expect(tagNames(viterbiBio(restricted, 2, allowed), allowed)).toEqual(['B-date', 'O']);
  });

  test('handles no tokens, and rejects scores of the wrong size', () => {
    expect(viterbiBio([], 0, TAGS)).toEqual([]);
    expect(() => viterbiBio([1, 2, 3], 1, TAGS)).toThrow(/3 scores for 1 tokens x 7 tags/);
  });
});

describe('bestBioPath with words', () => {
  // "the funniest joke" as the | fun nies t | joke: tokens 2 and 3 continue token 1's word.
  const continues = [false, false, true, true, false];
  const pieces: Record<string, number>[] = [{ O: 5 }, { 'B-time': 5, O: 1 }, { 'B-time': 5, 'I-time': 4, O: 1 }, { 'B-time': 5, 'I-time': 4, O: 1 }, { O: 5 }];

  test('a word\'s tokens share one span: no B- inside a word', () => {
    expect(tagNames(viterbiBio(scores(pieces), 5, TAGS))).toEqual(['O', 'B-time', 'B-time', 'B-time', 'O']);
    const tied = bestBioPath(scores(pieces), 5, TAGS, continues);
    expect(tagNames(tied.path)).toEqual(['O', 'B-time', 'I-time', 'I-time', 'O']);
    expect(tied.score).toBe(5 + 5 + 4 + 4 + 5);
  });

  test('a word that starts outside every span stays outside, however sure its later pieces', () => {
    const s = scores([{ O: 5 }, { O: 3, 'B-time': 1 }, { 'B-time': 9, 'I-time': 2, O: 4 }, { 'I-time': 9, O: 8 }, { O: 5 }]);
    expect(tagNames(bestBioPath(s, 5, TAGS, continues).path)).toEqual(['O', 'O', 'O', 'O', 'O']);
    // (O O O: 3 + 4 + 8 against B I I: 1 + 2 + 9.) Unless the whole word in the span scores higher: 2 + 8 + 9.
    const t = scores([{ O: 5 }, { O: 3, 'B-time': 2 }, { 'B-time': 9, 'I-time': 8, O: 4 }, { 'I-time': 9, O: 8 }, { O: 5 }]);
    expect(tagNames(bestBioPath(t, 5, TAGS, continues).path)).toEqual(['O', 'B-time', 'I-time', 'I-time', 'O']);
  });

  test('without word flags it is viterbiBio; flags of the wrong length are refused', () => {
    expect(bestBioPath(scores(pieces), 5, TAGS).path).toEqual(viterbiBio(scores(pieces), 5, TAGS));
    expect(() => bestBioPath(scores(pieces), 5, TAGS, [false])).toThrow(/1 word flags for 5 tokens/);
  });
});

describe('bioSpans and spanText', () => {
  test('B- opens a span, I- continues it, O and a new B- close it; a repeated slot gives two spans', () => {
    const path = ['B-time', 'I-time', 'O', 'B-date', 'B-date', 'I-date'].map((name) => tagNames(TAGS.map((_, k) => k)).indexOf(name));
    expect(bioSpans(path, TAGS)).toEqual([
      { slot: 'time', first: 0, last: 1 },
      { slot: 'date', first: 3, last: 3 },
      { slot: 'date', first: 4, last: 5 },
    ]);
  });

  test('a span\'s value is the input between its first token\'s start and its last token\'s end', () => {
    const text = 'Wake me at Five-Thirty, ok';
    const offsets = [
      { start: 0, end: 4 },
      { start: 5, end: 7 },
      { start: 8, end: 10 },
      { start: 11, end: 15 },
      { start: 15, end: 16 },
      { start: 16, end: 22 },
      { start: 22, end: 23 },
    ];
    expect(spanText(text, offsets, { first: 3, last: 5 })).toEqual({ start: 11, end: 22, value: 'Five-Thirty' });
  });
});

describe('EncoderTokenizer offsets', () => {
  let dir: string;
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'];
  const vocab = [...specials, 'wake', 'me', 'at', 'five', 'play', 'weather', 'sao', 'paulo', '##s', '##ly', '##ing', 'ok', ',', '!', '-', "'", 'e', '##t', '##h', '##i', '##r', '##y', 'is', 't', 'h'];

  function tokenizerJson(extra: Record<string, unknown> = {}) {
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: specials.map((content) => ({ id: vocab.indexOf(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: { type: 'BertProcessing', sep: ['[SEP]', 3], cls: ['[CLS]', 2] },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])) },
      ...extra,
    };
  }

  async function load(extra: Record<string, unknown> = {}): Promise<EncoderTokenizer> {
    await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(extra)));
    return EncoderTokenizer.load(dir);
  }

  /** Each token's text in the input, '' for tokens without a span. */
  function pieces(text: string, encoded: ReturnType<EncoderTokenizer['encode']>): string[] {
    return encoded.offsets.map((o) => (o ? text.slice(o.start, o.end) : ''));
  }

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'encoder-tokenizer-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('keeps the input\'s casing and punctuation and maps sub-word pieces to their characters', async () => {
    const tokenizer = await load();
    const text = 'WAKE me at Five, Wakeings!';
    const encoded = tokenizer.encode(text, 64);
    expect(encoded.ids[0]).toBe(2);
    expect(encoded.ids[encoded.ids.length - 1]).toBe(3);
    expect(pieces(text, encoded)).toEqual(['', 'WAKE', 'me', 'at', 'Five', ',', 'Wake', 'ing', 's', '!', '']);
  });

  test('maps accents, whitespace runs, tabs, [UNK] words, CJK and astral characters back to the input', async () => {
    const tokenizer = await load();
    const text = '  Sāo\t Paulo  — 日本 🎉 weatherly';
    const encoded = tokenizer.encode(text, 64);
    // "—", "日", "本" and "🎉" are unknown words: each [UNK] covers its whole word.
    expect(pieces(text, encoded)).toEqual(['', 'Sāo', 'Paulo', '—', '日', '本', '🎉', 'weather', 'ly', '']);
    expect(encoded.ids.filter((id) => id === 1)).toHaveLength(4);
  });

  test('a special token written in the input keeps its place, so later words stay aligned', async () => {
    const tokenizer = await load();
    const text = 'play [SEP] Paulo';
    expect(pieces(text, tokenizer.encode(text, 64))).toEqual(['', 'play', '[SEP]', 'Paulo', '']);
  });

  test('truncates the input\'s tokens and keeps [CLS] and [SEP] within max_length', async () => {
    const tokenizer = await load();
    const text = 'wake me at five wake me at five';
    const encoded = tokenizer.encode(text, 6);
    expect(encoded.ids).toEqual([2, 4, 5, 6, 7, 3]);
    expect(pieces(text, encoded)).toEqual(['', 'wake', 'me', 'at', 'five', '']);
  });

  test('refuses a tokenizer whose offsets it cannot follow, naming the field', async () => {
    await expect(load({ normalizer: { type: 'Replace', pattern: { String: 'a' }, content: 'b' } })).rejects.toThrow(/tokenizer\.json: field normalizer has type Replace/);
    await expect(load({ model: { type: 'BPE', vocab: {}, merges: [] } })).rejects.toThrow(StudentModelError);
  });
});

describe('a slot the function takes once, tagged twice', () => {
  test('keeps the most probable span of that slot and every span of the others, in text order', () => {
    const spans = [
      { slot: 'time', value: 'five am', probability: 0.4 },
      { slot: 'date', value: 'today', probability: 0.9 },
      { slot: 'time', value: 'six am', probability: 0.8 },
      { slot: 'place', value: 'home', probability: 0.5 },
    ];
    expect(mostProbablePerSlot(spans).map((s) => s.value)).toEqual(['today', 'six am', 'home']);
    expect(mostProbablePerSlot([])).toEqual([]);
    // A slot the function may repeat (supertiny.json intent_repeatable) keeps every span.
    expect(mostProbablePerSlot(spans, new Set(['time'])).map((s) => s.value)).toEqual(['five am', 'today', 'six am', 'home']);
  });
});

describe('decodeValueHeads', () => {
  const heads: ValueHead[] = [
    { function: 'f', argument: 'loud', kind: 'boolean', values: ['false', 'true'], required: false, offset: 0 },
    { function: 'f', argument: 'unit', kind: 'enum', values: ['celsius', 'fahrenheit'], required: true, offset: 3 },
  ];

  test('takes each head\'s best column; an optional argument is left out when "absent" wins, a required one never is', () => {
    // Row 1 of two: absent wins both heads; unit's best value is fahrenheit.
    const logits = Float32Array.from([0, 0, 0, 0, 0, 0, /* row 1 */ 5, 1, 2, 9, 1, 3]);
    expect(valueLogitsWidth(heads)).toBe(6);
    const choices = decodeValueHeads(heads, logits, 6);
    expect(choices.map((c) => [c.argument, c.value])).toEqual([['unit', 'fahrenheit']]);
    // Its probability is the head's own softmax over all its columns, "absent" included.
    expect(choices[0].probability).toBeCloseTo(Math.exp(3) / (Math.exp(9) + Math.exp(1) + Math.exp(3)), 6);
    const present = decodeValueHeads(heads, Float32Array.from([0, 1, 4, 0, 7, 1]), 0);
    expect(present.map((c) => [c.argument, c.value])).toEqual([['loud', 'true'], ['unit', 'celsius']]);
  });

  test('only the heads it is given are read (the predicted intent\'s)', () => {
    expect(decodeValueHeads([], Float32Array.from([0, 9, 0]), 0)).toEqual([]);
    expect(decodeValueHeads(heads.slice(1), Float32Array.from([0, 9, 0, 0, 1, 2]), 0).map((c) => c.value)).toEqual(['fahrenheit']);
  });
});

describe('isNumberText', () => {
  test('a number slot\'s span is kept only when its text is a number of the slot\'s kind', () => {
    expect(['3', '-12', '0'].every((t) => isNumberText('integer', t))).toBe(true);
    expect(['three', '3.5', '03', '3 ', ''].some((t) => isNumberText('integer', t))).toBe(false);
    expect(['3.5', '-0.25', '1e3'].every((t) => isNumberText('number', t))).toBe(true);
    expect(['3,5', 'five', '.5'].some((t) => isNumberText('number', t))).toBe(false);
  });
});
