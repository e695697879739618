// What a refresh reads as traffic and how it decides: capture lines and data-file lines, refused lines named by
// file, line and field, the stable split, and the promotion rule.
import { CAPTURE_FORMAT } from '../runtime/serve/capture';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readTrafficFiles, splitTraffic, stableFraction, trafficFiles, trafficId } from '../activities/refresh/traffic';
import { decidePromotion } from '../workflows/refresh-decision';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-traffic-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const write = async (name: string, lines: unknown[]) => {
  const file = path.join(dir, name);
  await fs.writeFile(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
};

describe('traffic', () => {
  test('reads capture lines (extra fields kept and ignored) and data-file lines from a folder, deduplicated by text', async () => {
    await write('a.jsonl', [
      { format: CAPTURE_FORMAT, id: 'r1', time: '2026-12-01T00:00:00Z', input: 'wake me up at five', student_call: { name: 'alarm_set', arguments: {} }, student_confidence: 0.9, cascaded: false, model_version: 'v1' },
      { format: CAPTURE_FORMAT, id: 'r2', time: '2026-12-01T00:01:00Z', input: ' play jazz ', student_call: null, student_confidence: 0.1, cascaded: true, teacher_call: { name: 'play_music', arguments: { genre: 'jazz' } }, latency_ms: 3 },
      '',
    ]);
    await write('b.jsonl', [{ id: 'x1', split: 'train', input: 'play jazz' }, { id: 'x2', split: 'test', input: 'what time is it', gold: { name: 'datetime_query', arguments: {} } }]);
    await write('notes.txt', ['not traffic']);
    const files = await trafficFiles(dir);
    expect(files.map((f) => path.basename(f))).toEqual(['a.jsonl', 'b.jsonl']);
    const read = await readTrafficFiles(files);
    expect(read.inputs).toEqual([
      { id: trafficId('wake me up at five'), text: 'wake me up at five' },
      { id: trafficId('play jazz'), text: 'play jazz', teacherCall: { name: 'play_music', arguments: { genre: 'jazz' } } },
      { id: trafficId('what time is it'), text: 'what time is it' },
    ]);
    expect(read.counts).toEqual({ files: 2, lines: 4, captured: 2, dataFileLines: 2, cascaded: 1, teacherAnswered: 1, unique: 3, duplicates: 1 });
  });

  test('a bad line is refused with its file, line and field, never its content', async () => {
    const file = await write('capture.jsonl', [
      { format: CAPTURE_FORMAT, id: 'r1', time: 't', input: 'fine', student_confidence: 1, cascaded: false },
      { format: CAPTURE_FORMAT, id: 'r2', time: 't', input: 'secret text', student_confidence: 1, cascaded: 'yes' },
    ]);
    await expect(readTrafficFiles([file])).rejects.toThrow(/^traffic file capture\.jsonl line 2: field cascaded: .*\(read as a captured request \(serve --capture\)\)$/);
    await expect(readTrafficFiles([file])).rejects.not.toThrow(/secret/);
    const broken = await write('broken.jsonl', ['{"id": "r1", "input": "half']);
    await expect(readTrafficFiles([broken])).rejects.toThrow('traffic file broken.jsonl line 1: not valid JSON');
    const noInput = await write('data.jsonl', [{ id: 'x', split: 'train' }]);
    await expect(readTrafficFiles([noInput])).rejects.toThrow(/line 1: field input: .*data file line/);
    const empty = await write('empty.jsonl', ['']);
    await expect(readTrafficFiles([empty])).rejects.toThrow('not one input');
  });

  test('the split is stable and leaves the frozen splits out; inputs the deployed student trained on are never fresh', () => {
    const inputs = Array.from({ length: 400 }, (_, i) => ({ id: `t${i}`, text: `utterance number ${i}` }));
    const frozenTexts = new Set(['utterance number 3']);
    const trainTexts = new Set(['utterance number 4', 'utterance number 5']);
    const split = splitTraffic(inputs, { freshShare: 0.3, frozenTexts, trainTexts });
    expect(split.inFrozenSplits).toBe(1);
    expect(split.newExamples).toBe(397);
    expect(split.train.length + split.fresh.length).toBe(399);
    expect(split.fresh.length / 397).toBeGreaterThan(0.22);
    expect(split.fresh.length / 397).toBeLessThan(0.38);
    expect(split.fresh.map((i) => i.text)).not.toContain('utterance number 4');
    expect(split.fresh.every((i) => stableFraction(i.text) < 0.3)).toBe(true);
    // The same text on the same side whatever else the traffic holds.
    const again = splitTraffic([...inputs].reverse().slice(0, 200), { freshShare: 0.3, frozenTexts, trainTexts });
    const fresh = new Set(split.fresh.map((i) => i.text));
    expect(again.fresh.every((i) => fresh.has(i.text))).toBe(true);
  });
});

describe('promotion rule', () => {
  const score = (exactMatch: number, count = 100) => ({ exactMatch, count });
  const rule = { frozenTolerancePoints: 0.5, freshMinGainPoints: 0 };

  test('promotes a candidate within the frozen tolerance and better on the fresh slice', () => {
    const d = decidePromotion({ frozen: { deployed: score(0.8), candidate: score(0.796) }, fresh: { deployed: score(0.6), candidate: score(0.7) } }, rule);
    expect(d.promote).toBe(true);
    expect(d.reason).toMatch(/^promoted: not worse on the frozen split and better on the fresh slice\. frozen split \(100 examples\): candidate 79\.60% vs deployed 80\.00% \(-0\.40 points/);
  });

  test('keeps the deployed version when the candidate loses more than the tolerance, or gains nothing fresh, and says which', () => {
    const worse = decidePromotion({ frozen: { deployed: score(0.8), candidate: score(0.79) }, fresh: { deployed: score(0.6), candidate: score(0.7) } }, rule);
    expect(worse.promote).toBe(false);
    expect(worse.reason).toMatch(/^kept the deployed version: the candidate is worse on the frozen split\./);
    const same = decidePromotion({ frozen: { deployed: score(0.8), candidate: score(0.85) }, fresh: { deployed: score(0.6), candidate: score(0.6) } }, rule);
    expect(same.reason).toMatch(/^kept the deployed version: the candidate is not better on the fresh slice\./);
    const both = decidePromotion({ frozen: { deployed: score(0.8), candidate: score(0.5) }, fresh: { deployed: score(0.6), candidate: score(0.5) } }, rule);
    expect(both.reason).toMatch(/worse on the frozen split and not better on the fresh slice/);
    const noFresh = decidePromotion({ frozen: { deployed: score(0.8), candidate: score(0.9) }, fresh: { deployed: score(0, 0), candidate: score(0, 0) } }, rule);
    expect(noFresh.promote).toBe(false);
    expect(noFresh.reason).toContain('fresh slice: empty');
  });
});
