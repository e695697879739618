// `serve --deployment DIR`: follows the deployment's current.json (runtime/deployments.ts). It polls the
// pointer (fs.watch misses atomic renames on some systems); when the pointer names another version, it
// loads that version, checks it is of the served task and family and answers one warm-up request, and only
// then swaps it in (StudentHolder: requests in flight finish on the old student). A version that fails any
// step is not served: the old one stays, the failure is logged, shown in /healthz and counted, and the
// version is tried again only after the pointer moves again.
import { createLogger } from '../../config/logger';
import { readCurrent, readVersionInfo, versionFolder } from '../deployments';
import type { StudentRuntime } from '../student';
import { Counter, Gauge, type Metric } from './prometheus';
import type { StudentHolder } from './student-holder';

const log = createLogger('serve');

export const DEFAULT_DEPLOYMENT_POLL_MS = 1_000;
const DEFAULT_WARM_UP_TIMEOUT_MS = 60_000;
/** Any text does: the warm-up checks that the student answers, not what. */
export const WARM_UP_INPUT = 'hello';

export interface DeploymentFollowerOptions {
  dir: string;
  holder: StudentHolder;
  /** The served task's name: a version whose deployment-version.json records another task is refused. */
  taskName: string;
  /** Loads a version's student folder, as the first one was loaded (its task checks the version's labels). */
  load: (folder: string) => Promise<StudentRuntime>;
  /** How often current.json is read, ms. Default 1000. */
  pollMs?: number;
  /** How long the warm-up request may take, ms. Default 60 s. */
  warmUpTimeoutMs?: number;
}

/** What /healthz shows of the deployment. */
export interface DeploymentStatus {
  dir: string;
  /** The version new requests get. */
  served_version: string | undefined;
  /** The version current.json names (as last read). */
  pointer_version: string | undefined;
  /** Whether the served version is the one the pointer names. */
  in_sync: boolean;
  swaps: { ok: number; failed: number };
  last_swap?: { from: string | undefined; to: string; at: string; load_ms: number };
  /** The last version that was not swapped in and why; cleared when the pointer moves to a version that is served. */
  swap_error?: { version: string; reason: string; at: string };
  /** Why current.json could not be read at the last poll (serving goes on with the served version). */
  pointer_error?: { reason: string; at: string };
}

/** A version that must not be served, and why. */
export class VersionRefused extends Error {
  constructor(
    readonly version: string,
    reason: string,
  ) {
    super(reason);
    this.name = 'VersionRefused';
  }
}

/** Resolves when `student` has answered one request; rejects with why not (a thrown error, a refusal, a timeout). */
export async function warmUp(student: StudentRuntime, timeoutMs = DEFAULT_WARM_UP_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer to the warm-up request within ${timeoutMs} ms`)), timeoutMs)));
  try {
    const answers = await Promise.race([student.predictEach([WARM_UP_INPUT], { batchSize: 1 }), timeout]);
    if (answers.length !== 1) throw new Error(`the warm-up request got ${answers.length} answers`);
    if (!answers[0].ok) throw new Error(`the warm-up request was refused: ${answers[0].error.message}`);
  } finally {
    clearTimeout(timer);
  }
}

export class DeploymentFollower {
  private readonly pollMs: number;
  private pointerVersion: string | undefined;
  private readonly swaps = { ok: 0, failed: 0 };
  private lastSwap: DeploymentStatus['last_swap'];
  private swapError: DeploymentStatus['swap_error'];
  private pointerError: DeploymentStatus['pointer_error'];
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  /** The metrics the server exposes: swaps by outcome and whether the served version is the pointer's. */
  readonly metrics: readonly Metric[];
  private readonly swapCounter = new Counter('supertiny_model_swaps_total', "Deployment versions swapped in (outcome ok) or refused (outcome failed: did not load, answer or match the served task).");

  constructor(private readonly options: DeploymentFollowerOptions) {
    this.pollMs = options.pollMs ?? DEFAULT_DEPLOYMENT_POLL_MS;
    if (!(this.pollMs >= 10)) throw new Error(`the deployment poll interval must be >= 10 ms, got ${this.pollMs}`);
    this.pointerVersion = options.holder.version;
    this.metrics = [
      this.swapCounter,
      new Gauge('supertiny_deployment_in_sync', "1 when the served version is the one the deployment's current.json names, else 0.", () => (this.inSync ? 1 : 0)),
    ];
  }

  private get inSync(): boolean {
    return this.pointerVersion === this.options.holder.version;
  }

  status(): DeploymentStatus {
    return {
      dir: this.options.dir,
      served_version: this.options.holder.version,
      pointer_version: this.pointerVersion,
      in_sync: this.inSync,
      swaps: { ...this.swaps },
      ...(this.lastSwap ? { last_swap: this.lastSwap } : {}),
      ...(this.swapError ? { swap_error: this.swapError } : {}),
      ...(this.pointerError ? { pointer_error: this.pointerError } : {}),
    };
  }

  /** Starts polling current.json. */
  start(): void {
    if (this.stopped || this.started) return;
    this.started = true;
    const next = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.poll().finally(next);
      }, this.pollMs);
    };
    next();
  }

  /** Stops polling; waits for a check under way (a version it loaded and did not swap in is released). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  /** Reads the pointer once and follows it; never throws (failures are recorded). One check at a time: a call during one joins it. */
  poll(): Promise<void> {
    this.polling ??= this.follow().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async follow(): Promise<void> {
    let pointer;
    try {
      pointer = await readCurrent(this.options.dir);
      if (!pointer) throw new Error(`${this.options.dir} has no current.json`);
    } catch (err) {
      const reason = (err as Error).message;
      if (this.pointerError?.reason !== reason) log.error(`cannot read the deployment pointer; still serving ${this.options.holder.version}`, { reason });
      this.pointerError = { reason, at: new Date().toISOString() };
      return;
    }
    this.pointerError = undefined;
    const version = pointer.version;
    // A version is tried once per move of the pointer: a refused one waits for the next promote or rollback.
    if (version === this.pointerVersion) return;
    this.pointerVersion = version;
    const served = this.options.holder.version;
    if (version === served) {
      this.swapError = undefined;
      return;
    }
    const started = Date.now();
    let student: StudentRuntime;
    try {
      student = await this.prepare(version);
    } catch (err) {
      if (this.stopped) return; // a shutdown is no failure of the version
      const reason = (err as Error).message;
      this.swaps.failed++;
      this.swapCounter.inc({ outcome: 'failed' });
      this.swapError = { version, reason, at: new Date().toISOString() };
      log.error(`deployment version ${version} is NOT served (still serving ${served}): ${reason}`, { dir: this.options.dir });
      return;
    }
    if (this.stopped) {
      await student.release().catch(() => undefined);
      return;
    }
    const drained = this.options.holder.swap(student, version);
    const loadMs = Date.now() - started;
    this.swaps.ok++;
    this.swapCounter.inc({ outcome: 'ok' });
    this.swapError = undefined;
    this.lastSwap = { from: served, to: version, at: new Date().toISOString(), load_ms: loadMs };
    log.info(`now serving deployment version ${version} (was ${served}); the old student is released after its requests in flight`, { loadMs });
    void drained.then(() => log.info(`released deployment version ${served}`));
  }

  /** Loads `version` and checks it may replace the served student; a student that fails a check is released here. */
  private async prepare(version: string): Promise<StudentRuntime> {
    const { dir, holder, taskName } = this.options;
    const folder = versionFolder(dir, version);
    const info = await readVersionInfo(dir, version).catch((err: Error) => {
      throw new VersionRefused(version, err.message);
    });
    if (info?.task !== undefined && info.task !== taskName) {
      throw new VersionRefused(version, `it was made for task "${info.task}"; this server serves task "${taskName}" (a deployment's versions must be of one task)`);
    }
    let student: StudentRuntime;
    try {
      student = await this.options.load(folder);
    } catch (err) {
      throw new VersionRefused(version, `it does not load: ${(err as Error).message}`);
    }
    try {
      const family = holder.student.family;
      if (student.family !== family) {
        throw new VersionRefused(version, `it is a ${student.family} student; this server serves a ${family} student of task "${taskName}" (a deployment's versions must be of one family)`);
      }
      try {
        await warmUp(student, this.options.warmUpTimeoutMs);
      } catch (err) {
        throw new VersionRefused(version, `it loads but does not answer: ${(err as Error).message}`);
      }
      return student;
    } catch (err) {
      await student.release().catch(() => undefined);
      throw err;
    }
  }
}
