// The worker-thread side of ThreadedStudent: loads the task and the student, then answers predictBatch
// requests posted by the server's thread.
import { parentPort, workerData } from 'node:worker_threads';
import { loadStudent } from '../student';
import { loadBuiltInTask } from '../../tasks/built-in';
import type { ThreadRequest, ThreadResponse, ThreadStudentOptions } from './student-thread';

const options = workerData as ThreadStudentOptions;
const port = parentPort!;
const post = (message: ThreadResponse) => port.postMessage(message);

const student = (async () => {
  const task = await loadBuiltInTask(options.task.name, options.task.files);
  return loadStudent(options.folder, { task, modelFile: options.modelFile, threads: options.threads, rememberValues: options.rememberValues });
})();

student.then(
  (s) => post({ type: 'ready', family: s.family, modelFile: s.modelFile }),
  (err: Error) => post({ type: 'failed', name: err.name, message: err.message }),
);

port.on('message', (request: ThreadRequest) => {
  void (async () => {
    const s = await student;
    if (request.type === 'release') {
      await s.release();
      return post({ type: 'released' });
    }
    try {
      const answers = await s.predictEach(request.inputs, { batchSize: request.inputs.length });
      post({
        type: 'answers',
        id: request.id,
        answers: answers.map((a) => (a.ok ? a : { ok: false, error: { code: a.error.code, message: a.error.message } })),
      });
    } catch (err) {
      post({ type: 'answers', id: request.id, error: (err as Error).message });
    }
  })();
});
