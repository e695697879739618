// onnxruntime-node creates output tensors from typed arrays of Node's main realm, but jest runs each test file in
// its own realm, whose typed-array classes fail onnxruntime-common's instanceof checks. A test file therefore
// loads the student runtime through this function, which first gives its realm the main realm's classes.
import * as vm from 'node:vm';
import type * as Student from '../../runtime/student';

const TYPED_ARRAYS = ['Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array'];

export function requireStudentRuntime(): typeof Student {
  for (const name of TYPED_ARRAYS) (globalThis as Record<string, unknown>)[name] = vm.runInThisContext(name);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../../runtime/student') as typeof Student;
}
