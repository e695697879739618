import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ArtifactCorruptedError, ArtifactMissingError, ArtifactStore, InvalidManifestError, outputKey, sha256File } from '../artifacts/store';
import { ArtifactRefSchema, type ArtifactRef } from '../artifacts/ref';
import { isInside, joinInside } from '../artifacts/confined-path';

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

  test('a read whose hash does not match is an ArtifactCorruptedError naming the expected hash, never the found hash, size or path', async () => {
    const ref = await store.putBytes('stats', 'original');
    await fs.writeFile(store.pathOf(ref), 'tampered, longer');
    const err = await store.readText(ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactCorruptedError);
    expect((err as Error).message).toContain(ref.sha256);
    expect((err as Error).message).not.toContain(createHash('sha256').update('tampered, longer').digest('hex'));
    expect((err as Error).message).not.toMatch(/\b16 bytes/);
    expect((err as Error).message).not.toContain(root);
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
  describe('confinement: a ref names a blob of this store by its sha256, and nothing else', () => {
    let outside: string;
    let sentinel: string;
    beforeEach(async () => {
      outside = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-outside-'));
      sentinel = path.join(outside, 'sentinel.txt');
      await fs.writeFile(sentinel, 'root:x:0:0 sentinel content\n');
    });
    afterEach(() => fs.rm(outside, { recursive: true, force: true }));

    test('a file: uri outside the store is never read: the store looks up its own blob for the sha256', async () => {
      const actual = await sha256File(sentinel);
      const ref = { uri: `file://${outside}/blobs/sha256/${actual.sha256.slice(0, 2)}/${actual.sha256}`, ...actual, kind: 'sft' };
      expect(store.pathOf(ref)).toBe(path.join(root, 'blobs', 'sha256', actual.sha256.slice(0, 2), actual.sha256));
      const err = await store.readText(ref).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ArtifactMissingError);
      expect((err as Error).message).not.toContain(outside);
      await expect(store.materializeFile(ref, path.join(root, 'copy.txt'))).rejects.toBeInstanceOf(ArtifactMissingError);
      expect(await fs.readdir(root)).not.toContain('copy.txt');
    });

    test('the ref schema refuses a uri that is not the store blob of its sha256, and a sha256 that is not hex', () => {
      const sha256 = 'a'.repeat(64);
      const good = { uri: `file:///data/artifacts/blobs/sha256/aa/${sha256}`, sha256, bytes: 1, kind: 'sft' };
      expect(ArtifactRefSchema.safeParse(good).success).toBe(true);
      const issues = (ref: unknown) => ArtifactRefSchema.safeParse(ref).error?.issues.map((i) => i.path.join('.'));
      expect(issues({ ...good, uri: 'file:///etc/passwd' })).toEqual(['uri']);
      expect(issues({ ...good, uri: `https://example.com/blobs/sha256/aa/${sha256}` })).toEqual(['uri']);
      expect(issues({ ...good, uri: `file:///data/blobs/sha256/bb/${'b'.repeat(64)}` })).toEqual(['uri']);
      expect(issues({ ...good, sha256: '../../../etc/passwd' })).toEqual(['sha256']);
      expect(issues({ ...good, kind: '../x' })).toEqual(['kind']);
      expect(issues({ ...good, extra: 1 })).toEqual(['']);
      expect(() => store.pathOf({ ...good, sha256: '../../../../etc/passwd' } as ArtifactRef)).toThrow(/64 lowercase hex/);
    });

    test.each([
      ['../escape.txt', 'a parent part'],
      ['sub/../../escape.txt', 'a parent part below a folder'],
      ['/tmp/escape.txt', 'an absolute path'],
      ['./config.json', 'a "." part'],
      ['sub//config.json', 'an empty part'],
      ['..\\escape.txt', 'a backslash'],
    ])('a manifest member %s (%s) is refused naming the member, and nothing is written outside the folder', async (member) => {
      const blob = await store.putBytes('model/dir/file', 'weights');
      const manifest = await store.putJson('model/dir', { files: [{ path: member, sha256: blob.sha256, bytes: blob.bytes }] });
      const dest = path.join(root, 'work', 'copy', 'model');
      const everything = async () => (await fs.readdir(root, { recursive: true })).sort();
      const before = await everything();
      const err = await store.materializeDirectory(manifest, dest).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidManifestError);
      expect((err as Error).message).toMatch(/files\.0\.path: must be a relative path inside the folder/);
      await expect(store.verifyDirectory(manifest)).rejects.toBeInstanceOf(InvalidManifestError);
      await expect(store.ensureDirectoryCopy(manifest, dest)).rejects.toBeInstanceOf(InvalidManifestError);
      expect(await everything()).toEqual(before);
      await expect(fs.access('/tmp/escape.txt')).rejects.toThrow();
    });

    test('a blob that is not a manifest is refused without quoting it', async () => {
      const notJson = await store.putBytes('model/dir', 'root:x:0:0 not json');
      const err = await store.materializeDirectory(notJson, path.join(root, 'copy')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidManifestError);
      expect((err as Error).message).toMatch(/is not a directory manifest: not JSON$/);
      const twice = await store.putJson('model/dir', { files: [{ path: 'a', sha256: notJson.sha256, bytes: notJson.bytes }, { path: 'a', sha256: notJson.sha256, bytes: notJson.bytes }] });
      await expect(store.verifyDirectory(twice)).rejects.toThrow(/files: names a path twice/);
    });

    test('joinInside keeps a name inside its folder; isInside compares resolved paths', () => {
      expect(joinInside('/data/reports', 'demo-abc/report.json')).toBe('/data/reports/demo-abc/report.json');
      for (const bad of ['..', '../x', 'a/../../x', '/etc/passwd', '', '.', 'a/./b']) expect(() => joinInside('/data/reports', bad)).toThrow(/not a relative path inside its folder/);
      expect(isInside('/data/reports/x', '/data/reports')).toBe(true);
      expect(isInside('/data/reports/../x', '/data/reports')).toBe(false);
      expect(isInside('/data/reports-other/x', '/data/reports')).toBe(false);
      expect(isInside('/data/reports/..x', '/data/reports')).toBe(true);
    });
  });
});
