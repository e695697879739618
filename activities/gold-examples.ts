// The labelled rows of dev and test as stored by the prototype stage and read back by evaluate.
import type { Call } from '../tasks/call-format';
import type { TaskExample, TaskSpec } from '../tasks/define';
import { InvalidInputError } from './failures';

/** A labelled example of dev or test: the gold call in the compact format. */
export interface GoldExample {
  id: string;
  text: string;
  gold: string;
}

/** The labelled rows of dev or test, the gold call in the task's call format; every one needs its gold. */
export function goldExamples(task: TaskSpec<any>, examples: readonly TaskExample[]): GoldExample[] {
  return examples.map((e) => {
    const gold = task.gold(e);
    if (!gold) throw new InvalidInputError(`task "${task.name}": ${e.split} example ${JSON.stringify(e.id)} has no gold call (dev and test need one)`);
    return { id: e.id, text: task.input(e), gold: task.callFormat.print(gold) };
  });
}

/** A stored gold row's call, read back with the task's call format. */
export function parseGold(task: Pick<TaskSpec<any>, 'callFormat'>, g: GoldExample): Call {
  const parsed = task.callFormat.parse(g.gold);
  if (!parsed.ok) throw new InvalidInputError(`gold call of ${g.id} does not parse: ${parsed.error}`);
  return parsed.call;
}
