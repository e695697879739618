// The trainer's CLI contract, typed from trainer/contract.json (written by `python -m
// supertiny_trainer.contract` from the Python dataclasses): the command names, each command's config
// fields, the error kinds. test/trainer-contract.test.ts fails when the checked-in copy and the Python
// side disagree. Safe to import from workflow code (the config schema checks the pass-through with it).
import contract from '../trainer/contract.json';

export type TrainerCommand = keyof typeof contract.commands;
export const TRAINER_COMMANDS = Object.keys(contract.commands) as TrainerCommand[];
export const TRAINER_ERROR_KINDS: readonly string[] = contract.error_kinds;

/** The config fields a trainer command accepts (it refuses any other by name). */
export function trainerConfigFields(command: TrainerCommand): ReadonlySet<string> {
  return new Set(Object.keys(contract.commands[command].fields));
}

/** The trainer command that runs a transfer step of a student family. */
export function trainingCommand(family: 'encoder' | 'decoder', step: string): TrainerCommand {
  return (family === 'encoder' ? 'encoder-sft' : step) as TrainerCommand;
}
