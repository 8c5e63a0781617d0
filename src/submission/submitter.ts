/** The log lines of a submission go to (a pino logger, as a request's is). */
interface SubmitterLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  child(bindings: Record<string, unknown>): SubmitterLog;
}

/**
 * Who submits: its tenant, and its log, which is narrowed to the build once the build has an
 * id (so the submitter's later lines, e.g. a request's last one, name the build too).
 */
export interface Submitter {
  tenant: string;
  log: SubmitterLog;
}
