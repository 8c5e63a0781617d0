import { totalmem } from 'node:os';
import { resolve } from 'node:path';
import { DEFAULT_SBOM_BUDGETS, SBOM_BUDGET_SETTINGS, type SbomBudgets } from './attest/sbom/sbom-budgets.ts';
import { VM_DEFAULTS } from './builds/spec.ts';
import { DEFAULT_LAYER_BUDGETS, LAYER_BUDGET_SETTINGS, type LayerBudgets } from './image/build-usage.ts';
import { ARCHIVE_BUDGET_SETTINGS, DEFAULT_ARCHIVE_BUDGETS, type ArchiveBudgets } from './image/sources/archive/budgets.ts';
import { DEFAULT_REGISTRY_LIMITS, REGISTRY_LIMIT_SETTINGS, type RegistryLimits } from './registry/registry-limits.ts';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** Where blobs live: `fs`, under DATA_DIR (one host), or `s3`, an S3-compatible object store (many hosts). */
  store: 'fs' | 's3';
  /** For `store: 's3'`; credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
  s3: {
    /** Unset: AWS itself. */
    endpoint: string | undefined;
    bucket: string;
    region: string;
  };
  /** Unset: `npm start` runs a private redis-server. */
  redisUrl: string | undefined;
  /** Largest blob upload accepted, in bytes. */
  maxUploadBytes: number;
  /** Largest JSON request body accepted, in bytes. */
  maxJsonBytes: number;
  /** BALER_ALLOW_DEVICES=1: keep device nodes outside /dev/ (contents, base layers, VM output) instead of failing the build (src/image/device-policy.ts). */
  allowDevices: boolean;
  /**
   * What importing a base image archive (`fromImage: {blob}`) may cost: members
   * (BALER_ARCHIVE_MAX_MEMBERS, 100000), JSON member bytes (BALER_ARCHIVE_MAX_JSON_BYTES,
   * 20 MiB) and objects, arrays and keys (BALER_ARCHIVE_MAX_JSON_NODES, 500000), images
   * (BALER_ARCHIVE_MAX_IMAGES, 1000), names (BALER_ARCHIVE_MAX_NAMES, 10000), error text
   * (BALER_MAX_ERROR_CHARS, 2000); over one, the build fails naming it.
   */
  archiveBudgets: ArchiveBudgets;
  workerConcurrency: number;
  /** The largest VM this worker host runs (MiB); builds needing more go to other hosts. */
  workerMaxVmMemoryMiB: number;
  /** Warm VMs each worker keeps booted for runAsRoot/extraCommands steps (BALER_VM_POOL; 0: every step boots its own VM). */
  vmPoolSize: number;
  /**
   * The platforms this worker runs VMs of (BALER_VM_PLATFORMS, comma-separated os/architecture
   * names); undefined: its host's own and every other whose QEMU is installed (vm/served-platforms.ts).
   */
  vmPlatforms: string[] | undefined;
  /** The largest `diskSize` a spec may ask for (MiB); over it, 400. A step takes up to ~3 × this on the worker's VM temp dir. */
  maxDiskSizeMiB: number;
  /** The largest `memorySize` a spec may ask for (MiB); over it, 400. */
  maxMemorySizeMiB: number;
  /** The largest `timeout` a spec may ask for (seconds); over it, 400. */
  maxVmTimeoutSeconds: number;
  /** Free space a worker keeps on its VM temp dir: a VM step that would eat into it waits. */
  vmDiskReserveMiB: number;
  /** Builds one tenant may have waiting in the queue; over it submissions get 429. */
  tenantMaxQueued: number;
  /** Builds of one tenant running at once; more wait in the queue. */
  tenantMaxRunning: number;
  /**
   * Bytes of stored blobs one tenant may be charged for: its uploads, and all its builds,
   * merges, pushes and downloads store (a blob shared by tenants counts for each, once).
   * Over it: 413 (a build fails with 413).
   */
  tenantMaxStoredBytes: number;
  /** The most a write reserves of its tenant's quota at once, ahead of its bytes (BALER_QUOTA_CHUNK_BYTES). */
  quotaChunkBytes: number;
  /** A reservation whose writer stops renewing it (it died) is dropped after this (BALER_QUOTA_RESERVATION_TTL_S). */
  quotaReservationTtlSeconds: number;
  /** Worker processes `npm start` runs beside the API (0: an API-only process). */
  localWorkers: number;
  /** Attempts per build when a worker fails for reasons other than the input (crash, I/O). */
  buildAttempts: number;
  /**
   * A worker holds a build's lock this long between renewals; a worker that dies loses it
   * after this, and its build is taken up again by another worker (BullMQ stalled jobs).
   */
  jobLockMs: number;
  /** How often workers look for builds whose worker died. */
  stalledCheckMs: number;
  /** Wall-clock limit of one build attempt, in seconds; over it the build fails `timed out`. */
  buildTimeoutSeconds: number;
  /** Heap limit of a build's sandbox thread (MiB): over it the build fails, the worker lives on. */
  buildHeapMiB: number;
  /** How long a stopping worker lets its running builds finish before handing them back. */
  shutdownGraceMs: number;
  /** How long finished builds (and their archives) are kept. */
  retentionSeconds: number;
  /** How long a blob no build needs is kept after it was last written. */
  gcGraceSeconds: number;
  /** How often a worker collects garbage (one worker at a time); 0 disables it. */
  gcIntervalSeconds: number;
  /** Largest build log kept, in bytes. */
  maxLogBytes: number;
  /**
   * What one build's tars and layers may hold (SECURITY.md, "Limits and their defaults"):
   * BALER_MAX_LAYER_ENTRIES (1,000,000 entries in one layer, directories it implies included),
   * BALER_MAX_BUILD_ENTRIES (400,000 in all the layer trees of a build, base layers included:
   * ~350 bytes of heap each, to fit BALER_BUILD_HEAP_MIB),
   * BALER_MAX_BUILD_LAYER_BYTES (32 GiB of data and xattrs in the layers a build writes),
   * BALER_MAX_TAR_EXTENSION_BYTES (64 MiB of PAX and GNU long-name headers in one tar),
   * BALER_MAX_PAX_RECORDS_PER_ENTRY (1000), BALER_MAX_GLOBAL_PAX_RECORDS (1000 in one tar),
   * BALER_MAX_XATTRS_PER_ENTRY (128) and BALER_MAX_XATTR_BYTES_PER_ENTRY (64 KiB), global
   * attributes included, BALER_MAX_SPARSE_SEGMENTS_PER_ENTRY (100,000 segments in one sparse
   * file's map). Over one, a build fails 422 naming the setting.
   */
  layerBudgets: LayerBudgets;
  /**
   * What reading an image's package databases for its SBOM may cost (BALER_SBOM_MAX_DATABASE_BYTES,
   * BALER_SBOM_MAX_PACKAGES, BALER_SBOM_MAX_FIELD_BYTES); over one, the image has no attestations
   * and says why (`attestationError`), its build still succeeds.
   */
  sbomBudgets: SbomBudgets;
  /** Registries allowed for pulls and pushes (JSON `{"host:port": {insecure, username, password}}`); unset: none. */
  registriesFile: string | undefined;
  /** What a registry may send (BALER_REGISTRY_MAX_*): documents, index entries, redirects, token answers. */
  registryLimits: RegistryLimits;
  /** Bearer tokens (`TENANT TOKEN` lines); unset: no authentication, loopback only. */
  tokensFile: string | undefined;
  /** `BALER_AUTH=none`: the operator's explicit consent to listen beyond loopback without tokens. */
  authNone: boolean;
  /** How old the store's walked size (`baler_store_bytes`) may get before a scrape walks it again. */
  storeScanSeconds: number;
  /** How often an idle events stream sends a heartbeat (an SSE comment, an empty NDJSON line). */
  eventsHeartbeatMs: number;
  /** Event streams one tenant may have open on one API process (429 over it). */
  tenantMaxEventStreams: number;
  /** Port of a build worker's own `/metrics` (BALER_WORKER_METRICS_PORT; 0: none). */
  workerMetricsPort: number;
  /** Address a build worker's `/metrics` listens on. */
  workerMetricsHost: string;
  /**
   * The builder id provenance names (BALER_BUILDER_ID, a URI): who ran the build. Verifiers
   * trust a provenance by it, so each deployment sets its own.
   */
  builderId: string;
  /** A PEM private key (ECDSA P-256 or Ed25519) attestations and pushed images are signed with (BALER_SIGNING_KEY_FILE); unset: unsigned. */
  signingKeyFile: string | undefined;
  logLevel: string;
  /** Tests only: a file the API appends its routes and responses to (see src/api/contract-log.ts). */
  contractLog: string | undefined;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got '${raw}'`);
  return value;
}

/** What provenance says built an image when the operator does not say (README, "Provenance"). */
const DEFAULT_BUILDER_ID = 'https://baler.dev/builders/unconfigured';

function uri(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  // URL.canParse is Node 19.9+; the scheme check keeps out relative references and bare words.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(raw) || !URL.canParse(raw)) throw new Error(`${name} must be a URI (e.g. https://builds.example.com/baler), got '${raw}'`);
  return raw;
}

/** A comma-separated setting's items; undefined when it is unset or empty. */
function list(env: NodeJS.ProcessEnv, name: string): string[] | undefined {
  const items = (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length > 0 ? items : undefined;
}

/** An operator's cap on a spec field: never below the field's default (a spec that leaves the field out must pass). */
function cap(env: NodeJS.ProcessEnv, name: string, fallback: number, fieldDefault: number, field: string): number {
  const value = int(env, name, fallback);
  if (value < fieldDefault) throw new Error(`${name} must be at least ${fieldDefault} (the default ${field}), got ${value}`);
  return value;
}

/** Integer settings, each from its environment variable (`settings`), else its default. */
function intSettings<K extends string>(env: NodeJS.ProcessEnv, defaults: Readonly<Record<K, number>>, settings: Readonly<Record<K, string>>): Record<K, number> {
  const values: Record<K, number> = { ...defaults };
  for (const key of Object.keys(values) as K[]) values[key] = int(env, settings[key], values[key]);
  return values;
}

function storeKind(env: NodeJS.ProcessEnv): Config['store'] {
  const kind = env.BALER_STORE || 'fs';
  if (kind !== 'fs' && kind !== 's3') throw new Error(`BALER_STORE must be 'fs' or 's3', got '${kind}'`);
  if (kind === 's3' && !env.BALER_S3_BUCKET) throw new Error('BALER_STORE=s3 needs BALER_S3_BUCKET');
  return kind;
}

/** The `BALER_REGISTRY_MAX_*` settings, each defaulting to DEFAULT_REGISTRY_LIMITS. */
export function loadRegistryLimits(env: NodeJS.ProcessEnv = process.env): RegistryLimits {
  return intSettings(env, DEFAULT_REGISTRY_LIMITS, REGISTRY_LIMIT_SETTINGS);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: int(env, 'PORT', 8080),
    host: env.HOST || '127.0.0.1',
    dataDir: resolve(env.DATA_DIR || './data'),
    store: storeKind(env),
    s3: {
      endpoint: env.BALER_S3_ENDPOINT || undefined,
      bucket: env.BALER_S3_BUCKET || '',
      region: env.BALER_S3_REGION || 'us-east-1',
    },
    redisUrl: env.REDIS_URL || undefined,
    maxUploadBytes: int(env, 'BALER_MAX_UPLOAD_BYTES', 8 * 1024 ** 3),
    maxJsonBytes: int(env, 'BALER_MAX_JSON_BYTES', 1024 ** 2),
    allowDevices: env.BALER_ALLOW_DEVICES === '1',
    archiveBudgets: intSettings(env, DEFAULT_ARCHIVE_BUDGETS, ARCHIVE_BUDGET_SETTINGS),
    workerConcurrency: int(env, 'BALER_WORKER_CONCURRENCY', 1),
    // Default: half the host's memory (QEMU and the worker need room beside the guest).
    workerMaxVmMemoryMiB: int(env, 'BALER_WORKER_MAX_VM_MEMORY_MIB', Math.floor(totalmem() / 1024 ** 2 / 2)),
    vmPoolSize: int(env, 'BALER_VM_POOL', 1),
    vmPlatforms: list(env, 'BALER_VM_PLATFORMS'),
    maxDiskSizeMiB: cap(env, 'BALER_MAX_DISK_SIZE_MIB', 4096, VM_DEFAULTS.diskSize, 'diskSize'),
    maxMemorySizeMiB: cap(env, 'BALER_MAX_MEMORY_SIZE_MIB', 4096, VM_DEFAULTS.memorySize, 'memorySize'),
    maxVmTimeoutSeconds: cap(env, 'BALER_MAX_VM_TIMEOUT_S', 3600, VM_DEFAULTS.timeout, 'timeout'),
    vmDiskReserveMiB: int(env, 'BALER_VM_DISK_RESERVE_MIB', 1024),
    tenantMaxQueued: int(env, 'BALER_TENANT_MAX_QUEUED', 1000),
    tenantMaxRunning: int(env, 'BALER_TENANT_MAX_RUNNING', 4),
    tenantMaxStoredBytes: int(env, 'BALER_TENANT_MAX_STORED_BYTES', 100 * 1024 ** 3),
    quotaChunkBytes: int(env, 'BALER_QUOTA_CHUNK_BYTES', 8 * 1024 ** 2),
    quotaReservationTtlSeconds: Math.max(1, int(env, 'BALER_QUOTA_RESERVATION_TTL_S', 60)),
    localWorkers: int(env, 'BALER_LOCAL_WORKERS', 1),
    buildAttempts: int(env, 'BALER_BUILD_ATTEMPTS', 3),
    maxLogBytes: int(env, 'BALER_MAX_LOG_BYTES', 1024 ** 2),
    layerBudgets: intSettings(env, DEFAULT_LAYER_BUDGETS, LAYER_BUDGET_SETTINGS),
    sbomBudgets: intSettings(env, DEFAULT_SBOM_BUDGETS, SBOM_BUDGET_SETTINGS),
    jobLockMs: int(env, 'BALER_JOB_LOCK_MS', 10_000),
    buildTimeoutSeconds: int(env, 'BALER_BUILD_TIMEOUT_S', 3600),
    buildHeapMiB: Math.max(16, int(env, 'BALER_BUILD_HEAP_MIB', 192)),
    retentionSeconds: int(env, 'BALER_RETENTION_S', 7 * 24 * 3600),
    gcGraceSeconds: int(env, 'BALER_GC_GRACE_S', 3600),
    gcIntervalSeconds: int(env, 'BALER_GC_INTERVAL_S', 3600),
    shutdownGraceMs: int(env, 'BALER_SHUTDOWN_GRACE_MS', 30_000),
    stalledCheckMs: int(env, 'BALER_STALLED_CHECK_MS', 5_000),
    tokensFile: env.BALER_TOKENS_FILE || undefined,
    registriesFile: env.BALER_REGISTRIES_FILE || undefined,
    registryLimits: loadRegistryLimits(env),
    authNone: env.BALER_AUTH === 'none',
    storeScanSeconds: int(env, 'BALER_METRICS_STORE_SCAN_S', 60),
    eventsHeartbeatMs: Math.max(100, int(env, 'BALER_EVENTS_HEARTBEAT_MS', 15_000)),
    tenantMaxEventStreams: int(env, 'BALER_TENANT_MAX_EVENT_STREAMS', 100),
    workerMetricsPort: int(env, 'BALER_WORKER_METRICS_PORT', 0),
    workerMetricsHost: env.BALER_WORKER_METRICS_HOST || '127.0.0.1',
    builderId: uri(env, 'BALER_BUILDER_ID', DEFAULT_BUILDER_ID),
    signingKeyFile: env.BALER_SIGNING_KEY_FILE || undefined,
    logLevel: env.LOG_LEVEL || 'info',
    contractLog: env.BALER_CONTRACT_LOG || undefined,
  };
}
