// What activities read back from disk is verified before use: resume chunk files and the evaluator's kept
// model copies. A damaged one is redone or rebuilt, never trusted and never fatal.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ArtifactStore } from '../artifacts/store';
import { processResumably } from '../activities/resumable';

let root: string;
let store: ArtifactStore;
beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-disk-reads-'));
  store = new ArtifactStore(path.join(root, 'artifacts'));
});
afterEach(() => fs.rm(root, { recursive: true, force: true }));

describe('resume chunk files', () => {
  const items = Array.from({ length: 9 }, (_, i) => `item-${i}`);

  /** Runs the loop over `items` in chunks of 3, recording which chunks were computed. */
  async function label(key: string, list: readonly string[] = items) {
    const computed: number[] = [];
    const out = await processResumably<string, string>({
      store,
      key,
      items: list,
      chunkSize: 3,
      processChunk: async (chunk, start) => {
        computed.push(start);
        return { results: chunk.map((c) => c.toUpperCase()), counts: { done: chunk.length } };
      },
    });
    return { ...out, computed };
  }
  const chunkFile = async (key: string, start: number) => path.join(await store.workDir(key), `chunk-${String(start).padStart(8, '0')}.json`);

  test('a whole run is reused from its chunk files, computing nothing', async () => {
    expect((await label('whole')).computed).toEqual([0, 3, 6]);
    const again = await label('whole');
    expect(again.computed).toEqual([]);
    expect(again.results).toEqual(items.map((i) => i.toUpperCase()));
    expect(again.counts).toEqual({ done: 9 });
  });

  test.each([
    ['truncated', (text: string) => text.slice(0, text.length / 2)],
    ['a changed result with its hash left as it was', (text: string) => text.replace('ITEM-4', 'ITEM-X')],
    ['not a chunk file', () => '{"results": 42}'],
    ['empty', () => ''],
  ])('a chunk file that is %s is redone, alone, and the results are right', async (_what, damage) => {
    await label('damaged');
    const file = await chunkFile('damaged', 3);
    await fs.writeFile(file, damage(await fs.readFile(file, 'utf8')));
    const again = await label('damaged');
    expect(again.computed).toEqual([3]);
    expect(again.resumedFrom).toBe(3);
    expect(again.results).toEqual(items.map((i) => i.toUpperCase()));
    expect(again.counts).toEqual({ done: 9 });
    // The redone chunk was written again, whole.
    expect((await label('damaged')).computed).toEqual([]);
  });

  test('a chunk file that answers other items (e.g. another chunk size) is redone', async () => {
    await label('other-items');
    const shifted = ['item-x', ...items.slice(1)];
    const again = await label('other-items', shifted);
    expect(again.computed).toEqual([0]);
    expect(again.results[0]).toBe('ITEM-X');
  });
});

describe("the evaluator's kept model copy", () => {
  async function modelArtifact() {
    const dir = path.join(root, 'model-src');
    await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fs.writeFile(path.join(dir, 'model.safetensors'), Buffer.alloc(4096, 7));
    await fs.writeFile(path.join(dir, 'sub', 'config.json'), '{"layers": 2}');
    return store.putDirectory('student/dir', dir);
  }

  test('is made once, then reused while it matches the artifact', async () => {
    const ref = await modelArtifact();
    const dest = path.join(root, 'models', ref.sha256);
    expect(await store.ensureDirectoryCopy(ref, dest)).toEqual({ dir: dest, rebuilt: true });
    expect(await store.ensureDirectoryCopy(ref, dest)).toEqual({ dir: dest, rebuilt: false });
  });

  test.each([
    ['a changed weight (same size)', async (dest: string) => {
      const file = path.join(dest, 'model.safetensors');
      const bytes = await fs.readFile(file);
      bytes[100] ^= 0xff;
      await fs.writeFile(file, bytes);
    }, /model\.safetensors differs from the artifact/],
    ['a truncated file', (dest: string) => fs.truncate(path.join(dest, 'sub', 'config.json'), 3), /sub\/config\.json differs/],
    ['a missing file', (dest: string) => fs.rm(path.join(dest, 'sub', 'config.json')), /missing sub\/config\.json/],
    ['an extra file', (dest: string) => fs.writeFile(path.join(dest, 'evil.py'), 'import os'), /unexpected file evil\.py/],
  ])('with %s is rebuilt from the artifact', async (_what, damage, problem) => {
    const ref = await modelArtifact();
    const dest = path.join(root, 'models', ref.sha256);
    await store.ensureDirectoryCopy(ref, dest);
    await damage(dest);
    const again = await store.ensureDirectoryCopy(ref, dest);
    expect(again).toMatchObject({ rebuilt: true, problem: expect.stringMatching(problem) });
    expect((await fs.readFile(path.join(dest, 'model.safetensors'))).equals(Buffer.alloc(4096, 7))).toBe(true);
    expect(await fs.readFile(path.join(dest, 'sub', 'config.json'), 'utf8')).toBe('{"layers": 2}');
    expect((await fs.readdir(dest)).sort()).toEqual(['model.safetensors', 'sub']);
    expect(await store.ensureDirectoryCopy(ref, dest)).toEqual({ dir: dest, rebuilt: false });
    // No leftovers of the rebuild next to the copy.
    expect(await fs.readdir(path.dirname(dest))).toEqual([ref.sha256]);
  });
});
