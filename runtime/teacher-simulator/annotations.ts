// What the teacher simulator "knows": the MASSIVE annotations, indexed by utterance, plus word-overlap
// neighbours (for best-effort guesses on unknown utterances and for plausible confusions).
import { Call } from '../../tasks/call-format';
import { MassiveExample, MassiveSchema, massiveGoldCall, spanOffsets } from '../../tasks/massive';

const STOPWORDS = new Set(
  'a an the to of in on at for is it me my i you your be and or what whats what\'s please can could would will do does this that with from about how tell set up'.split(' '),
);

export function utteranceKey(text: string): string {
  return text.trim().toLowerCase().replace(/\s+/g, ' ');
}

export function contentWords(text: string): string[] {
  return [...new Set(utteranceKey(text).split(/[^a-z0-9']+/).filter((w) => w !== '' && !STOPWORDS.has(w)))];
}

/** The labelled answer the simulator plays from: the gold call of a known utterance, or a guess. */
export interface KnownAnswer {
  utterance: string;
  scenario: string;
  gold: Call;
  /** False when the utterance was not in the data and the answer is a nearest-neighbour guess. */
  known: boolean;
}

export class AnnotationIndex {
  private readonly byUtterance = new Map<string, MassiveExample>();
  private readonly train: MassiveExample[];
  private readonly trainWords: string[][];
  private readonly postings = new Map<string, number[]>();
  private readonly guesses = new Map<string, KnownAnswer>();

  constructor(
    examples: readonly MassiveExample[],
    readonly schema: MassiveSchema,
  ) {
    // First occurrence wins: a handful of utterances appear twice with different labels.
    for (const ex of examples) if (!this.byUtterance.has(utteranceKey(ex.utterance))) this.byUtterance.set(utteranceKey(ex.utterance), ex);
    this.train = examples.filter((e) => e.split === 'train');
    this.trainWords = this.train.map((e) => contentWords(e.utterance));
    this.trainWords.forEach((words, i) => {
      for (const w of words) {
        const list = this.postings.get(w) ?? [];
        list.push(i);
        this.postings.set(w, list);
      }
    });
  }

  lookup(text: string): MassiveExample | undefined {
    return this.byUtterance.get(utteranceKey(text));
  }

  /** Train examples ranked by Jaccard overlap of content words (best first), filtered by `accept`. */
  nearestTrain(text: string, accept: (ex: MassiveExample) => boolean = () => true, limit = 1): MassiveExample[] {
    const words = contentWords(text);
    const overlap = new Map<number, number>();
    for (const w of words) for (const i of this.postings.get(w) ?? []) overlap.set(i, (overlap.get(i) ?? 0) + 1);
    const key = utteranceKey(text);
    const ranked = [...overlap]
      .filter(([i]) => utteranceKey(this.train[i].utterance) !== key && accept(this.train[i]))
      .map(([i, shared]) => ({ i, score: shared / (words.length + this.trainWords[i].length - shared) }))
      .sort((a, b) => b.score - a.score || a.i - b.i);
    return ranked.slice(0, limit).map(({ i }) => this.train[i]);
  }

  /** The answer to play for a user text: its annotation when known, else the nearest train utterance's. */
  answerFor(text: string): KnownAnswer {
    const example = this.lookup(text);
    if (example) return { utterance: example.utterance, scenario: example.scenario, gold: massiveGoldCall(example), known: true };
    const key = utteranceKey(text);
    let guess = this.guesses.get(key);
    if (!guess) {
      const neighbour = this.nearestTrain(text)[0] ?? this.train[0];
      // Keep the neighbour's slots whose values also occur in this text.
      const args = massiveGoldCall(neighbour).args.filter((a) => spanOffsets(text, a.value).length > 0);
      guess = { utterance: text, scenario: neighbour.scenario, gold: { name: neighbour.intent, args }, known: false };
      this.guesses.set(key, guess);
    }
    return guess;
  }
}
