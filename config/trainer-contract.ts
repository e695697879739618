// The trainer's CLI contract, typed from trainer/contract.json (written by `python -m
// supertiny_trainer.contract` from the Python dataclasses): the command names, each command's config
// fields, the error kinds. test/trainer-contract.test.ts fails when the checked-in copy and the Python
// side disagree. Safe to import from workflow code (the config schema checks the pass-through with it).
import contract from '../trainer/contract.json';

export type TrainerCommand = keyof typeof contract.commands;
export const TRAINER_COMMANDS = Object.keys(contract.commands) as TrainerCommand[];
export const TRAINER_ERROR_KINDS: readonly string[] = contract.error_kinds;

/** A config field as the contract describes it: its Python type, default and, for a closed set of strings, the set. */
interface ContractField {
  type: string;
  default: unknown;
  choices?: string[];
}

function contractFields(command: TrainerCommand): Record<string, ContractField> {
  return contract.commands[command].fields as Record<string, ContractField>;
}

/** The config fields a trainer command accepts (it refuses any other by name). */
export function trainerConfigFields(command: TrainerCommand): ReadonlySet<string> {
  return new Set(Object.keys(contractFields(command)));
}

/** The value a pipeline config may give a trainer field through `transfer.trainer`. */
export type PassableTrainerField = { kind: 'integer' | 'number' | 'boolean' } | { kind: 'choice'; choices: readonly string[] };

const PASSABLE_TYPES: Record<string, 'integer' | 'number' | 'boolean'> = { int: 'integer', float: 'number', bool: 'boolean' };

/**
 * How `transfer.trainer` may set `field` of `command`, from the contract's types: numbers, booleans and
 * strings with a closed set of values. Undefined for every other field: free strings (the paths the pipeline
 * sets, such as model and data, and those it must not let a config set, such as tools, ref_model and
 * task), lists, and names the command does not have.
 */
export function passableTrainerField(command: TrainerCommand, field: string): PassableTrainerField | undefined {
  const fields = contractFields(command);
  if (!Object.hasOwn(fields, field)) return undefined;
  const { type, choices } = fields[field];
  if (choices) return { kind: 'choice', choices };
  const kind = PASSABLE_TYPES[type.replace(/ \| None$/, '')];
  return kind ? { kind } : undefined;
}

/** The encoder family's trainer commands (trainer/ENCODER_FORMAT.md); predict, export and quantize dispatch on the folder. */
export const ENCODER_COMMANDS = { convert: 'encoder-convert', train: 'encoder-sft', pruneVocab: 'encoder-prune-vocab', pruneLayers: 'encoder-prune-layers' } as const satisfies Record<string, TrainerCommand>;

/** The decoder family's own trainer commands; its training steps are commands of their names (trainingCommand). */
export const DECODER_COMMANDS = { pruneVocab: 'decoder-prune-vocab', pruneLayers: 'decoder-prune-layers', qat: 'decoder-qat' } as const satisfies Record<string, TrainerCommand>;

/** The trainer command that runs a transfer step of a student family. */
export function trainingCommand(family: 'encoder' | 'decoder', step: string): TrainerCommand {
  return (family === 'encoder' ? ENCODER_COMMANDS.train : step) as TrainerCommand;
}
