// What the teacher simulator "knows": a task's gold calls, indexed by input text, plus word-overlap
// neighbours (for best-effort guesses on unknown inputs and for plausible confusions). Any task with gold
// calls can be simulated: the functions' parameters and groups come from its spec.
import { Call } from '../../tasks/call-format';
import type { TaskSpec } from '../../tasks/define';
import { spanOffsets } from '../../tasks/spans';

const STOPWORDS = new Set(
  'a an the to of in on at for is it me my i you your be and or what whats what\'s please can could would will do does this that with from about how tell set up'.split(' '),
);

export function utteranceKey(text: string): string {
  return text.trim().toLowerCase().replace(/\s+/g, ' ');
}

export function contentWords(text: string): string[] {
  return [...new Set(utteranceKey(text).split(/[^a-z0-9']+/).filter((w) => w !== '' && !STOPWORDS.has(w)))];
}

/** One labelled example as the simulator sees it. */
export interface SimulatorExample {
  split: string;
  input: string;
  gold: Call;
  /** The function group of the gold call ("" when the task has none). */
  group: string;
}

/** What the simulator knows of a task. */
export interface SimulatorKnowledge {
  /** Labelled examples in source order (the first of two equal inputs wins). */
  examples: SimulatorExample[];
  /** Parameter names per output function. */
  parametersOf: Record<string, string[]>;
  /** Output functions per group (an entry tool's routing choices); one group "" when the task has none. */
  functionsByGroup: Record<string, string[]>;
  /** The order the task writes a call's arguments in (the task's canonical form). */
  canonicalize(call: Call, input: string): Call;
}

/** The knowledge of a task: its labelled examples of every split, its functions and groups. */
export async function simulatorKnowledge(task: TaskSpec<any>): Promise<SimulatorKnowledge> {
  const all = task.dataset.loadAll ? await task.dataset.loadAll() : (await Promise.all(task.dataset.splits.map((s) => task.dataset.load(s)))).flat();
  const groups = task.functionGroups ?? { '': task.functionNames };
  const groupOf = new Map<string, string>();
  for (const [group, names] of Object.entries(groups)) for (const name of names) if (!groupOf.has(name)) groupOf.set(name, group);
  const examples: SimulatorExample[] = [];
  for (const example of all) {
    const gold = task.gold(example);
    if (gold) examples.push({ split: example.split, input: task.input(example), gold, group: groupOf.get(gold.name) ?? '' });
  }
  return {
    examples,
    parametersOf: Object.fromEntries(task.functionNames.map((name) => [name, Object.keys(task.functions[name].parameters.shape)])),
    functionsByGroup: Object.fromEntries(Object.entries(groups).map(([group, names]) => [group, [...names]])),
    canonicalize: (call, input) => task.canonicalize(call, input),
  };
}

/** The labelled answer the simulator plays from: the gold call of a known input, or a guess. */
export interface KnownAnswer {
  utterance: string;
  group: string;
  gold: Call;
  /** False when the input was not in the data and the answer is a nearest-neighbour guess. */
  known: boolean;
}

export class AnnotationIndex {
  private readonly byUtterance = new Map<string, SimulatorExample>();
  private readonly train: SimulatorExample[];
  private readonly trainWords: string[][];
  private readonly postings = new Map<string, number[]>();
  private readonly guesses = new Map<string, KnownAnswer>();

  constructor(readonly knowledge: SimulatorKnowledge) {
    const { examples } = knowledge;
    // First occurrence wins: a handful of inputs appear twice with different labels.
    for (const ex of examples) if (!this.byUtterance.has(utteranceKey(ex.input))) this.byUtterance.set(utteranceKey(ex.input), ex);
    // Neighbours come from train; a task with no labelled train borrows from every split.
    const train = examples.filter((e) => e.split === 'train');
    this.train = train.length > 0 ? train : [...examples];
    this.trainWords = this.train.map((e) => contentWords(e.input));
    this.trainWords.forEach((words, i) => {
      for (const w of words) {
        const list = this.postings.get(w) ?? [];
        list.push(i);
        this.postings.set(w, list);
      }
    });
  }

  lookup(text: string): SimulatorExample | undefined {
    return this.byUtterance.get(utteranceKey(text));
  }

  /** Train examples ranked by Jaccard overlap of content words (best first), filtered by `accept`. */
  nearestTrain(text: string, accept: (ex: SimulatorExample) => boolean = () => true, limit = 1): SimulatorExample[] {
    const words = contentWords(text);
    const overlap = new Map<number, number>();
    for (const w of words) for (const i of this.postings.get(w) ?? []) overlap.set(i, (overlap.get(i) ?? 0) + 1);
    const key = utteranceKey(text);
    const ranked = [...overlap]
      .filter(([i]) => utteranceKey(this.train[i].input) !== key && accept(this.train[i]))
      .map(([i, shared]) => ({ i, score: shared / (words.length + this.trainWords[i].length - shared) }))
      .sort((a, b) => b.score - a.score || a.i - b.i);
    return ranked.slice(0, limit).map(({ i }) => this.train[i]);
  }

  /** The answer to play for a user text: its annotation when known, else the nearest train input's. */
  answerFor(text: string): KnownAnswer {
    const example = this.lookup(text);
    if (example) return { utterance: example.input, group: example.group, gold: example.gold, known: true };
    const key = utteranceKey(text);
    let guess = this.guesses.get(key);
    if (!guess) {
      const neighbour = this.nearestTrain(text)[0] ?? this.train[0];
      // Keep the neighbour's arguments whose values also occur in this text.
      const args = neighbour.gold.args.filter((a) => spanOffsets(text, a.value).length > 0);
      guess = { utterance: text, group: neighbour.group, gold: { name: neighbour.gold.name, args }, known: false };
      this.guesses.set(key, guess);
    }
    return guess;
  }
}
