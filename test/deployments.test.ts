import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addVersion, DeploymentError, initDeployment, listVersions, promote, readCurrent, rollback, CURRENT_FILE } from '../runtime/deployments';

async function studentFolder(root: string, name: string, content: string): Promise<string> {
  const dir = path.join(root, name);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'model.onnx'), content);
  await fs.writeFile(path.join(dir, 'supertiny.json'), '{}');
  return dir;
}

describe('deployment folder', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'deploy-'));
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('initialises, promotes and rolls back, recording each switch', async () => {
    const dir = path.join(root, 'dep');
    const a = await studentFolder(root, 'a', 'model A');
    const b = await studentFolder(root, 'b', 'model B');
    const first = await initDeployment(dir, a);
    expect(await readCurrent(dir)).toMatchObject({ version: first.version, previous: [] });
    // A second init keeps what is deployed.
    expect((await initDeployment(dir, b)).version).toBe(first.version);
    const vb = await addVersion(dir, b, { refresh: 'r1' });
    expect(await addVersion(dir, b)).toBe(vb);
    expect(await listVersions(dir)).toHaveLength(2);
    await promote(dir, vb, 'better');
    const now = await readCurrent(dir);
    expect(now).toMatchObject({ version: vb, previous: [first.version] });
    expect(await fs.readFile(path.join(now!.path, 'model.onnx'), 'utf8')).toBe('model B');
    await rollback(dir, 'operator');
    expect(await readCurrent(dir)).toMatchObject({ version: first.version, previous: [] });
    await expect(rollback(dir, 'again')).rejects.toThrow(/first one deployed/);
    const history = (await fs.readFile(path.join(dir, 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(history.map((h) => h.action)).toEqual(['init', 'promote', 'rollback']);
  });

  it('refuses unknown versions, damaged pointers and folders that are not there', async () => {
    const dir = path.join(root, 'dep');
    await initDeployment(dir, await studentFolder(root, 'a', 'A'));
    await expect(promote(dir, 'nope', 'x')).rejects.toThrow(DeploymentError);
    await expect(promote(dir, '../../etc', 'x')).rejects.toThrow(/not a version id/);
    await expect(addVersion(dir, path.join(root, 'missing'))).rejects.toThrow(/not a student folder/);
    await fs.writeFile(path.join(dir, CURRENT_FILE), '{"version": 3');
    await expect(readCurrent(dir)).rejects.toThrow(/current.json is damaged/);
  });
});
