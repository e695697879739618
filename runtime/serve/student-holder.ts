// The served student behind a swappable reference. A request leases the student it starts on and keeps it
// to its end, so that a swap sends only new requests to the new student; a swapped-out student is released
// once its last lease ends, never under a request that still uses it.
import { createLogger } from '../../config/logger';
import type { StudentRuntime } from '../student';

const log = createLogger('serve');

/** A request's hold on the student it runs on; release() once the request is done with it. */
export interface StudentLease {
  readonly student: StudentRuntime;
  /** The deployment version of that student (undefined for a student served from a plain folder). */
  readonly version: string | undefined;
  release(): void;
}

interface Served {
  student: StudentRuntime;
  version: string | undefined;
  leases: number;
  retired: boolean;
  released?: Promise<void>;
}

export class StudentHolder {
  private served: Served;
  /** Swapped-out students whose last requests are still running. */
  private readonly draining = new Set<Served>();
  private closed: Promise<void> | undefined;

  constructor(student: StudentRuntime, version?: string) {
    this.served = { student, version, leases: 0, retired: false };
  }

  /** The student new requests get. */
  get student(): StudentRuntime {
    return this.served.student;
  }

  get version(): string | undefined {
    return this.served.version;
  }

  /** Requests running on a swapped-out student (0 once every old student is released). */
  get drainingRequests(): number {
    return [...this.draining].reduce((sum, s) => sum + s.leases, 0);
  }

  /** The current student, held until release() (which is idempotent). */
  acquire(): StudentLease {
    if (this.closed) throw new Error('the served student is closed');
    const served = this.served;
    served.leases++;
    let released = false;
    return {
      student: served.student,
      version: served.version,
      release: () => {
        if (released) return;
        released = true;
        served.leases--;
        if (served.retired && served.leases === 0) void this.releaseStudent(served);
      },
    };
  }

  /**
   * Makes `student` the one new requests get. The student it replaces is released when its last lease ends;
   * the promise resolves then (a failed release is logged, not thrown: the swap itself has happened).
   */
  swap(student: StudentRuntime, version: string | undefined): Promise<void> {
    if (this.closed) throw new Error('the served student is closed');
    const old = this.served;
    this.served = { student, version, leases: 0, retired: false };
    old.retired = true;
    this.draining.add(old);
    return old.leases === 0 ? this.releaseStudent(old) : new Promise<void>((resolve) => this.waitReleased(old, resolve));
  }

  /** Releases the current student and every swapped-out one, after their requests end. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      const last = this.served;
      last.retired = true;
      this.draining.add(last);
      if (last.leases === 0) void this.releaseStudent(last);
      await Promise.all([...this.draining].map((s) => new Promise<void>((resolve) => this.waitReleased(s, resolve))));
    })();
    return this.closed;
  }

  private readonly waiters = new Map<Served, (() => void)[]>();

  private waitReleased(served: Served, resolve: () => void): void {
    if (served.released) return void served.released.then(resolve);
    this.waiters.set(served, [...(this.waiters.get(served) ?? []), resolve]);
  }

  private releaseStudent(served: Served): Promise<void> {
    served.released ??= served.student
      .release()
      .catch((err: unknown) => log.error('releasing a swapped-out student failed', { version: served.version, error: err instanceof Error ? err.message : String(err) }))
      .then(() => {
        this.draining.delete(served);
        for (const resolve of this.waiters.get(served) ?? []) resolve();
        this.waiters.delete(served);
      });
    return served.released;
  }
}
