// The worker-side path checks tell a config nothing about files outside the worker's roots: containment is
// checked on the path as written before anything is touched, and missing, unreadable and outside read alike.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { baseModelPath, pathInRoots } from '../activities/worker-paths';
import { readEnv } from '../config/env';
import { InvalidConfigError } from '../config/pipeline';

describe('paths a config names', () => {
  let root: string;
  let outside: string;
  let sentinel: string;
  beforeEach(async () => {
    root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'roots-')));
    outside = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'outside-')));
    sentinel = path.join(outside, 'sentinel.jsonl');
    await fs.writeFile(sentinel, '{"secret": "sentinel"}\n');
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await Promise.all([root, outside].map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  const refusal = async (value: string) => {
    const err = await pathInRoots('task.dataPath', value, [root], 'SUPERTINY_DATA_ROOTS', 'file').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidConfigError);
    return (err as Error).message.replace(value, '<path>');
  };

  test('an existing file outside, a missing file outside, a missing file inside and a link out all get the same message, which lists no roots', async () => {
    await fs.symlink(sentinel, path.join(root, 'link-out.jsonl'));
    const messages = await Promise.all([
      refusal(sentinel),
      refusal(path.join(outside, 'no-such-file.jsonl')),
      refusal(path.join(root, 'no-such-file.jsonl')),
      refusal(path.join(root, 'link-out.jsonl')),
      refusal(`${root}/../${path.basename(outside)}/sentinel.jsonl`),
    ]);
    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).toBe("invalid pipeline config: task.dataPath: <path> is outside the worker's allowed folders (SUPERTINY_DATA_ROOTS) or cannot be read");
    expect(messages[0]).not.toContain(root);
  });

  test('a path outside the roots as written is refused before the file system is asked about it', async () => {
    const realpath = jest.spyOn(fs, 'realpath');
    const stat = jest.spyOn(fs, 'stat');
    await refusal(sentinel);
    await refusal(`${root}/../${path.basename(outside)}/sentinel.jsonl`);
    const asked = [...realpath.mock.calls, ...stat.mock.calls].map((call) => String(call[0]));
    expect(asked.filter((p) => p.startsWith(outside))).toEqual([]);
  });

  test('a file inside the roots is accepted as its real path; a folder where a file is wanted says so', async () => {
    const inside = path.join(root, 'data.jsonl');
    await fs.writeFile(inside, '{}\n');
    await expect(pathInRoots('task.dataPath', inside, [root], 'SUPERTINY_DATA_ROOTS', 'file')).resolves.toBe(inside);
    await expect(pathInRoots('task.dataPath', root, [root], 'SUPERTINY_DATA_ROOTS', 'file')).rejects.toThrow(/is not a file/);
  });

  describe('a base model folder', () => {
    const check = (dir: string) => baseModelPath({ ...readEnv(), modelRoots: [root] }, { baseModelPath: dir }, 'transfer.student.baseModelPath');

    async function modelFolder(): Promise<string> {
      const dir = path.join(root, 'model');
      await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
      await fs.writeFile(path.join(dir, 'config.json'), '{}');
      return dir;
    }

    test('whose members link inside the roots (as a Hugging Face cache does) is accepted', async () => {
      const dir = await modelFolder();
      await fs.mkdir(path.join(root, 'blobs'));
      await fs.writeFile(path.join(root, 'blobs', 'weights'), 'w');
      await fs.symlink(path.join('..', '..', 'blobs', 'weights'), path.join(dir, 'sub', 'model.safetensors'));
      await expect(check(dir)).resolves.toBe(dir);
    });

    test.each([
      ['a file outside the roots', (dir: string, out: string) => fs.symlink(out, path.join(dir, 'sub', 'model.safetensors'))],
      ['nothing', (dir: string) => fs.symlink(path.join(root, 'gone'), path.join(dir, 'sub', 'model.safetensors'))],
      [
        'a folder inside the roots that links out in turn',
        async (dir: string, out: string) => {
          await fs.mkdir(path.join(root, 'shared'));
          await fs.symlink(out, path.join(root, 'shared', 'model.safetensors'));
          await fs.symlink(path.join(root, 'shared'), path.join(dir, 'sub', 'shared'));
        },
      ],
    ])('with a member that links to %s is refused, naming the member', async (_what, link) => {
      const dir = await modelFolder();
      await link(dir, sentinel);
      const err = await check(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidConfigError);
      expect((err as Error).message).toMatch(
        /transfer\.student\.baseModelPath: .*\/model has a member \(sub\/(shared\/)?model\.safetensors\) that links outside the worker's allowed folders \(SUPERTINY_MODEL_ROOTS\) or to nothing/,
      );
      expect((err as Error).message).not.toContain(outside);
    });
  });
});
