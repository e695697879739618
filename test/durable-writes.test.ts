// Writes are whole: every file the TypeScript side stores goes through one helper (temporary file, fsync,
// rename, fsync of the folder), and what a crash damages anyway (an output record, a teacher answer) is
// treated as missing and redone, never trusted and never fatal.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { copyFileAtomic, writeFileAtomic, writeFileAtomicSync } from '../artifacts/atomic-write';
import { ArtifactCorruptedError, ArtifactStore, outputKey } from '../artifacts/store';
import { createPrototypeActivities } from '../activities/prototype/stage-activities';
import { createTeacherClient, type TeacherInput } from '../runtime/teacher/teacher-client';
import { createTaskResources } from '../activities/task-resources';
import { publishReport } from '../activities/evaluate/activities';
import type { EvaluateResult } from '../activities/types';
import { readEnv } from '../config/env';
import { parsePipelineConfig } from '../config/pipeline';
import { startTeacherSimulator } from '../runtime/teacher-simulator';
import { loadMassiveTask } from '../tasks/massive';
import { pipelinePlan } from '../config/plan';

let root: string;
let store: ArtifactStore;
beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-writes-'));
  store = new ArtifactStore(path.join(root, 'artifacts'));
});
afterEach(() => fs.rm(root, { recursive: true, force: true }));

const partials = async (dir: string) => (await fs.readdir(dir)).filter((name) => name.endsWith('.partial'));

describe('the atomic write', () => {
  test('a writer killed between its temporary file and the rename leaves the old file, or none, never a part', async () => {
    const existing = path.join(root, 'existing.json');
    const fresh = path.join(root, 'fresh.json');
    await fs.writeFile(existing, 'the old content');
    // A real process, stopped with SIGKILL at the one point where a crash can bite: the temporary file is
    // whole and flushed, and the rename has not happened (rename is made to hang there and say so).
    const script = [
      "import { promises as fs } from 'node:fs';",
      'const loaded = await import(process.env.ATOMIC_WRITE);',
      'const { writeFileAtomic } = loaded.default ?? loaded;',
      "fs.rename = () => { process.stdout.write('renaming\\n'); return new Promise(() => {}); };",
      "await Promise.all([writeFileAtomic(process.argv[1], 'the new content'), writeFileAtomic(process.argv[2], 'the new content')]);",
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, existing, fresh], {
      env: { ...process.env, ATOMIC_WRITE: path.resolve(__dirname, '../artifacts/atomic-write.ts') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.split('renaming').length - 1 === 2) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', () => reject(new Error(`the writer exited before the rename:\n${output}`)));
    });
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });

    expect(await fs.readFile(existing, 'utf8')).toBe('the old content');
    await expect(fs.stat(fresh)).rejects.toMatchObject({ code: 'ENOENT' });
    // What the crash left is only garbage beside the final names, each temporary file whole.
    const left = await partials(root);
    expect(left).toHaveLength(2);
    for (const name of left) expect(await fs.readFile(path.join(root, name), 'utf8')).toBe('the new content');
    // The next write is not disturbed by it.
    await writeFileAtomic(existing, 'the newer content');
    expect(await fs.readFile(existing, 'utf8')).toBe('the newer content');
  });

  test('a write that fails before the rename leaves the old file as it was and no temporary file', async () => {
    const file = path.join(root, 'report.json');
    await fs.writeFile(file, 'the old content');
    const source = path.join(root, 'source');
    await fs.writeFile(source, 'the new content');
    await expect(
      copyFileAtomic(source, file, async () => {
        throw new Error('the copy is not what was asked for');
      }),
    ).rejects.toThrow('the copy is not what was asked for');
    expect(await fs.readFile(file, 'utf8')).toBe('the old content');
    // A rename that fails (here: a folder holds the final name) leaves no temporary file either.
    await fs.mkdir(path.join(root, 'taken', 'entry.json', 'inside'), { recursive: true });
    expect(() => writeFileAtomicSync(path.join(root, 'taken', 'entry.json'), 'x')).toThrow();
    await expect(writeFileAtomic(path.join(root, 'taken', 'entry.json'), 'x')).rejects.toThrow();
    expect(await partials(root)).toEqual([]);
    expect(await partials(path.join(root, 'taken'))).toEqual([]);
  });

  test('writes whole files into folders it creates, replacing what was there', async () => {
    const file = path.join(root, 'a', 'b', 'entry.json');
    writeFileAtomicSync(file, 'one');
    await writeFileAtomic(file, 'two, longer');
    expect(await fs.readFile(file, 'utf8')).toBe('two, longer');
    await copyFileAtomic(file, path.join(root, 'c', 'copy.json'));
    expect(await fs.readFile(path.join(root, 'c', 'copy.json'), 'utf8')).toBe('two, longer');
  });
});

describe('output records', () => {
  const key = outputKey('count', { n: 3 });
  const recordFile = () => path.join(store.root, 'outputs', `${key}.json`);
  let runs: number;
  const produce = async () => {
    runs += 1;
    return { counts: await store.putJson('counts', { n: 3 }) };
  };
  beforeEach(() => {
    runs = 0;
  });

  test.each([
    ['truncated', (text: string) => text.slice(0, text.length - 7)],
    ['empty', () => ''],
    ['a record of another key', (text: string) => text.replace(key, outputKey('count', { n: 4 }))],
    ['not a record', () => '[1, 2, 3]'],
    ['a record naming a malformed manifest as a directory', (text: string) => text.replace('"kind": "counts"', '"kind": "model/dir"')],
  ])('one that is %s is removed and the work redone, then reused', async (_what, damage) => {
    const first = await store.memo(key, produce);
    await fs.writeFile(recordFile(), damage(await fs.readFile(recordFile(), 'utf8')));
    const again = await store.memo(key, produce);
    expect(again.reused).toBe(false);
    expect(runs).toBe(2);
    expect(again.value).toEqual(first.value);
    // Written again, whole: the next run reuses it.
    expect(JSON.parse(await fs.readFile(recordFile(), 'utf8'))).toMatchObject({ key, value: first.value });
    expect((await store.memo(key, produce)).reused).toBe(true);
    expect(runs).toBe(2);
  });

  test('a failure is never recorded: the next run does the work', async () => {
    await expect(
      store.memo(key, async () => {
        runs += 1;
        throw new Error('the teacher is down');
      }),
    ).rejects.toThrow('the teacher is down');
    await expect(fs.stat(recordFile())).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await store.memo(key, produce)).reused).toBe(false);
    expect(runs).toBe(2);
  });

  test('a truncated or empty record of a real activity (prepareTaskData) is redone by its next run, with the same outputs', async () => {
    const env = { ...readEnv(), dataDir: root };
    const resources = createTaskResources({ env, store });
    const activities = createPrototypeActivities({ env, store }, resources);
    const config = parsePipelineConfig({ task: { trainLimit: 20, devLimit: 10, testLimit: 10 } });
    try {
      const first = await activities.prepareTaskData({ plan: pipelinePlan(config).prototype.data });
      const [record] = (await fs.readdir(path.join(store.root, 'outputs'))).filter((f) => f.startsWith('prepareTaskData-') && f.endsWith('.json'));
      const file = path.join(store.root, 'outputs', record);
      for (const damage of [(text: string) => text.slice(0, text.length / 2), () => '']) {
        await fs.writeFile(file, damage(await fs.readFile(file, 'utf8')));
        expect(await activities.prepareTaskData({ plan: pipelinePlan(config).prototype.data })).toEqual(first);
        expect(JSON.parse(await fs.readFile(file, 'utf8')).value).toEqual(first);
      }
    } finally {
      await resources.close();
    }
  });
});

describe('the request cache', () => {
  test('a damaged entry is a miss: that request is sent again, its answer cached whole, and nothing else is resent', async () => {
    const massive = await loadMassiveTask();
    const inputs: TeacherInput[] = massive.examples
      .filter((e) => e.split === 'dev')
      .slice(0, 4)
      .map((e) => ({ id: e.id, text: e.utterance }));
    const cacheDir = path.join(root, 'teacher-cache');
    const sim = await startTeacherSimulator({ seed: 5, task: massive.task });
    try {
      const config = { baseURL: sim.url, model: sim.model, cacheDir, temperature: 0 };
      const first = await createTeacherClient(massive.task, config).labelAll(inputs, 1);
      const entries = (await fs.readdir(cacheDir, { recursive: true })).filter((f) => f.endsWith('.json')).map((f) => path.join(cacheDir, f));
      expect(entries.length).toBeGreaterThanOrEqual(inputs.length);
      await fs.writeFile(entries[0], (await fs.readFile(entries[0], 'utf8')).slice(0, 40));
      await fs.writeFile(entries[1], '');

      const rerun = createTeacherClient(massive.task, config);
      expect(await rerun.labelAll(inputs, 1)).toEqual(first);
      expect(rerun.stats().httpRequests).toBe(2);
      for (const entry of entries) expect(JSON.parse(await fs.readFile(entry, 'utf8'))).toHaveProperty('value');
      const third = createTeacherClient(massive.task, config);
      await third.labelAll(inputs, 1);
      expect(third.stats().httpRequests).toBe(0);
    } finally {
      await sim.close();
    }
  });
});

describe('the report folder', () => {
  async function report(): Promise<EvaluateResult> {
    const reportPath = path.join(root, 'reports', 'demo-abc', 'report.json');
    return {
      report: await store.putJson('report', { pipeline: 'demo', models: {} }),
      html: await store.putBytes('report-html', '<html>report</html>'),
      predictions: { teacher: await store.putJsonl('predictions/teacher', [{ id: '1', correct: true }]) },
      reportPath,
      models: {},
    };
  }

  test('is written from the artifacts, and restored from them when a file was lost or damaged', async () => {
    const result = await report();
    const dir = path.dirname(result.reportPath);
    await publishReport(store, result);
    const written = async () => Object.fromEntries(await Promise.all((await fs.readdir(dir)).sort().map(async (f) => [f, await fs.readFile(path.join(dir, f), 'utf8')])));
    const whole = await written();
    expect(whole).toEqual({
      'predictions-teacher.jsonl': '{"id":"1","correct":true}\n',
      'report.html': '<html>report</html>',
      'report.json': JSON.stringify({ pipeline: 'demo', models: {} }, null, 2) + '\n',
    });
    await fs.writeFile(result.reportPath, '{"pipeline": "de');
    await fs.rm(path.join(dir, 'report.html'));
    await publishReport(store, result);
    expect(await written()).toEqual(whole);
  });

  test('is never written from a damaged artifact: the file there stays as it was', async () => {
    const result = await report();
    await publishReport(store, result);
    const before = await fs.readFile(result.reportPath, 'utf8');
    await fs.writeFile(store.pathOf(result.report), '{"pipeline": "tampered"}');
    await expect(publishReport(store, result)).rejects.toBeInstanceOf(ArtifactCorruptedError);
    expect(await fs.readFile(result.reportPath, 'utf8')).toBe(before);
    expect(await partials(path.dirname(result.reportPath))).toEqual([]);
  });
});
