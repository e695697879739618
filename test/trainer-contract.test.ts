// One contract between TypeScript and the Python trainer: trainer/contract.json, written from the Python
// dataclasses. These tests fail when the two sides disagree.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readEnv } from '../config/env';
import { parsePipelineConfig } from '../config/pipeline';
import { passableTrainerField, TRAINER_COMMANDS, TRAINER_ERROR_KINDS, trainerConfigFields, trainingCommand, type TrainerCommand } from '../config/trainer-contract';
import contract from '../trainer/contract.json';
import { trainingStepConfig } from '../config/step-config';
import { pipelinePlan } from '../config/plan';
import { compressStep, qatStep } from '../config/trainer-steps';
import { NON_RETRYABLE_KINDS } from '../activities/trainer/trainer-process';
import { DECODER_COMMANDS, ENCODER_COMMANDS } from '../config/trainer-contract';

const run = promisify(execFile);
const env = readEnv();

test('the checked-in trainer/contract.json is what the Python trainer says today (regenerate it with the command in its header)', async () => {
  const { stdout } = await run(env.python, ['-m', 'supertiny_trainer.contract'], { cwd: path.join(env.projectRoot, 'trainer'), maxBuffer: 16 << 20 });
  const checkedIn = JSON.parse(await fs.readFile(path.join(env.projectRoot, 'trainer', 'contract.json'), 'utf8'));
  expect(JSON.parse(stdout)).toEqual(checkedIn);
}, 120_000);

test('every command and error kind the TypeScript side uses exists in the trainer', () => {
  const used: TrainerCommand[] = ['tokenizer', 'init', 'sft', 'dpo', 'kd', 'grpo', 'predict', 'export', 'quantize', ...Object.values(ENCODER_COMMANDS), ...Object.values(DECODER_COMMANDS)];
  expect(used.filter((c) => !TRAINER_COMMANDS.includes(c))).toEqual([]);
  expect([...NON_RETRYABLE_KINDS].filter((k) => !TRAINER_ERROR_KINDS.includes(k))).toEqual([]);
});

test.each([
  ['decoder', 'sft'],
  ['decoder', 'dpo'],
  ['decoder', 'kd'],
  ['decoder', 'grpo'],
  ['encoder', 'sft'],
] as const)('every field the %s %s step sends is a field of its trainer command', (family, step) => {
  const transfer = parsePipelineConfig({ transfer: { student: { family }, ...(family === 'decoder' ? { steps: ['sft', 'dpo', 'kd', 'grpo'], dropout: 0.1, maxSteps: 10 } : { maxSteps: 10 }) } }).transfer;
  const paths = step === 'kd' ? ['model', 'data', 'teacher'] : step === 'grpo' || family === 'encoder' ? ['model', 'data', 'task'] : ['model', 'data'];
  const sent = [...Object.keys(trainingStepConfig(transfer, step)), ...paths];
  const command = trainingCommand(family, step);
  expect(sent.filter((field) => !trainerConfigFields(command).has(field))).toEqual([]);
});

test.each([
  ['encoder', 'encoder-prune-vocab'],
  ['decoder', 'decoder-prune-vocab'],
] as const)('the %s prune-vocab step runs %s with fields of that command', (family, command) => {
  const config = parsePipelineConfig({ transfer: { student: { family } }, compress: { steps: ['prune-vocab', 'int8'], pruneVocabMinCount: 2 } });
  const step = compressStep(pipelinePlan(config).compress.steps[0]);
  expect(step).toMatchObject({ name: 'pruneVocab', command, config: { min_count: 2 } });
  expect([...Object.keys(step.config), ...Object.values(step.inputs).map((input) => input.field)].filter((field) => !trainerConfigFields(step.command).has(field))).toEqual([]);
});

test.each([
  ['encoder', 'encoder-prune-layers'],
  ['decoder', 'decoder-prune-layers'],
] as const)('the %s prune-layers step runs %s with fields of that command', (family, command) => {
  const config = parsePipelineConfig({ transfer: { student: { family } }, compress: { steps: ['prune-layers', 'int8'], pruneLayersKeep: 3, pruneLayersEpochs: 1 } });
  const step = compressStep(pipelinePlan(config).compress.steps[0]);
  expect(step).toMatchObject({ name: 'pruneLayers', command, config: { layers: 3, epochs: 1 } });
  expect([...Object.keys(step.config), ...Object.values(step.inputs).map((input) => input.field)].filter((field) => !trainerConfigFields(step.command).has(field))).toEqual([]);
  // A plan recorded before the decoder had this step names no family: it was the encoder's.
  expect(compressStep({ step: 'prune-layers', layers: 3, epochs: 1, seed: 1 }).command).toBe('encoder-prune-layers');
});

test("int4-qat trains with decoder-qat's fields, then quantizes as int4", () => {
  const config = parsePipelineConfig({ transfer: { student: { family: 'decoder' }, seed: 7 }, compress: { steps: ['int8', 'int4-qat'], qatEpochs: 2 } });
  const plan = pipelinePlan(config).compress.steps[1];
  expect(plan).toEqual({ step: 'int4-qat', qat: { epochs: 2, seed: 7 } });
  const training = qatStep({ step: 'int4-qat', qat: { epochs: 2, seed: 7 } });
  expect(training).toMatchObject({ name: 'qat-int4-qat', command: 'decoder-qat', config: { epochs: 2, seed: 7 } });
  expect([...Object.keys(training.config), ...Object.values(training.inputs).map((input) => input.field)].filter((field) => !trainerConfigFields(training.command).has(field))).toEqual([]);
  expect(compressStep(plan)).toMatchObject({ name: 'quantize-int4-qat', command: 'quantize', config: { scheme: 'int4' } });
});

test('the pass-through is checked against every step of the run before anything starts, naming the command', () => {
  expect(() => parsePipelineConfig({ transfer: { student: { family: 'decoder' }, trainer: { warmup_ratioo: 0.1 } } })).toThrow(
    /transfer\.trainer\.warmup_ratioo: is not a config field of the trainer's "sft" command/,
  );
  // An sft-only field with a dpo step: dpo would refuse it after sft had run.
  expect(() => parsePipelineConfig({ transfer: { student: { family: 'decoder' }, steps: ['sft', 'dpo'], trainer: { prompt_loss_weight: 0.1 } } })).toThrow(
    /transfer\.trainer\.prompt_loss_weight: is not a config field of the trainer's "dpo" command \(step "dpo"/,
  );
  expect(parsePipelineConfig({ transfer: { student: { family: 'encoder' }, trainer: { vote_weight: 0.5 } } }).transfer.trainer).toEqual({ vote_weight: 0.5 });
});

test('no free string field (a path) of any training command is passable through transfer.trainer; what is passable is a number, a boolean or a closed set', () => {
  const refused = new Set<string>();
  for (const [family, step] of [['decoder', 'sft'], ['decoder', 'dpo'], ['decoder', 'kd'], ['decoder', 'grpo'], ['encoder', 'sft']] as const) {
    const command = trainingCommand(family, step);
    const fields = contract.commands[command].fields as Record<string, { type: string; choices?: string[] }>;
    const transfer = { student: { family }, steps: family === 'decoder' ? [...new Set(['sft', step])] : ['sft'] };
    for (const [field, { type, choices }] of Object.entries(fields)) {
      const passable = passableTrainerField(command, field);
      if (passable) {
        // A passable field is exactly a number, a boolean or a string with choices in the contract.
        const expected = choices ? 'choice' : ({ int: 'integer', float: 'number', bool: 'boolean' } as Record<string, string>)[type.replace(/ \| None$/, '')];
        expect(passable.kind).toBe(expected);
        continue;
      }
      refused.add(field);
      // Not passable: a path is refused by name, whatever the value looks like.
      for (const value of ['/etc/hostname', 1, true]) {
        expect(() => parsePipelineConfig({ transfer: { ...transfer, trainer: { [field]: value } } })).toThrow(new RegExp(`transfer\\.trainer\\.${field}: `));
      }
    }
  }
  // The paths the review found passable, and the ones the pipeline sets, are all among the refused.
  expect([...refused].sort()).toEqual(expect.arrayContaining(['data', 'model', 'ref_model', 'task', 'teacher', 'tools']));
  // Every str field left is one with a closed set of values.
  for (const command of TRAINER_COMMANDS) {
    for (const [field, { type, choices }] of Object.entries(contract.commands[command].fields as Record<string, { type: string; choices?: string[] }>)) {
      if (type.startsWith('str') && passableTrainerField(command, field)) expect(choices?.length).toBeGreaterThan(0);
    }
  }
});
