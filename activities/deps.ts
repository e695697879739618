// What the activities need, injected by the plugin (or a test).
import type { ArtifactStore } from '../artifacts/store';
import type { SupertinyEnv } from '../config/env';

export interface ActivityDeps {
  env: SupertinyEnv;
  store: ArtifactStore;
  /** Default teacher endpoint when a config names none; unset = start the teacher simulator in-process. */
  teacherBaseURL?: string;
}
