// What the activities need, injected by the plugin (or a test).
import type { ArtifactStore } from '../artifacts/store';
import type { SupertinyEnv } from '../config/env';
import type { TeacherEndpoint } from '../config/endpoints';
import type { TaskRegistry } from '../tasks/registry';

export interface ActivityDeps {
  env: SupertinyEnv;
  store: ArtifactStore;
  /** The operator's teacher endpoints (config/endpoints.ts); unset = only the built-in simulator. */
  endpoints?: TeacherEndpoint[];
  /** A running teacher simulator to use for the "simulator" endpoint; unset = start one in-process on first use. */
  simulatorBaseURL?: string;
  /** The tasks a config may name (the plugin's `tasks` after the built-in ones); unset = the built-in tasks. */
  tasks?: TaskRegistry;
}
