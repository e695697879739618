// loadStudent reads the folder's supertiny.json and loads the right family; apart from the interface
// (student-runtime.ts), which both families implement, so that neither imports its own loader.
import { DecoderStudent } from './decoder-model';
import { EncoderStudent } from './encoder-model';
import { readStudentFamily, requireFolder } from './model-folder';
import type { StudentLoadOptions, StudentRuntime } from './student-runtime';

/** Loads an exported student folder of either family; errors name the missing file or the wrong field. */
export async function loadStudent(folder: string, options: StudentLoadOptions = {}): Promise<StudentRuntime> {
  await requireFolder(folder);
  const family = await readStudentFamily(folder);
  return family === 'encoder' ? EncoderStudent.load(folder, options) : DecoderStudent.load(folder, options);
}
