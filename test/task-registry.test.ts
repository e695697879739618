// The task registry: the plugin registers tasks, a config picks one by name, and an unknown name fails on
// the worker before any teacher request, listing the registered tasks.
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { z } from 'zod';
import { createTaskResources } from '../activities/task-resources';
import { checkConfigOnWorker } from '../activities/config-check';
import type { SupertinyEnv } from '../config/env';
import { InvalidConfigError, parsePipelineConfig } from '../config/pipeline';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import { startPipeline } from '../client';
import { BUILT_IN_TASKS } from '../tasks/built-in';
import { compactCallFormat, defineTask, TaskSpecError, type TaskExample } from '../tasks/define';
import { callMetrics } from '../tasks/metrics';
import { TaskRegistry } from '../tasks/registry';
import { SupertinyPlugin } from '../workers/plugin';
import { startTestServer, stopTestServer, testDeps, testEnv, withWorkers, workflowBundle } from './support/temporal';
import { smallPipelineConfig } from './support/pipeline-config';

interface Row extends TaskExample {
  text: string;
  light: 'on' | 'off';
}

const ROWS: Row[] = [
  { id: 't1', split: 'train', text: 'lights on', light: 'on' },
  { id: 'd1', split: 'dev', text: 'lights off', light: 'off' },
  { id: 's1', split: 'test', text: 'switch the lights on', light: 'on' },
];

const lightsTask = defineTask<Row>({
  name: 'lights',
  displayName: 'Living-room lights',
  systemPrompt: 'Call set_lights.',
  tools: {},
  functions: { set_lights: { description: 'Sets the lights.', parameters: z.strictObject({ state: z.enum(['on', 'off']) }) } },
  entryTools: ['set_lights'],
  maxSteps: 1,
  callFormat: compactCallFormat,
  input: (r) => r.text,
  gold: (r) => ({ name: 'set_lights', args: [{ key: 'state', value: r.light }] }),
  verify: () => ({ ok: true }),
  metrics: callMetrics,
  dataset: { splits: ['train', 'dev', 'test'], load: async (split) => ROWS.filter((r) => r.split === split) },
});

describe('the task registry', () => {
  const registry = new TaskRegistry([...BUILT_IN_TASKS, lightsTask]);
  let env: SupertinyEnv;
  beforeAll(async () => {
    env = await testEnv('127.0.0.1:0');
  });

  test('a config picks a registered task by name and gets its spec, with the gold of every labelled example', async () => {
    const resources = createTaskResources({ ...testDeps(env), tasks: registry });
    const loaded = await resources.loadTask(parsePipelineConfig({ task: { name: 'lights' } }));
    expect(loaded.task).toBe(lightsTask);
    expect(loaded.task.displayName).toBe('Living-room lights');
    expect([...loaded.goldById.keys()]).toEqual(['t1', 'd1', 's1']);
    expect(loaded.labelledTrain).toBe(1);
  });

  test('an unknown task name is a config error that lists the registered tasks', async () => {
    const resources = createTaskResources({ ...testDeps(env), tasks: registry });
    const err = await checkConfigOnWorker(parsePipelineConfig({ task: { name: 'weather' } }), env, resources).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidConfigError);
    expect((err as Error).message).toMatch(/task\.name: no task "weather" is registered on this worker; it has "massive", .*"lights"/);
  });

  test('a task registered with its data in hand refuses a data file, naming the field', async () => {
    const resources = createTaskResources({ ...testDeps(env), tasks: registry });
    await expect(resources.loadTask(parsePipelineConfig({ task: { name: 'lights', dataPath: '/etc/hosts' } }))).rejects.toThrow(
      /task\.dataPath: task "lights" reads no data file/,
    );
  });

  test('two tasks of one name are refused when the registry is built', () => {
    expect(() => new TaskRegistry([...BUILT_IN_TASKS, lightsTask, lightsTask])).toThrow(TaskSpecError);
    expect(() => new TaskRegistry([...BUILT_IN_TASKS, lightsTask, lightsTask])).toThrow(/task "lights" is registered twice/);
  });
});

describe('a worker with the plugin', () => {
  let server: TestWorkflowEnvironment;
  let simulator: RunningTeacherSimulator;
  let env: SupertinyEnv;
  const taskQueue = `registry-${Date.now()}`;

  beforeAll(async () => {
    server = await startTestServer();
    env = await testEnv(server.address, { taskQueue });
    simulator = await startTeacherSimulator({ task: lightsTask });
  }, 120_000);
  afterAll(async () => {
    await simulator?.close();
    await stopTestServer(server);
  });

  const workers = async () => {
    const plugin = new SupertinyPlugin({ deps: testDeps(env, { simulatorBaseURL: simulator.url }), tasks: [lightsTask], workflowBundle: await workflowBundle() });
    return [await Worker.create({ connection: server.nativeConnection, taskQueue, plugins: [plugin] })];
  };

  test('fails a config naming an unregistered task before any teacher request, in one attempt, listing the registered tasks', async () => {
    const handle = await startPipeline(server.client, { ...smallPipelineConfig('unknown-task'), task: { name: 'weather' } }, { taskQueue });
    const err = await withWorkers(workers, () => handle.result().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const chain: string[] = [];
    for (let cur: unknown = err; cur instanceof Error; cur = (cur as { cause?: unknown }).cause) chain.push(cur.message);
    expect(chain[chain.length - 1]).toMatch(/task\.name: no task "weather" is registered on this worker; it has "massive", .*"lights"/);
    const history = await handle.fetchHistory();
    const attempts = history.events?.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt) ?? [];
    expect(attempts).toEqual([1]);
    expect(simulator.stats().chatRequests).toBe(0);
  }, 120_000);
});
