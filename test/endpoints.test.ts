// Teacher endpoints are the worker operator's: a config names one, never a URL or a key variable.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { loadTeacherEndpoints, redact, resolveTeacherEndpoints, secretsOf } from '../config/endpoints';
import { parsePipelineConfig, InvalidConfigError } from '../config/pipeline';
import { createTaskResources } from '../activities/task-resources';
import { withTypedFailures } from '../activities/failures';
import { checkConfigOnWorker } from '../activities/config-check';
import { pathInRoots } from '../activities/worker-paths';
import { causeChain } from '../cli/cause-chain';
import { readEnv } from '../config/env';
import { ArtifactStore } from '../artifacts/store';

const secret = (name: string) => ({ TEACHER_KEY: 'sk-live-0123456789abcdef' })[name];
const endpoint = { name: 'openai', baseURL: 'https://api.example.com/v1', apiKeyEnv: 'TEACHER_KEY', models: ['gpt-4o-mini'], prices: { inputPerMTok: 0.15, outputPerMTok: 0.6 } };

describe('teacher endpoints', () => {
  test('the worker refuses non-http(s) URLs, unset key variables and duplicate names at start', () => {
    for (const baseURL of ['file:///etc/passwd', 'javascript:alert(1)', 'ftp://example.com/v1']) {
      expect(() => resolveTeacherEndpoints({ endpoints: [{ ...endpoint, baseURL }] }, secret)).toThrow(/endpoints\.0\.baseURL: must be an http/);
    }
    expect(() => resolveTeacherEndpoints({ endpoints: [{ ...endpoint, apiKeyEnv: 'NOT_SET' }] }, secret)).toThrow(/NOT_SET, which is not set/);
    expect(() => resolveTeacherEndpoints({ endpoints: [endpoint, endpoint] }, secret)).toThrow(/duplicate endpoint name "openai"/);
    expect(() => resolveTeacherEndpoints({ endpoints: [{ ...endpoint, name: 'simulator' }] }, secret)).toThrow(/built-in teacher simulator/);
  });

  test('a URL that would carry a secret (a query string, a fragment, a user name or password) is refused: keys belong in apiKeyEnv', () => {
    for (const baseURL of ['https://res.openai.azure.com/openai/v1?api-key=azure-secret', 'https://api.example.com/v1#key=x', 'https://user:pass@api.example.com/v1']) {
      const err = (() => {
        try {
          resolveTeacherEndpoints({ endpoints: [{ ...endpoint, baseURL }] }, secret);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err?.message).toMatch(/endpoints\.0\.baseURL: must not (have a query string or fragment|hold a user name or password) \(a key belongs in apiKeyEnv\)/);
      expect(err?.message).not.toMatch(/azure-secret|pass@/);
    }
  });

  test('a key is sent over plain http:// only to a loopback host, or where the operator says allowInsecure', () => {
    const http = (baseURL: string, extra: object = {}) => () => resolveTeacherEndpoints({ endpoints: [{ ...endpoint, baseURL, ...extra }] }, secret);
    expect(http('http://vllm.internal:8000/v1')).toThrow(/endpoints\.0\.baseURL: would send the key in TEACHER_KEY in clear text to vllm\.internal: use https:\/\/, a loopback host, or allowInsecure: true/);
    expect(http('http://10.0.0.5:8000/v1')).toThrow(/in clear text to 10\.0\.0\.5/);
    for (const loopback of ['http://127.0.0.1:8000/v1', 'http://localhost:8000/v1', 'http://[::1]:8000/v1']) expect(http(loopback)).not.toThrow();
    expect(http('http://vllm.internal:8000/v1', { allowInsecure: true })).not.toThrow();
    // Without a key nothing secret travels.
    expect(() => resolveTeacherEndpoints({ endpoints: [{ ...endpoint, apiKeyEnv: undefined, baseURL: 'http://vllm.internal:8000/v1' }] }, secret)).not.toThrow();
  });

  test("the operator caps a pipeline's teacher budget per endpoint: a config asking more fails the worker-side check, naming the field", async () => {
    const env = readEnv();
    const capped = resolveTeacherEndpoints({ endpoints: [{ ...endpoint, maxSpendUsdPerPipeline: 10 }] }, secret);
    const resources = createTaskResources({ env, store: new ArtifactStore(os.tmpdir()), endpoints: capped });
    const asking = (maxSpendUsd?: number) => parsePipelineConfig({ teacher: { endpoint: 'openai', model: 'gpt-4o-mini', ...(maxSpendUsd === undefined ? {} : { maxSpendUsd }) } });
    expect(resources.checkTeacher(asking(10)).name).toBe('openai');
    // The default budget ($25) is over this endpoint's cap: the config must ask for less.
    expect(() => resources.checkTeacher(asking())).toThrow(/teacher\.maxSpendUsd: 25 is over the 10 USD that endpoint "openai" allows a pipeline/);
    await expect(checkConfigOnWorker(asking(11), env, resources)).rejects.toThrow(/teacher\.maxSpendUsd: 11 is over/);
    await expect(resources.teacher(asking(11))).rejects.toThrow(InvalidConfigError);
  });

  test('the simulator is always there; the key is read from the operator-named variable', () => {
    const endpoints = resolveTeacherEndpoints({ endpoints: [endpoint] }, secret);
    expect(endpoints.map((e) => e.name)).toEqual(['simulator', 'openai']);
    expect(endpoints[1].apiKey).toBe('sk-live-0123456789abcdef');
    expect(secretsOf(endpoints)).toEqual(['sk-live-0123456789abcdef']);
  });

  test('the example endpoints file in examples/ loads', async () => {
    const endpoints = await loadTeacherEndpoints(path.join(__dirname, '..', 'examples', 'teacher-endpoints.yaml'), (n) => (n === 'OPENAI_API_KEY' ? 'sk-example' : undefined));
    expect(endpoints.map((e) => e.name)).toEqual(['simulator', 'openai', 'local-vllm']);
    expect(endpoints[2].apiKey).toBeUndefined();
  });

  test('an endpoints file that is not JSON is refused without quoting it', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'endpoints-'));
    const file = path.join(dir, 'endpoints.json');
    await fs.writeFile(file, 'root:x:0:0:secret-content');
    await expect(loadTeacherEndpoints(file, secret)).rejects.toThrow(/is not valid JSON$/);
    await expect(loadTeacherEndpoints(file, secret)).rejects.not.toThrow(/secret-content/);
  });

  test('a config picks an endpoint and a model by name; anything else is a config error naming the field', async () => {
    const env = readEnv();
    const resources = createTaskResources({ env, store: new ArtifactStore(os.tmpdir()), endpoints: resolveTeacherEndpoints({ endpoints: [endpoint] }, secret) });
    const resolved = await resources.teacher(parsePipelineConfig({ teacher: { endpoint: 'openai', model: 'gpt-4o-mini' } }));
    expect(resolved).toMatchObject({ endpoint: 'openai', baseURL: 'https://api.example.com/v1', identity: 'openai@https://api.example.com/v1', simulated: false });
    expect(JSON.stringify({ identity: resolved.identity })).not.toContain('sk-live');
    expect(() => resources.checkTeacher(parsePipelineConfig({ teacher: { endpoint: 'evil' } }))).toThrow(/teacher\.endpoint: no endpoint "evil" on this worker; it has "simulator", "openai"/);
    expect(() => resources.checkTeacher(parsePipelineConfig({ teacher: { endpoint: 'openai', model: 'gpt-5' } }))).toThrow(/teacher\.model: endpoint "openai" does not serve "gpt-5"/);
    const judged = parsePipelineConfig({ teacher: { endpoint: 'openai', model: 'gpt-4o-mini', judge: { enabled: true, model: 'other' } } });
    await expect(checkConfigOnWorker(judged, env, resources)).rejects.toThrow(/teacher\.judge\.model/);
  });

  test("a worker's key never leaves an activity in an error message", async () => {
    const endpoints = resolveTeacherEndpoints({ endpoints: [endpoint] }, secret);
    const activities = withTypedFailures(
      {
        async leaky() {
          throw new Error('upstream said: bad key sk-live-0123456789abcdef');
        },
        async leakyFailure() {
          throw ApplicationFailure.create({ message: 'Bearer sk-live-0123456789abcdef refused', type: 'TeacherUnavailable', nonRetryable: true });
        },
      },
      secretsOf(endpoints),
    );
    await expect(activities.leaky()).rejects.toThrow('upstream said: bad key [redacted]');
    const failure = await activities.leakyFailure().catch((e) => e as ApplicationFailure);
    expect(failure.message).toBe('Bearer [redacted] refused');
    expect(failure.type).toBe('TeacherUnavailable');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.stack ?? '').not.toContain('sk-live');
    expect(redact('a sk-live-0123456789abcdef b', secretsOf(endpoints))).toBe('a [redacted] b');
  });
});

describe('paths a config names', () => {
  test('must lie inside the worker roots, symlinks resolved, and the file is never read into the message', async () => {
    const root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'roots-')));
    const inside = path.join(root, 'data.jsonl');
    await fs.writeFile(inside, '{}\n');
    await fs.symlink('/etc/passwd', path.join(root, 'escape.jsonl'));
    await expect(pathInRoots('task.dataPath', inside, [root], 'SUPERTINY_DATA_ROOTS', 'file')).resolves.toBe(inside);
    await expect(pathInRoots('task.dataPath', '/etc/passwd', [root], 'SUPERTINY_DATA_ROOTS', 'file')).rejects.toThrow(
      /task\.dataPath: \/etc\/passwd is outside the worker's allowed folders \(SUPERTINY_DATA_ROOTS/,
    );
    await expect(pathInRoots('task.dataPath', path.join(root, 'escape.jsonl'), [root], 'SUPERTINY_DATA_ROOTS', 'file')).rejects.toThrow(/outside/);
    await expect(pathInRoots('task.dataPath', `${root}/../../etc/passwd`, [root], 'SUPERTINY_DATA_ROOTS', 'file')).rejects.toThrow(/outside/);
    await expect(pathInRoots('task.dataPath', 'relative.jsonl', [root], 'SUPERTINY_DATA_ROOTS', 'file')).rejects.toThrow(/absolute path/);
    await expect(pathInRoots('transfer.student.baseModelPath', root, [root], 'SUPERTINY_MODEL_ROOTS', 'file')).rejects.toThrow(/is not a file/);
    const err = await pathInRoots('task.dataPath', '/etc/passwd', [root], 'SUPERTINY_DATA_ROOTS', 'file').catch((e) => e);
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect(err.message).not.toContain('root:x');
  });

  test('a base model folder outside the model roots fails the config check before the teacher is paid', async () => {
    const env = { ...readEnv(), modelRoots: [os.tmpdir()] };
    const resources = createTaskResources({ env, store: new ArtifactStore(os.tmpdir()) });
    await expect(checkConfigOnWorker(parsePipelineConfig({ transfer: { student: { baseModelPath: '/etc' } } }), env, resources)).rejects.toThrow(
      /transfer\.student\.baseModelPath: \/etc is outside/,
    );
    const notAModel = await fs.mkdtemp(path.join(os.tmpdir(), 'not-a-model-'));
    await expect(checkConfigOnWorker(parsePipelineConfig({ transfer: { student: { baseModelPath: notAModel } } }), env, resources)).rejects.toThrow(/has no config\.json/);
  });
});

describe('the CLI names the root cause last', () => {
  test('the innermost cause of a wrapped failure comes last', () => {
    const inner = new Error('task.dataPath: /etc/passwd is outside the worker roots');
    const activity = Object.assign(new Error('Activity task failed'), { cause: inner });
    const workflow = Object.assign(new Error('Workflow execution failed'), { cause: activity });
    expect(causeChain(workflow)).toEqual(['Workflow execution failed', 'Activity task failed', 'task.dataPath: /etc/passwd is outside the worker roots']);
  });
});
