// The Temporal runtime's log (worker lifecycle, the workflow bundler's webpack output) through our logger:
// warnings and errors by default, everything at SUPERTINY_LOG_LEVEL=debug, so a first run shows progress
// bars and results rather than library chatter.
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import { createLogger, logLevel } from '../config/logger';

const log = createLogger('temporal');

// Expected in the two-queue layout: the GPU worker runs activities only.
const EXPECTED = [/No workflows registered, not polling for workflow tasks/];

function forward(entry: LogEntry): void {
  if (EXPECTED.some((re) => re.test(entry.message))) return;
  const fields = entry.meta && Object.keys(entry.meta).length > 0 ? (entry.meta as Record<string, unknown>) : undefined;
  if (entry.level === 'ERROR') log.error(entry.message, fields);
  else if (entry.level === 'WARN') log.warn(entry.message, fields);
  else log.debug(entry.message, fields);
}

/** Installs the runtime once per process (before any worker or connection), with our log routing. */
export function installTemporalRuntime(options: { shutdownSignals?: NodeJS.Signals[] } = {}): void {
  Runtime.install({
    logger: new DefaultLogger(logLevel() === 'debug' ? 'DEBUG' : 'WARN', forward),
    ...(options.shutdownSignals ? { shutdownSignals: options.shutdownSignals } : {}),
  });
}
