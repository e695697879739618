// Traffic capture (`supertiny serve --capture DIR`): one JSONL line per chat completion the student answered,
// with the input, the student's call and confidence, the cascade's decision and the teacher's call, so that
// production traffic can come back as training data (`supertiny import-openai` reads these files).
//   DIR/capture-YYYYMMDD-NNN.jsonl   one file per UTC day, a new NNN when a file would pass maxFileBytes
// Never headers, tokens or the Authorization value: a line holds only the fields of CaptureLineSchema.
// A capture never fails or slows a request: record() only queues the line; a timer appends the queue, and a
// failed append is logged and counted (Prometheus), and its lines are dropped, never thrown at a request.
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createLogger } from '../../config/logger';
import { Counter } from './prometheus';
import { CAPTURE_FORMAT, type CaptureLine } from '../../tasks/capture-line';

// The line format lives with the tasks (tasks/capture-line.ts), as import-openai reads it back into a task.
export { CAPTURE_FORMAT, CapturedCallSchema, CaptureLineSchema, type CapturedCall, type CaptureLine } from '../../tasks/capture-line';

const log = createLogger('capture');

export const DEFAULT_CAPTURE_MAX_FILE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_CAPTURE_RETENTION_DAYS = 30;
const DEFAULT_FLUSH_INTERVAL_MS = 1_000;
/** Queued bytes that make the writer append at once rather than at the next tick of the interval. */
const FLUSH_AT_BYTES = 256 * 1024;
const DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024;
const RETENTION_EVERY_MS = 60 * 60 * 1000;
/** At most one logged failure per this many ms (each one is counted). */
const ERROR_LOG_EVERY_MS = 60_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A capture file's name: its UTC day and its sequence number within the day. */
const CAPTURE_FILE = /^capture-(\d{8})-(\d{3,})\.jsonl$/;

/** What the server hands over; the writer stamps the format and the time. */
export type CaptureRecord = Omit<CaptureLine, 'format' | 'time'>;

export interface CaptureOptions {
  dir: string;
  /** A file is rotated before a line would take it past this many bytes. Default 64 MiB. */
  maxFileBytes?: number;
  /** Capture files of a UTC day more than this many days before today are deleted. Default 30. */
  retentionDays?: number;
  /** How long a line may wait in memory before it is appended, ms. Default 1 s. */
  flushIntervalMs?: number;
  /** Most bytes waiting in memory; past it (a disk that cannot keep up) lines are dropped and counted. Default 16 MiB. */
  maxQueuedBytes?: number;
  /** The clock (tests). */
  now?: () => Date;
}

export interface CaptureCounters {
  lines: Counter;
  errors: Counter;
  dropped: Counter;
}

interface QueuedLine {
  day: string;
  text: string;
  bytes: number;
}

interface OpenFile {
  day: string;
  seq: number;
  path: string;
  bytes: number;
}

/** The UTC day of a time, YYYYMMDD. */
const dayOf = (time: Date) => time.toISOString().slice(0, 10).replace(/-/g, '');

export const captureFileName = (day: string, seq: number) => `capture-${day}-${String(seq).padStart(3, '0')}.jsonl`;

export class CaptureWriter {
  readonly dir: string;
  readonly maxFileBytes: number;
  readonly retentionDays: number;
  /** Registered by the student server in its /metrics. */
  readonly counters: CaptureCounters = {
    lines: new Counter('supertiny_capture_lines_total', 'Capture lines appended to the capture files.'),
    errors: new Counter('supertiny_capture_errors_total', 'Capture failures by operation (write, retention, record); requests were answered regardless.'),
    dropped: new Counter('supertiny_capture_dropped_total', 'Capture lines lost, by reason (write_error, queue_full, closed).'),
  };
  private readonly flushIntervalMs: number;
  private readonly maxQueuedBytes: number;
  private readonly now: () => Date;
  private queue: QueuedLine[] = [];
  private queuedBytes = 0;
  private file: OpenFile | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly retentionTimer: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  private lastErrorLog = -Infinity;
  private unloggedErrors = 0;

  private constructor(options: CaptureOptions) {
    this.dir = path.resolve(options.dir);
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_CAPTURE_MAX_FILE_BYTES;
    this.retentionDays = options.retentionDays ?? DEFAULT_CAPTURE_RETENTION_DAYS;
    this.flushIntervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.now = options.now ?? (() => new Date());
    if (!(Number.isInteger(this.maxFileBytes) && this.maxFileBytes > 0)) throw new Error(`capture maxFileBytes must be a positive integer, got ${this.maxFileBytes}`);
    if (!(Number.isInteger(this.retentionDays) && this.retentionDays >= 1)) throw new Error(`capture retentionDays must be an integer >= 1, got ${this.retentionDays}`);
    // Retention also runs when a day's first file opens; the timer covers a quiet server.
    this.retentionTimer = setInterval(() => void this.deleteExpired(), RETENTION_EVERY_MS).unref();
  }

  /** Creates the folder (an operator's mistake there fails the start, not a request) and applies retention once. */
  static async open(options: CaptureOptions): Promise<CaptureWriter> {
    const writer = new CaptureWriter(options);
    try {
      await fs.mkdir(writer.dir, { recursive: true });
      await fs.access(writer.dir, constants.W_OK);
    } catch (err) {
      writer.stopTimers();
      throw new Error(`--capture ${writer.dir}: cannot write there (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    await writer.deleteExpired();
    return writer;
  }

  /** Queues one line; never throws and never waits. */
  record(record: CaptureRecord): void {
    try {
      if (this.closed) {
        this.counters.dropped.inc({ reason: 'closed' });
        return;
      }
      const time = this.now();
      const { id, ...rest } = record;
      const line: CaptureLine = { format: CAPTURE_FORMAT, id, time: time.toISOString(), ...rest };
      const text = JSON.stringify(line) + '\n';
      const bytes = Buffer.byteLength(text);
      if (this.queuedBytes + bytes > this.maxQueuedBytes) {
        this.counters.dropped.inc({ reason: 'queue_full' });
        this.failed('queue_full', new Error(`more than ${this.maxQueuedBytes} bytes wait to be written; dropping lines`));
        return;
      }
      this.queue.push({ day: dayOf(time), text, bytes });
      this.queuedBytes += bytes;
      if (this.queuedBytes >= FLUSH_AT_BYTES) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), this.flushIntervalMs).unref();
    } catch (err) {
      this.failed('record', err);
    }
  }

  /** Appends every queued line; resolves when they are written (or counted as dropped). Never rejects. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.writing = this.writing.then(() => this.appendQueued());
    return this.writing;
  }

  /** Writes what is queued and stops; later records are dropped and counted. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopTimers();
    await this.flush();
  }

  /**
   * Deletes the capture files whose UTC day is more than retentionDays before today; other files in the
   * folder are never touched. Returns the names deleted.
   */
  async deleteExpired(): Promise<string[]> {
    const oldestKept = dayOf(new Date(this.now().getTime() - this.retentionDays * DAY_MS));
    const deleted: string[] = [];
    try {
      for (const name of await fs.readdir(this.dir)) {
        const match = CAPTURE_FILE.exec(name);
        if (!match || match[1] >= oldestKept) continue;
        await fs.rm(path.join(this.dir, name), { force: true });
        deleted.push(name);
      }
      if (deleted.length > 0) log.info(`retention: deleted ${deleted.length} capture file(s) older than ${this.retentionDays} days`, { files: deleted });
    } catch (err) {
      this.failed('retention', err);
    }
    return deleted;
  }

  private stopTimers(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    clearInterval(this.retentionTimer);
  }

  private async appendQueued(): Promise<void> {
    const lines = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    let index = 0;
    while (index < lines.length) {
      // The longest run of lines that goes into one file.
      let target: OpenFile;
      try {
        target = await this.fileFor(lines[index]);
      } catch (err) {
        this.dropAfterError(lines.length - index, err);
        return;
      }
      let end = index;
      let bytes = 0;
      while (end < lines.length && lines[end].day === target.day && (bytes === 0 || target.bytes + bytes + lines[end].bytes <= this.maxFileBytes)) {
        bytes += lines[end].bytes;
        end++;
      }
      // Appended without waiting for a flush to disk: the lines of the last second may be lost in a crash.
      try {
        await fs.appendFile(target.path, lines.slice(index, end).map((l) => l.text).join(''));
      } catch (err) {
        this.dropAfterError(end - index, err);
        index = end;
        continue;
      }
      target.bytes += bytes;
      this.counters.lines.inc({}, end - index);
      index = end;
    }
  }

  /** The file a line goes into: the open one, or the next of its day when the day changed or the line would not fit. */
  private async fileFor(line: QueuedLine): Promise<OpenFile> {
    const open = this.file;
    if (open && open.day === line.day && (open.bytes === 0 || open.bytes + line.bytes <= this.maxFileBytes)) return open;
    let next: OpenFile;
    if (open && open.day === line.day) {
      next = { day: line.day, seq: open.seq + 1, path: path.join(this.dir, captureFileName(line.day, open.seq + 1)), bytes: 0 };
    } else {
      // A new day (or a restart, or a folder that came back): continue the day's newest file if the line fits.
      if (open) void this.deleteExpired();
      const seqs = (await fs.readdir(this.dir))
        .map((name) => CAPTURE_FILE.exec(name))
        .filter((m): m is RegExpExecArray => m !== null && m[1] === line.day)
        .map((m) => Number(m[2]));
      const seq = seqs.length > 0 ? Math.max(...seqs) : 0;
      const file = path.join(this.dir, captureFileName(line.day, seq));
      const bytes = await fs.stat(file).then(
        (s) => s.size,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return 0;
          throw err;
        },
      );
      next =
        bytes > 0 && bytes + line.bytes > this.maxFileBytes
          ? { day: line.day, seq: seq + 1, path: path.join(this.dir, captureFileName(line.day, seq + 1)), bytes: 0 }
          : { day: line.day, seq, path: file, bytes };
    }
    this.file = next;
    return next;
  }

  private dropAfterError(lines: number, err: unknown): void {
    this.counters.dropped.inc({ reason: 'write_error' }, lines);
    // Look again next time: the folder may have been replaced or come back.
    this.file = undefined;
    this.failed('write', err);
  }

  /** Counts a failure and logs it, at most once a minute (with how many were not logged). */
  private failed(operation: string, err: unknown): void {
    this.counters.errors.inc({ operation });
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_EVERY_MS) {
      this.unloggedErrors++;
      return;
    }
    const more = this.unloggedErrors > 0 ? ` (${this.unloggedErrors} more since the last report)` : '';
    this.lastErrorLog = now;
    this.unloggedErrors = 0;
    log.error(`capture ${operation} failed${more}; requests are answered regardless`, {
      dir: this.dir,
      error: (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.message : String(err)),
    });
  }
}
