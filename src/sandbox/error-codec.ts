/**
 * Errors across the sandbox boundary. A message between threads carries plain data, so an
 * error goes over as its class name, message, stack, own fields and cause, and comes back as
 * an instance of the same class when it is one of ours: the build processor decides by class
 * (`instanceof`) whether a failure is the input's fault, a full store or worth a retry, and a
 * VM step's errors in the main thread must mean the same to the build in the sandbox.
 */
import { BudgetExceededError } from '../budget.ts';
import { BaseImageError } from '../builds/base-image-error.ts';
import { VmStepError } from '../builds/vm-step.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { ArchiveImportError, DecompressionError } from '../image/sources/archive/errors.ts';
import { TarFormatError } from '../image/tar-index.ts';
import { RegistryError } from '../registry/registries.ts';
import { BlobNotFoundError, BlobTooLargeError, DigestMismatchError, QuotaExceededError, StoreFullError } from '../store/blob-store.ts';
import { VmError, VmHostBusyError, VmInputError, VmStartError } from '../vm/errors.ts';
import { VmCancelledError } from '../vm/vm-runner.ts';

/** An error as plain data (what structured clone keeps). */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** Own fields of the error (e.g. `kind`, `status`, `setting`, `limit`, `digest`). */
  fields: Record<string, unknown>;
  cause?: SerializedError;
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** The classes revived by name; anything else comes back as a plain Error with its name. */
const CLASSES: ReadonlyMap<string, ErrorClass> = new Map<string, ErrorClass>(
  [
    BudgetExceededError,
    BaseImageError,
    VmStepError,
    LayerInputError,
    ArchiveImportError,
    DecompressionError,
    TarFormatError,
    RegistryError,
    BlobNotFoundError,
    BlobTooLargeError,
    DigestMismatchError,
    StoreFullError,
    QuotaExceededError,
    VmError,
    VmInputError,
    VmStartError,
    VmHostBusyError,
    VmCancelledError,
  ].map((cls) => [cls.name, cls]),
);

/** How deep a chain of causes is kept. */
const MAX_CAUSES = 4;

export function serializeError(err: unknown, depth = 0): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(err)) {
    if (key === 'cause' || key === 'name' || key === 'message' || key === 'stack') continue;
    // Only what survives a message: plain values, not functions or class instances.
    if (value === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof value)) fields[key] = value;
  }
  const serialized: SerializedError = { name: err.name, message: err.message, stack: err.stack, fields };
  // A cause is kept for the logs; our classes keep a cause of their own (e.g. a TarFormatError).
  if (err.cause !== undefined && depth < MAX_CAUSES) serialized.cause = serializeError(err.cause, depth + 1);
  return serialized;
}

/** The error again: of its own class when that is one of ours (no constructor runs). */
export function reviveError(data: SerializedError): Error {
  const cls = CLASSES.get(data.name);
  const err = (cls ? Object.create(cls.prototype) : new Error(data.message)) as Error;
  Object.defineProperty(err, 'message', { value: data.message, writable: true, configurable: true });
  Object.defineProperty(err, 'name', { value: data.name, writable: true, configurable: true });
  if (data.stack !== undefined) Object.defineProperty(err, 'stack', { value: data.stack, writable: true, configurable: true });
  Object.assign(err, data.fields);
  if (data.cause) Object.defineProperty(err, 'cause', { value: reviveError(data.cause), writable: true, configurable: true });
  return err;
}
