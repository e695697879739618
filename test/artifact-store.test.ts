import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ArtifactCorruptedError, ArtifactMissingError, ArtifactStore, outputKey } from '../artifacts/store';

describe('artifact store', () => {
  let root: string;
  let store: ArtifactStore;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-store-'));
    store = new ArtifactStore(root);
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  test('stores content by its sha256 and reads it back', async () => {
    const ref = await store.putJsonl('inputs', [{ id: '1', utterance: 'wake me up' }]);
    expect(ref.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(ref.bytes).toBe(Buffer.byteLength('{"id":"1","utterance":"wake me up"}\n'));
    expect(ref.uri).toContain(ref.sha256);
    expect(await store.readJsonl(ref)).toEqual([{ id: '1', utterance: 'wake me up' }]);
    const again = await store.putJsonl('inputs', [{ id: '1', utterance: 'wake me up' }]);
    expect(again).toEqual(ref);
  });

  test('a read whose hash does not match is an ArtifactCorruptedError naming both hashes', async () => {
    const ref = await store.putBytes('stats', 'original');
    await fs.writeFile(store.pathOf(ref), 'tampered');
    const err = await store.readText(ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactCorruptedError);
    expect((err as Error).message).toContain(ref.sha256);
    expect((err as ArtifactCorruptedError).ref).toEqual(ref);
  });

  test('a missing blob is an ArtifactMissingError', async () => {
    const ref = await store.putBytes('stats', 'here today');
    await fs.rm(store.pathOf(ref));
    await expect(store.readText(ref)).rejects.toBeInstanceOf(ArtifactMissingError);
  });

  test('memo skips the work when its output exists and redoes it when the output is corrupted', async () => {
    const key = outputKey('count', { n: 3 });
    let runs = 0;
    const produce = async () => {
      runs += 1;
      return { counts: await store.putJson('counts', { n: 3 }) };
    };
    const first = await store.memo(key, produce);
    const second = await store.memo(key, produce);
    expect(first.reused).toBe(false);
    expect(second.reused).toBe(true);
    expect(runs).toBe(1);
    await fs.writeFile(store.pathOf(first.value.counts), 'garbage');
    const third = await store.memo(key, produce);
    expect(third.reused).toBe(false);
    expect(runs).toBe(2);
    expect(await store.readJson(third.value.counts)).toEqual({ n: 3 });
  });

  test('directory artifacts verify every member and materialize a copy', async () => {
    const dir = path.join(root, 'model');
    await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fs.writeFile(path.join(dir, 'config.json'), '{"layers":2}');
    await fs.writeFile(path.join(dir, 'sub', 'weights.bin'), Buffer.from([1, 2, 3]));
    const ref = await store.putDirectory('model/dir', dir);
    const copy = await store.materializeDirectory(ref, path.join(root, 'copy'));
    expect(await fs.readFile(path.join(copy, 'sub', 'weights.bin'))).toEqual(Buffer.from([1, 2, 3]));
    const manifest = await store.readJson<{ files: { path: string; sha256: string }[] }>(ref);
    const weights = manifest.files.find((f) => f.path.endsWith('weights.bin'))!;
    await fs.writeFile(path.join(root, 'blobs', 'sha256', weights.sha256.slice(0, 2), weights.sha256), 'xx');
    const err = await store.verifyDirectory(ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactCorruptedError);
    expect((err as Error).message).toContain('weights.bin');
  });

  test('materializeFile gives a child process a verified private copy; a damaged blob leaves no file behind', async () => {
    const ref = await store.putJsonl('sft', [{ messages: [] }]);
    const dest = path.join(root, 'run', 'inputs', 'sft.jsonl');
    await store.materializeFile(ref, dest);
    expect(await fs.readFile(dest, 'utf8')).toBe('{"messages":[]}\n');
    // Damaging the blob afterwards does not touch the copy the trainer reads.
    await fs.writeFile(store.pathOf(ref), 'not the dataset anymore');
    expect(await fs.readFile(dest, 'utf8')).toBe('{"messages":[]}\n');
    const other = path.join(root, 'run2', 'sft.jsonl');
    await expect(store.materializeFile(ref, other)).rejects.toBeInstanceOf(ArtifactCorruptedError);
    expect(await fs.readdir(path.dirname(other)).catch(() => [])).toEqual([]);
    await fs.rm(store.pathOf(ref));
    await expect(store.materializeFile(ref, other)).rejects.toBeInstanceOf(ArtifactMissingError);
  });

  test('output keys are stable under key order and change with the inputs', () => {
    expect(outputKey('a', { x: 1, y: 2 })).toBe(outputKey('a', { y: 2, x: 1 }));
    expect(outputKey('a', { x: 1 })).not.toBe(outputKey('a', { x: 2 }));
  });
});
