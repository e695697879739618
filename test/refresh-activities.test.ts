// The refresh's own activities outside Temporal: where a candidate starts (the deployed student's trained weights
// only when its provenance names them and the store holds them), the roots the paths must lie in, and promotion
// that never switches a deployment that moved meanwhile.
import { CAPTURE_FORMAT } from '../runtime/serve/capture';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ArtifactStore } from '../artifacts/store';
import { readEnv, type SupertinyEnv } from '../config/env';
import { parsePipelineConfig } from '../config/pipeline';
import { createTaskResources } from '../activities/task-resources';
import { createRefreshActivities } from '../activities/refresh/activities';
import { addVersion, initDeployment, promote, readCurrent } from '../runtime/deployments';

let root: string;
let env: SupertinyEnv;
let store: ArtifactStore;
let activities: ReturnType<typeof createRefreshActivities>;
const config = parsePipelineConfig({});

async function studentFolder(name: string, content: string): Promise<string> {
  const dir = path.join(root, 'students', name);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'model.onnx'), content);
  return dir;
}

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-refresh-activities-'));
  env = { ...readEnv(), dataDir: path.join(root, 'data'), dataRoots: [path.join(root, 'roots')] };
  await fs.mkdir(path.join(root, 'roots'), { recursive: true });
  store = new ArtifactStore(path.join(env.dataDir, 'artifacts'));
  const deps = { env, store };
  activities = createRefreshActivities(deps, createTaskResources(deps));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

test('a candidate starts from the trained weights a version names only when the store holds them, and says why not otherwise', async () => {
  const trained = await store.putDirectory('model/dir', await studentFolder('trained', 'weights'));
  const deployment = path.join(env.dataDir, 'deployments', 'a');
  await initDeployment(deployment, await studentFolder('v1', 'one'), { trainedModel: trained, family: 'encoder' });
  const fromDeployed = await activities.readDeployment({ config, deployment });
  expect(fromDeployed.trainedModel).toEqual(trained);
  expect(fromDeployed.startNote).toMatch(/^from the deployed student's trained weights \(version /);
  expect((await store.readManifest(fromDeployed.model)).files.map((f) => f.path)).toEqual(['deployment-version.json', 'model.onnx']);

  const other = path.join(env.dataDir, 'deployments', 'b');
  // A ref made by another worker's store: well formed, but not here.
  const elsewhere = await new ArtifactStore(path.join(root, 'other-store')).putDirectory('model/dir', await studentFolder('other', 'other weights'));
  await initDeployment(other, await studentFolder('v2', 'two'), { trainedModel: elsewhere });
  const missing = await activities.readDeployment({ config, deployment: other });
  expect(missing.trainedModel).toBeUndefined();
  expect(missing.startNote).toMatch(new RegExp(`^from the base: version .* trained model ${elsewhere.sha256.slice(0, 12)} is not in this worker's store`));

  const plain = path.join(env.dataDir, 'deployments', 'c');
  await initDeployment(plain, await studentFolder('v3', 'three'));
  expect((await activities.readDeployment({ config, deployment: plain })).startNote).toMatch(/names no trained model/);

  const decoder = path.join(env.dataDir, 'deployments', 'd');
  await initDeployment(decoder, await studentFolder('v4', 'four'), { trainedModel: trained, family: 'decoder' });
  expect((await activities.readDeployment({ config, deployment: decoder })).startNote).toMatch(/is a decoder student and the config trains the encoder family/);
});

test('deployment and traffic paths must lie in the roots; a folder without a pointer is refused by name', async () => {
  const outside = path.join(root, 'elsewhere');
  await fs.mkdir(outside, { recursive: true });
  await expect(activities.readDeployment({ config, deployment: outside })).rejects.toThrow(/outside the worker's allowed folders/);
  await expect(activities.readDeployment({ config, deployment: 'relative/dir' })).rejects.toThrow(/must be an absolute path/);
  const empty = path.join(root, 'roots', 'empty-deployment');
  await fs.mkdir(empty);
  await expect(activities.readDeployment({ config, deployment: empty })).rejects.toThrow(`deployment ${empty} has no current.json`);
  const data = { train: await store.putJsonl('x', []), dev: await store.putJsonl('x', []), test: await store.putJsonl('x', []), counts: { train: 0, dev: 0, test: 0 } };
  await expect(activities.readTraffic({ config, traffic: path.join(outside, 'capture.jsonl'), data, freshShare: 0.3 })).rejects.toThrow(/traffic.*outside the worker's allowed folders/);
});

test('traffic is split into training and fresh inputs; traffic made only of frozen-split inputs is refused', async () => {
  const gold = (text: string) => ({ id: text, text, gold: 'x()' });
  const data = {
    train: await store.putJsonl('inputs', [{ id: 't1', text: 'known utterance' }]),
    dev: await store.putJsonl('gold/dev', [gold('a dev utterance')]),
    test: await store.putJsonl('gold/test', [gold('a test utterance')]),
    counts: { train: 1, dev: 1, test: 1 },
  };
  const file = path.join(root, 'roots', 'capture.jsonl');
  const line = (input: string) => JSON.stringify({ format: CAPTURE_FORMAT, id: input, time: 't', input, student_confidence: 0.5, cascaded: false });
  await fs.writeFile(file, ['known utterance', 'a test utterance', ...Array.from({ length: 40 }, (_, i) => `new utterance ${i}`)].map(line).join('\n'));
  const traffic = await activities.readTraffic({ config, traffic: file, data, freshShare: 0.3 });
  expect(traffic.counts).toEqual(expect.objectContaining({ lines: 42, unique: 42, inFrozenSplits: 1, newExamples: 40 }));
  expect(traffic.counts.train + traffic.counts.fresh).toBe(41);
  const fresh = await store.readJsonl<{ text: string }>(traffic.fresh);
  expect(fresh.map((r) => r.text)).not.toContain('known utterance');
  expect(fresh.length).toBe(traffic.counts.fresh);

  await fs.writeFile(file, ['a dev utterance', 'a test utterance'].map(line).join('\n'));
  await expect(activities.readTraffic({ config, traffic: file, data, freshShare: 0.3 })).rejects.toThrow(`traffic: all 2 distinct inputs of ${file} are in the task's frozen splits`);
});

test('promotion switches the pointer once (a retry is a no-op) and never a deployment that moved since it was read', async () => {
  const deployment = path.join(env.dataDir, 'deployments', 'svc');
  const first = await initDeployment(deployment, await studentFolder('v1', 'one'));
  const candidate = await store.putDirectory('model/dir', await studentFolder('cand', 'better'));
  const input = { deployment, expectedVersion: first.version, model: candidate, provenance: { refresh: 'r1' }, reason: 'refresh r1: better' };
  const promoted = await activities.promoteCandidate(input);
  expect(promoted.promoted).toBe(true);
  expect((await readCurrent(deployment))!.version).toBe(promoted.version);
  expect(await activities.promoteCandidate(input)).toEqual(promoted);
  expect((await readCurrent(deployment))!.previous).toEqual([first.version]);

  // Someone switched to another version meanwhile: a stale refresh does not switch it back or over.
  const other = await addVersion(deployment, await studentFolder('v3', 'other'));
  await promote(deployment, other, 'by hand');
  const stale = await activities.promoteCandidate({ ...input, model: await store.putDirectory('model/dir', await studentFolder('late', 'late')) });
  expect(stale.promoted).toBe(false);
  expect(stale.refused).toContain(`the deployment serves ${other} now, not ${first.version}`);
  expect((await readCurrent(deployment))!.version).toBe(other);
});
