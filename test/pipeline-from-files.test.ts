// A task added with files only, end to end on a real Temporal dev server: the example request router
// (examples/request-router: an enum, a number, a free-text and a span argument) through prototype,
// transfer (the decoder student, chosen from the schema because free text needs it: the config names no
// family), compress and evaluate, with the teacher simulator playing it from its gold calls, and each
// model's predictions saved and scoring back to the report. Without its free-text argument (a test-only
// copy of its files), the encoder student learns it: its value heads answer the enum and the bounded
// integer, its tags the span.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import { startPipeline } from '../client';
import { ArtifactStore } from '../artifacts/store';
import { loadStudent } from '../runtime/student';
import type { SupertinyEnv } from '../config/env';
import { scorePredictions, type PredictionRow } from '../activities/evaluate/predictions';
import { startTeacherSimulator, type RunningTeacherSimulator } from '../runtime/teacher-simulator';
import { loadTaskFromFiles } from '../tasks/from-files';
import type { TaskSpec } from '../tasks/define';
import { createTestWorkers, startTestServer, stopTestServer, testDeps, testEnv, withWorkers } from './support/temporal';
import { smallPipelineConfig } from './support/pipeline-config';

const EXAMPLE = path.join(__dirname, '..', 'examples', 'request-router');
const FILES = { functionsPath: path.join(EXAMPLE, 'functions.json'), dataPath: path.join(EXAMPLE, 'data.jsonl') };

describe('a task from files, end to end', () => {
  let server: TestWorkflowEnvironment;
  let env: SupertinyEnv;
  let simulator: RunningTeacherSimulator;
  let task: TaskSpec<any>;
  let spansOnly: { dir: string; files: typeof FILES; task?: TaskSpec<any>; simulator?: RunningTeacherSimulator };
  const taskQueue = `from-files-${Date.now()}`;
  const workers = () => createTestWorkers(server, taskQueue, testDeps(env, { simulatorBaseURL: simulator.url }));

  beforeAll(async () => {
    server = await startTestServer();
    // The router without "action": its functions and data rewritten beside the example, for the encoder.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'router-no-action-'));
    spansOnly = { dir, files: { functionsPath: path.join(dir, 'functions.json'), dataPath: path.join(dir, 'data.jsonl') } };
    const functions = JSON.parse(await fs.readFile(FILES.functionsPath, 'utf8'));
    const parameters = functions.tools[0].function.parameters;
    delete parameters.properties.action;
    parameters.required = parameters.required.filter((k: string) => k !== 'action');
    await fs.writeFile(spansOnly.files.functionsPath, JSON.stringify(functions, null, 2));
    const rows = (await fs.readFile(FILES.dataPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    for (const row of rows) delete row.gold?.arguments?.action;
    await fs.writeFile(spansOnly.files.dataPath, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    // This worker's operator turned the free-text base off (SUPERTINY_FREE_TEXT_BASE=none): the router then gets
    // the tiny random-init decoder, which trains here in seconds; SmolLM2's 135M parameters take minutes a step.
    // The choice of the base is tested in student-family.test.ts, its fetch and training in decoder-bases.test.ts.
    env = await testEnv(server.address, { taskQueue, dataRoots: [EXAMPLE, dir], freeTextDecoderBase: undefined });
    task = await loadTaskFromFiles({ functions: FILES.functionsPath, data: FILES.dataPath });
    simulator = await startTeacherSimulator({ task });
  }, 120_000);
  afterAll(async () => {
    await simulator?.close();
    await spansOnly?.simulator?.close();
    await stopTestServer(server);
    if (env) await fs.rm(env.dataDir, { recursive: true, force: true });
    if (spansOnly) await fs.rm(spansOnly.dir, { recursive: true, force: true });
  });

  test('the encoder is refused at the start, naming the free-text argument, before any teacher request', async () => {
    const handle = await startPipeline(server.client, { ...smallPipelineConfig('router-encoder'), task: { name: 'from-files', ...FILES }, transfer: { student: { family: 'encoder' } } }, { taskQueue });
    const err = await withWorkers(workers, () => handle.result().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const chain: string[] = [];
    for (let cur: unknown = err; cur instanceof Error; cur = (cur as { cause?: unknown }).cause) chain.push(cur.message);
    expect(chain[chain.length - 1]).toMatch(/transfer\.student\.family: .*argument "action" of function "route_request" is free text, not a span/);
    expect(simulator.stats().chatRequests).toBe(0);
  }, 120_000);

  test('with no family in the config, the decoder is chosen from the schema and runs to completion, saying why; the report names the task and its predictions score back to it', async () => {
    // No transfer.student.family and no shape field of either family: the worker chooses.
    const config = smallPipelineConfig('router', { task: { name: 'from-files', ...FILES, trainLimit: 120, devLimit: 30, testLimit: 30 }, transfer: { student: {} } });
    expect(config.transfer?.student).toEqual({});
    const handle = await startPipeline(server.client, config, { taskQueue });
    const result = await withWorkers(workers, () => handle.result());
    expect(result.status).toBe('completed');
    expect(result.prototype!.summary.accepted).toBeGreaterThan(60);
    const why = 'argument route_request.action is free text, not a span, which the encoder student cannot express';
    expect(result.studentFamily).toEqual({ family: 'decoder', chosenFrom: 'task schema', reason: why });

    // Every stage got the config resolved with the decoder's defaults (the child workflows' recorded inputs).
    for (const stage of ['prototype', 'transfer', 'compress', 'evaluate']) {
      const history = await server.client.workflow.getHandle(`${handle.workflowId}/${stage}`).fetchHistory();
      const started = history.events![0].workflowExecutionStartedEventAttributes!;
      const stageInput = JSON.parse(Buffer.from(started.input!.payloads![0].data!).toString('utf8')); // the first argument
      expect(stageInput.config.transfer.student).toMatchObject({ family: 'decoder', hiddenSize: 192, vocabSize: 2048 });
      expect(stageInput.config.transfer.learningRate).toBe(1e-3);
    }
    // The decoder trained and ran: its trainer's and its ONNX runtime's notes, not the encoder's.
    const report = JSON.parse(await fs.readFile(result.evaluate!.reportPath, 'utf8'));
    expect(report.student_family).toEqual({ family: 'decoder', chosen_from: 'task schema', reason: why });
    expect(report.config.transfer.student.family).toBe('decoder');
    expect(report.models.student.latency_note).toMatch(/unconstrained greedy/);
    expect(report.models.student_int8.latency_note).toMatch(/constrained greedy with KV cache/);
    expect(report.models.student.params).toBeGreaterThan(1_000_000); // the default decoder shape, not a test-sized one
    expect(await fs.readFile(path.join(path.dirname(result.evaluate!.reportPath), 'report.html'), 'utf8')).toContain(
      `Student family <strong>decoder</strong>, chosen automatically from the task schema (the config names none): ${why}.`,
    );

    expect(report.dataset).toMatchObject({ name: 'Request router (derived from MASSIVE en-US)', split: 'test', examples: 30 });
    expect(Object.keys(report.models).sort()).toEqual(['student', 'student_int8', 'student_onnx', 'teacher']);
    // The simulator plays a strong teacher: most of its calls, enum, number and free text included, are right.
    expect(report.models.teacher.exact_match).toBeGreaterThan(0.6);
    expect(report.models.teacher.schema_valid).toBeGreaterThan(0.9);

    const reportDir = path.dirname(result.evaluate!.reportPath);
    const html = await fs.readFile(path.join(reportDir, 'report.html'), 'utf8');
    for (const name of Object.keys(report.models)) {
      expect(report.predictions[name]).toBe(`predictions-${name}.jsonl`);
      expect(html).toContain(`href="predictions-${name}.jsonl"`);
      const text = await fs.readFile(path.join(reportDir, report.predictions[name]), 'utf8');
      const rows = text.trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
      expect(rows).toHaveLength(30);
      expect(Object.keys(rows[0]).sort()).toEqual(['correct', 'gold', 'id', 'input', 'prediction']);
      // The file scores back to the report's numbers with the task's own metrics.
      const metrics = scorePredictions(task, text);
      expect(metrics.exactMatch).toBeCloseTo(report.models[name].exact_match, 10);
      expect(rows.filter((r) => r.correct).length / rows.length).toBeCloseTo(report.models[name].exact_match, 10);
    }
    const teacherRows = (await fs.readFile(path.join(reportDir, 'predictions-teacher.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
    expect(teacherRows.some((r) => r.correct && /entity_count="\d+"/.test(r.prediction ?? '') && /domain="/.test(r.prediction ?? ''))).toBe(true);

    // The decoder's confidence is calibrated on dev as the encoder's is, or the result says why not (here 30 dev
    // answers of a model trained for seconds may be all wrong); the report ranks the decoder's own raw confidence.
    const deployed = result.compress!.deployed!;
    const names = report.cascade.candidates.map((c: { name: string }) => c.name);
    console.log(`decoder calibration: ${deployed.calibration ? JSON.stringify(deployed.calibration) : `skipped (${deployed.skipped})`}; cascade candidates ${names.join(', ')}`);
    if (deployed.calibration) {
      expect(deployed.calibration.examples).toBeGreaterThanOrEqual(20);
      expect(names).toEqual(['calibrated on dev (served)', 'raw: geometric mean of the token probabilities', 'oracle']);
    } else {
      expect(deployed.skipped).toMatch(/a calibration needs (at least 20 scored answers|right and wrong answers)/);
      expect(names).toEqual(['raw: geometric mean of the token probabilities', 'oracle']);
    }
  }, 600_000);

  test('without the free-text argument the encoder student runs to completion: its value heads answer the enum and the count, schema-valid by construction', async () => {
    spansOnly.task = await loadTaskFromFiles({ functions: spansOnly.files.functionsPath, data: spansOnly.files.dataPath });
    spansOnly.simulator = await startTeacherSimulator({ task: spansOnly.task });
    const encoderWorkers = () => createTestWorkers(server, taskQueue, testDeps(env, { simulatorBaseURL: spansOnly.simulator!.url }));
    const config = smallPipelineConfig('router-encoder-run', {
      task: { name: 'from-files', ...spansOnly.files, trainLimit: 120, devLimit: 30, testLimit: 30 },
      transfer: { steps: ['sft'], student: { family: 'encoder', maxLength: 48 }, epochs: 1, maxSteps: 25, batchSize: 16, checkpointEvery: 10 },
      compress: { steps: ['int8'], toleranceExactMatch: 100 },
    });
    const handle = await startPipeline(server.client, config, { taskQueue });
    const result = await withWorkers(encoderWorkers, () => handle.result());
    expect(result.status).toBe('completed');
    const report = JSON.parse(await fs.readFile(result.evaluate!.reportPath, 'utf8'));
    expect(Object.keys(report.models).sort()).toEqual(['student', 'student_int8', 'student_onnx', 'teacher']);
    const reportDir = path.dirname(result.evaluate!.reportPath);
    for (const name of ['student', 'student_onnx', 'student_int8']) {
      expect(report.models[name].schema_valid).toBe(1); // valid by construction: the heads only give the schema's values
      const rows = (await fs.readFile(path.join(reportDir, report.predictions[name]), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as PredictionRow);
      expect(rows).toHaveLength(30);
      // The required enum and integer are never absent; their values are the schema's.
      for (const row of rows) {
        const parsed = spansOnly.task.callFormat.parse(row.prediction!);
        expect(parsed.ok).toBe(true);
        if (!parsed.ok) continue;
        expect(parsed.call.args.map((a) => a.key)).toEqual(expect.arrayContaining(['domain', 'entity_count']));
        expect(spansOnly.task.validateCall(parsed.call).ok).toBe(true);
      }
    }
    // PyTorch and ONNX fp32 are one model (the value heads included): the same answers within a near-tie or two.
    expect(Math.abs(report.models.student.exact_match - report.models.student_onnx.exact_match)).toBeLessThanOrEqual(2 / 30);
    const folder = path.join(env.dataDir, 'router-encoder-onnx');
    const onnx = await loadStudent(await new ArtifactStore(path.join(env.dataDir, 'artifacts')).materializeDirectory(result.compress!.onnx, folder), { task: spansOnly.task });
    try {
      const answer = await onnx.predict('wake me up at five am this week');
      expect(answer.call).toBeDefined();
      expect(spansOnly.task.validateCall(answer.call!).ok).toBe(true);
      expect(answer.call!.args.map((a) => a.key)).toEqual(expect.arrayContaining(['domain', 'entity_count']));
    } finally {
      await onnx.release();
    }
  }, 900_000);
});
