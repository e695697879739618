// A bad file of a task from files: names the file, line and field, never quotes the content (a config may
// point at any file inside the data roots, and its text must not travel in an error).
import { FailureType, SupertinyError } from '../../config/failure-types';

export class TaskFileError extends SupertinyError {
  readonly failureType = FailureType.InvalidInput;
}
