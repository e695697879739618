// A pipeline's teacher spend, bounded by teacher.maxSpendUsd. The running total lives in one append-only
// file per pipeline in the data folder (spend/<sha256 of the pipeline's workflow id>.jsonl), because it
// must outlive a worker crash and an activity retry, and be shared by every activity of the pipeline
// (many labelling batches, the judge, evaluation's teacher calls), on any worker that shares the folder.
// The request cache could not hold it (an answer there serves every pipeline, and summing it would mean
// reading every entry) and the workflow could not (two batches pay at once, and a crash loses what an
// attempt paid since its last heartbeat).
//
// Each paid request appends a reservation with its estimated cost before it is sent, then what it paid.
// Whether a reservation fits is decided from the lines before it, the same way by every reader, so
// concurrent requests of any number of processes never reserve past the budget together: appends to one
// file (O_APPEND, one write of a short line) are ordered, which a local file system guarantees (NFS does not).
import { Context } from '@temporalio/activity';
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { FailureType, SupertinyError } from '../../config/failure-types';
import { DEFAULT_MAX_SPEND_USD } from '../../config/pipeline';
import { pipelineWorkflowIdOf } from '../../config/stages';
import type { SpendGuard, SpendReservation } from '../../runtime/teacher/chat-client';

/** What the ledger says at one point: paid, and reserved by requests in flight (or lost to a crash). */
export interface SpendSnapshot {
  spentUsd: number;
  reservedUsd: number;
  /** Requests whose answer was paid (cache hits are never here). */
  paidRequests: number;
}

export interface TeacherBudgetDetails extends SpendSnapshot {
  budgetUsd: number;
  /** The estimate of the request that did not fit. */
  estimateUsd: number;
}

const usd = (x: number) => `$${x.toFixed(4)}`;

/** The next teacher request would pass the pipeline's budget: nothing more is sent. */
export class TeacherBudgetError extends SupertinyError {
  readonly failureType = FailureType.TeacherBudgetReached;
  constructor(readonly spend: TeacherBudgetDetails) {
    super(
      `the pipeline's teacher budget is reached: spent ${usd(spend.spentUsd)} of teacher.maxSpendUsd ${usd(spend.budgetUsd)}` +
        `${spend.reservedUsd > 0 ? ` (${usd(spend.reservedUsd)} more reserved by requests in flight or lost to a crash)` : ''}` +
        `, and the next request (estimated at ${usd(spend.estimateUsd)}) would pass it. Answers already paid are in the request cache` +
        ' and cost nothing again: raise teacher.maxSpendUsd and run the pipeline again to go on',
    );
  }
  override failureDetails(): unknown[] {
    return [this.spend];
  }
}

type LedgerLine =
  | { kind: 'reserve'; id: string; key?: string; estimateUsd: number; budgetUsd: number; at: string }
  | { kind: 'paid'; id: string; usd: number }
  | { kind: 'unbilled'; id: string };

/** Float noise of summed costs must not refuse a request that fits exactly. */
const EPSILON_USD = 1e-9;
/** Lines are short: a chunk always holds many. */
const READ_CHUNK = 16 << 20;

export class SpendLedger {
  private offset = 0;
  private paidUsd = 0;
  private paidRequests = 0;
  private reservedUsd = 0;
  /** Accepted reservations not settled yet, and those of each request key (the same request's resends). */
  private readonly open = new Map<string, { usd: number; key?: string }>();
  private readonly openByKey = new Map<string, Set<string>>();
  /** Reservations of this process waiting for their decision, and the decisions once read. */
  private readonly waiting = new Set<string>();
  private readonly decisions = new Map<string, { accepted: boolean } & SpendSnapshot>();
  private folderMade = false;

  constructor(readonly file: string) {}

  /** A guard for a chat client: reservations against `budgetUsd`. */
  guard(budgetUsd: number): SpendGuard {
    return { reserve: (request) => this.reserve(request.estimateUsd, budgetUsd, request.requestKey) };
  }

  /**
   * Reserves `estimateUsd` before a request is sent, or throws TeacherBudgetError when the spend so far plus
   * the reservations in flight plus this estimate would pass `budgetUsd`. `key` marks resends of one request
   * (the same idempotency key): once one of them is paid, the others are not counted again.
   */
  async reserve(estimateUsd: number, budgetUsd: number, key?: string): Promise<SpendReservation> {
    const id = randomUUID();
    this.waiting.add(id);
    try {
      this.append({ kind: 'reserve', id, ...(key ? { key } : {}), estimateUsd, budgetUsd, at: new Date().toISOString() });
      // Read after our append: our line and every line before it are whole.
      this.readNewLines();
    } finally {
      this.waiting.delete(id);
    }
    const decision = this.decisions.get(id);
    this.decisions.delete(id);
    if (!decision) throw new Error(`spend ledger ${this.file}: the reservation just written was not read back`);
    const { accepted, ...spent } = decision;
    if (!accepted) throw new TeacherBudgetError({ ...spent, budgetUsd, estimateUsd });
    return {
      paid: async (paidUsd) => this.append({ kind: 'paid', id, usd: paidUsd }),
      unbilled: async () => this.append({ kind: 'unbilled', id }),
    };
  }

  /** Spent and reserved so far, every process's lines included. */
  async snapshot(): Promise<SpendSnapshot> {
    this.readNewLines();
    return { spentUsd: this.paidUsd, reservedUsd: this.reservedUsd, paidRequests: this.paidRequests };
  }

  // Synchronous, like the request cache's writes: a short local append or read, done before anything else
  // runs, so one process never reads the file twice at once and its decisions follow the file's order.
  private append(line: LedgerLine): void {
    if (!this.folderMade) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      this.folderMade = true;
    }
    // The leading newline ends a line that a process killed mid-write left unfinished.
    appendFileSync(this.file, `\n${JSON.stringify(line)}\n`);
  }

  /** Folds the whole lines appended since the last read (a line being written by another process waits). */
  private readNewLines(): void {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const size = fstatSync(fd).size;
      while (this.offset < size) {
        const data = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - this.offset));
        const read = readSync(fd, data, 0, data.length, this.offset);
        const end = data.subarray(0, read).lastIndexOf(0x0a);
        if (read === 0 || end < 0) break;
        for (const line of data.subarray(0, end).toString('utf8').split('\n')) this.fold(line);
        this.offset += end + 1;
      }
    } finally {
      closeSync(fd);
    }
  }

  private fold(text: string): void {
    if (!text.trim()) return;
    let line: LedgerLine;
    try {
      line = JSON.parse(text) as LedgerLine;
    } catch {
      return; // a line torn by a crash mid-write (the newline before the next one ends it)
    }
    if (line.kind === 'reserve') {
      const accepted = this.paidUsd + this.reservedUsd + line.estimateUsd <= line.budgetUsd + EPSILON_USD;
      if (this.waiting.has(line.id)) this.decisions.set(line.id, { accepted, spentUsd: this.paidUsd, reservedUsd: this.reservedUsd, paidRequests: this.paidRequests });
      if (!accepted) return;
      this.open.set(line.id, { usd: line.estimateUsd, key: line.key });
      this.reservedUsd += line.estimateUsd;
      if (line.key) this.openByKey.set(line.key, (this.openByKey.get(line.key) ?? new Set()).add(line.id));
    } else if (line.kind === 'paid') {
      const reservation = this.close(line.id);
      this.paidUsd += line.usd;
      this.paidRequests++;
      // An earlier send of the same request that was never settled (its worker died) was this payment:
      // the endpoint replayed the answer for the idempotency key instead of billing it again.
      if (reservation?.key) for (const other of [...(this.openByKey.get(reservation.key) ?? [])]) this.close(other);
    } else if (line.kind === 'unbilled') {
      this.close(line.id);
    }
  }

  private close(id: string): { usd: number; key?: string } | undefined {
    const reservation = this.open.get(id);
    if (!reservation) return undefined;
    this.open.delete(id);
    // Sums of many estimates leave float dust: a ledger with nothing open reserves exactly 0.
    this.reservedUsd = this.open.size === 0 ? 0 : this.reservedUsd - reservation.usd;
    if (reservation.key) {
      const ids = this.openByKey.get(reservation.key);
      ids?.delete(id);
      if (ids?.size === 0) this.openByKey.delete(reservation.key);
    }
    return reservation;
  }
}

/** The ledger file of a pipeline, named by a hash of its workflow id (ids may hold any character). */
export function spendLedgerFile(dataDir: string, pipelineWorkflowId: string): string {
  return path.join(dataDir, 'spend', `${createHash('sha256').update(pipelineWorkflowId).digest('hex')}.jsonl`);
}

/** Ledgers this worker read recently: each keeps its place in the file, so it reads only what is new. */
const recent = new Map<string, SpendLedger>();
const RECENT_LEDGERS = 16;

/** The ledger of the pipeline that the activity with `info` belongs to (its stages' activities share it). */
export function pipelineSpendLedger(dataDir: string, info: { workflowExecution?: { workflowId: string }; workflowType?: string; activityId: string }): SpendLedger {
  // An activity started on its own (no workflow) has a budget of its own.
  const pipeline = info.workflowExecution ? pipelineWorkflowIdOf(info.workflowExecution.workflowId, info.workflowType ?? '') : `activity:${info.activityId}`;
  const file = spendLedgerFile(dataDir, pipeline);
  const ledger = recent.get(file) ?? new SpendLedger(file);
  recent.delete(file);
  recent.set(file, ledger);
  if (recent.size > RECENT_LEDGERS) recent.delete(recent.keys().next().value!);
  return ledger;
}

/** The ledger of the pipeline that the running activity belongs to. */
export function currentPipelineSpend(dataDir: string): SpendLedger {
  return pipelineSpendLedger(dataDir, Context.current().info);
}

/** The config's teacher budget; a stage started before the field existed carries a config without it. */
export function teacherBudgetUsd(config: { teacher: { maxSpendUsd?: number } }): number {
  return config.teacher.maxSpendUsd ?? DEFAULT_MAX_SPEND_USD;
}
