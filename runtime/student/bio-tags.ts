// BIO slot tags to spans: the constrained Viterbi decoder of the encoder student and the span helpers.
// Pure functions over numbers, so the rules are tested without a model.

/** One tag of supertiny.json's `tags`: outside, or the beginning or inside of a slot's span. */
export type BioTag = { kind: 'O' } | { kind: 'B' | 'I'; slot: string };

/** "O", "B-time", "I-time" -> BioTag (the names are checked by the folder's schema). */
export function parseBioTag(tag: string): BioTag {
  if (tag === 'O') return { kind: 'O' };
  const match = /^([BI])-(.+)$/.exec(tag);
  if (!match) throw new Error(`not a BIO tag: ${JSON.stringify(tag)}`);
  return { kind: match[1] as 'B' | 'I', slot: match[2] };
}

/** The tags (indices into `tags`) a decoder may use when only `slots` are allowed: O and B-/I- of those slots. */
export function allowedTagIndices(tags: readonly BioTag[], slots: ReadonlySet<string>): number[] {
  return tags.flatMap((tag, k) => (tag.kind === 'O' || slots.has(tag.slot) ? [k] : []));
}

/** A tag path and its score: the sum of its tokens' scores. */
export interface BioPath {
  path: number[];
  score: number;
}

/**
 * The best-scoring tag sequence in which an I-x only follows B-x or I-x (never first).
 * scores[t * tags.length + k] is the score (a log-probability) of tags[k] at token t; the result has one index
 * into `tags` per token. Ties go to the lower index, so the result is deterministic.
 */
export function viterbiBio(scores: ArrayLike<number>, tokens: number, tags: readonly BioTag[]): number[] {
  return bestBioPath(scores, tokens, tags).path;
}

/**
 * viterbiBio with its score, and optionally words: where `continues[t]` is true, token t belongs to the same
 * word as token t - 1 and takes its span or its O (I-x after B-x or I-x, O after O; never B-), so a span covers
 * whole words. Without a valid path (possible only when every tag is an I-) it throws.
 */
export function bestBioPath(scores: ArrayLike<number>, tokens: number, tags: readonly BioTag[], continues?: readonly boolean[]): BioPath {
  const k = tags.length;
  if (scores.length !== tokens * k) throw new Error(`viterbiBio: ${scores.length} scores for ${tokens} tokens x ${k} tags`);
  if (continues && continues.length !== tokens) throw new Error(`viterbiBio: ${continues.length} word flags for ${tokens} tokens`);
  if (tokens === 0) return { path: [], score: 0 };
  if (!tags.some((t) => t.kind !== 'I')) throw new Error('viterbiBio: no tag can start a sequence (need O or a B- tag)');
  // Which tags may precede each tag: all for O and B-x; B-x and I-x of the same slot for I-x.
  const inside = tags.map((tag) => (tag.kind === 'I' ? tags.flatMap((p, j) => (p.kind !== 'O' && p.slot === tag.slot ? [j] : [])) : undefined));
  // Inside a word: O only after O, B- never, I-x as anywhere.
  const outside = tags.flatMap((t, j) => (t.kind === 'O' ? [j] : []));
  const inWord = tags.map((tag, j) => (tag.kind === 'O' ? outside : tag.kind === 'B' ? [] : inside[j]));
  let best = new Float64Array(k);
  let next = new Float64Array(k);
  const back = new Int32Array(tokens * k).fill(-1);
  for (let j = 0; j < k; j++) best[j] = tags[j].kind === 'I' ? -Infinity : scores[j];
  for (let t = 1; t < tokens; t++) {
    let anyBest = 0;
    for (let j = 1; j < k; j++) if (best[j] > best[anyBest]) anyBest = j;
    const predecessors = continues?.[t] ? inWord : inside;
    for (let j = 0; j < k; j++) {
      const from = predecessors[j];
      let arg = -1;
      if (from === undefined) arg = best[anyBest] > -Infinity ? anyBest : -1;
      else for (const p of from) if (best[p] > -Infinity && (arg < 0 || best[p] > best[arg])) arg = p;
      back[t * k + j] = arg;
      next[j] = arg < 0 ? -Infinity : best[arg] + scores[t * k + j];
    }
    [best, next] = [next, best];
  }
  let last = 0;
  for (let j = 1; j < k; j++) if (best[j] > best[last]) last = j;
  if (best[last] === -Infinity) throw new Error('viterbiBio: no valid tag path');
  const path = new Array<number>(tokens);
  path[tokens - 1] = last;
  for (let t = tokens - 1; t > 0; t--) path[t - 1] = back[t * k + path[t]];
  return { path, score: best[last] };
}

/** A slot's span of tokens, first and last inclusive. */
export interface TagSpan {
  slot: string;
  first: number;
  last: number;
}

/** The spans of a tag path: B-x opens a span, I-x continues an open x span (or opens one), O closes. */
export function bioSpans(path: readonly number[], tags: readonly BioTag[]): TagSpan[] {
  const spans: TagSpan[] = [];
  let open: TagSpan | undefined;
  path.forEach((index, t) => {
    const tag = tags[index];
    if (tag.kind === 'O') open = undefined;
    else if (tag.kind === 'I' && open?.slot === tag.slot) open.last = t;
    else {
      open = { slot: tag.slot, first: t, last: t };
      spans.push(open);
    }
  });
  return spans;
}

/** A half-open range of UTF-16 offsets into the input text. */
export interface CharSpan {
  start: number;
  end: number;
}

/** The input's own text of a token span: from its first token's start to its last token's end. */
export function spanText(text: string, offsets: readonly CharSpan[], span: Pick<TagSpan, 'first' | 'last'>): CharSpan & { value: string } {
  const start = offsets[span.first].start;
  const end = offsets[span.last].end;
  return { start, end, value: text.slice(start, end) };
}
