// What kinds of errors a model makes, from a report's predictions file (predictions-<model>.jsonl): wrong
// intent only, slots only, or both; among slot errors, missed and spurious slots, a right type with a wrong
// span, a right span with a wrong type; and the intents and slot types that carry most of them.
//   npx tsx scripts/analyze-errors.ts REPORT_DIR/predictions-student_int4.jsonl [--top 12]
import { promises as fs } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseCall, type Call } from '../tasks/call-format';

interface Row {
  id: string;
  input: string;
  gold: string;
  prediction: string | null;
  correct: boolean;
}

export interface SlotErrors {
  missed: { key: string; value: string }[];
  spurious: { key: string; value: string }[];
  wrongSpan: { key: string; gold: string; predicted: string }[];
  wrongType: { value: string; gold: string; predicted: string }[];
}

/** Pairs a wrong answer's arguments with the gold's: exact pairs first, then same type, then same value, then the rest. */
export function slotErrors(gold: Call, prediction: Call | undefined): SlotErrors {
  const g = gold.args.map((a) => ({ key: a.key, value: String(a.value) }));
  const p = (prediction?.args ?? []).map((a) => ({ key: a.key, value: String(a.value) }));
  const take = <T>(list: T[], match: (x: T) => boolean): T | undefined => {
    const i = list.findIndex(match);
    return i < 0 ? undefined : list.splice(i, 1)[0];
  };
  for (const a of [...g]) if (take(p, (b) => b.key === a.key && b.value === a.value)) take(g, (x) => x === a);
  const out: SlotErrors = { missed: [], spurious: [], wrongSpan: [], wrongType: [] };
  for (const a of [...g]) {
    const sameKey = take(p, (b) => b.key === a.key);
    if (sameKey) {
      out.wrongSpan.push({ key: a.key, gold: a.value, predicted: sameKey.value });
      take(g, (x) => x === a);
    }
  }
  for (const a of [...g]) {
    const sameValue = take(p, (b) => b.value === a.value);
    if (sameValue) {
      out.wrongType.push({ value: a.value, gold: a.key, predicted: sameValue.key });
      take(g, (x) => x === a);
    }
  }
  out.missed.push(...g);
  out.spurious.push(...p);
  return out;
}

function count<T>(items: T[], key: (x: T) => string): [string, number][] {
  const m = new Map<string, number>();
  for (const x of items) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '12' } } });
  if (positionals.length !== 1) throw new Error('usage: analyze-errors.ts PREDICTIONS.jsonl [--top N]');
  const top = Number(values.top);
  const rows = (await fs.readFile(positionals[0], 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Row);
  const parse = (text: string) => {
    const parsed = parseCall(text);
    if (!parsed.ok) throw new Error(`${text} does not parse: ${parsed.error}`);
    return parsed.call;
  };
  const wrong = rows.filter((r) => !r.correct).map((r) => ({ row: r, gold: parse(r.gold), prediction: r.prediction === null ? undefined : parse(r.prediction) }));
  const kinds = { intent: 0, slots: 0, both: 0, noCall: 0 };
  const errors: (SlotErrors & { intent: string })[] = [];
  const wrongIntents: { gold: string; predicted: string }[] = [];
  for (const w of wrong) {
    if (!w.prediction) {
      kinds.noCall++;
      continue;
    }
    const e = slotErrors(w.gold, w.prediction);
    const slotsWrong = e.missed.length + e.spurious.length + e.wrongSpan.length + e.wrongType.length > 0;
    const intentWrong = w.prediction.name !== w.gold.name;
    if (intentWrong) wrongIntents.push({ gold: w.gold.name, predicted: w.prediction.name });
    if (intentWrong && slotsWrong) kinds.both++;
    else if (intentWrong) kinds.intent++;
    else kinds.slots++;
    if (slotsWrong) errors.push({ ...e, intent: w.gold.name });
  }
  const out = (s: string) => process.stdout.write(s + '\n');
  out(`${rows.length} answers, ${wrong.length} wrong (${((wrong.length / rows.length) * 100).toFixed(1)}%): ${kinds.slots} slots only, ${kinds.intent} intent only, ${kinds.both} both, ${kinds.noCall} no call`);
  const missed = errors.flatMap((e) => e.missed);
  const spurious = errors.flatMap((e) => e.spurious);
  const wrongSpan = errors.flatMap((e) => e.wrongSpan);
  const wrongType = errors.flatMap((e) => e.wrongType);
  out(`slot errors: ${missed.length} gold slots missed, ${spurious.length} spurious, ${wrongSpan.length} right type with a wrong span, ${wrongType.length} right span with a wrong type`);
  const table = (title: string, entries: [string, number][]) => {
    out(`\n${title}`);
    for (const [k, n] of entries.slice(0, top)) out(`  ${String(n).padStart(5)}  ${k}`);
  };
  table('wrong answers by gold intent', count(wrong, (w) => w.gold.name));
  table('intent confusions (gold -> predicted)', count(wrongIntents, (x) => `${x.gold} -> ${x.predicted}`));
  table('missed slots by type', count(missed, (x) => x.key));
  table('spurious slots by type', count(spurious, (x) => x.key));
  table('wrong spans by type', count(wrongSpan, (x) => x.key));
  table('type confusions (gold -> predicted)', count(wrongType, (x) => `${x.gold} -> ${x.predicted}`));
  out('\nwrong spans, examples (gold | predicted)');
  for (const x of wrongSpan.slice(0, top)) out(`  ${x.key}: ${JSON.stringify(x.gold)} | ${JSON.stringify(x.predicted)}`);
}

if (require.main === module) {
  main().catch((error: Error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  });
}
