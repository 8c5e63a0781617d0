/**
 * `npm start`: the whole service on one machine. The API in this process, one worker process,
 * the store (the filesystem under DATA_DIR, or an S3 bucket: BALER_STORE), and Redis at
 * REDIS_URL or, when that is unset, a private redis-server that lives and dies with this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApi } from './api/app.ts';
import { isLoopback } from './auth/loopback.ts';
import { TokenFile } from './auth/token-file.ts';
import { BuildLogs } from './builds/build-log.ts';
import { BuildRepository } from './builds/build-repository.ts';
import { BuildEventStream } from './events/event-stream.ts';
import { loadConfig } from './config.ts';
import { loadSigningKey, type SigningKey } from './attest/signing/signing-key.ts';
import { createLogger } from './log.ts';
import { createBuildQueue } from './queue/build-queue.ts';
import { createPushQueue } from './queue/push-queue.ts';
import { loadRegistries } from './registry/registries.ts';
import { connectRedis } from './redis.ts';
import { startPrivateRedis, type PrivateRedis } from './redis-server.ts';
import { openBlobStore } from './store/open-blob-store.ts';

const WORKER_ENTRY = fileURLToPath(new URL('../workers/build-worker.ts', import.meta.url));

const config = loadConfig();
const logger = createLogger('baler', config.logLevel);

// Without tokens anyone who reaches the port can do anything: only on loopback, unless the
// operator says so explicitly.
const tokens = config.tokensFile ? await TokenFile.load(config.tokensFile) : null;
if (!tokens) {
  if (!isLoopback(config.host) && !config.authNone) {
    logger.fatal({ host: config.host }, 'no BALER_TOKENS_FILE: refusing to listen beyond loopback without authentication (set BALER_AUTH=none to do it anyway)');
    process.exit(2);
  }
  logger.warn({ host: config.host }, 'no BALER_TOKENS_FILE: the API has no authentication');
}

// A key that cannot sign stops the service here, not each build later.
let signingKey: SigningKey | null = null;
if (config.signingKeyFile) {
  try {
    signingKey = await loadSigningKey(config.signingKeyFile);
  } catch (err) {
    logger.fatal({ err }, (err as Error).message);
    process.exit(2);
  }
  logger.info({ keyId: signingKey.keyId, algorithm: signingKey.algorithm }, 'attestations and pushed images are signed');
} else {
  logger.info('no BALER_SIGNING_KEY_FILE: attestations are unsigned');
}

let privateRedis: PrivateRedis | undefined;
let redisUrl = config.redisUrl;
if (!redisUrl) {
  privateRedis = await startPrivateRedis(join(config.dataDir, 'redis'), logger);
  redisUrl = privateRedis.url;
}

const redis = connectRedis(redisUrl);
const store = await openBlobStore(config, { redis });
const events = new BuildEventStream(redis, config.retentionSeconds);
const queue = createBuildQueue(connectRedis(redisUrl, { forWorker: true }));
const pushQueue = createPushQueue(connectRedis(redisUrl, { forWorker: true }));
const api = await createApi({
  config,
  logger,
  redis,
  store,
  builds: new BuildRepository(redis, events),
  logs: new BuildLogs(redis, config.maxLogBytes, events),
  events,
  queue,
  tokens,
  pushQueue,
  registries: loadRegistries(config.registriesFile, config.registryLimits),
  signingKey,
});

let stopping = false;
// One local worker (BALER_LOCAL_WORKERS=0: none, for an API-only process); more run anywhere
// with `node --import tsx workers/build-worker.ts`.
let worker: ChildProcess | undefined;
const startWorker = () => {
  worker = spawn(process.execPath, ['--import', 'tsx', WORKER_ENTRY], {
    env: { ...process.env, REDIS_URL: redisUrl, DATA_DIR: config.dataDir },
    // The IPC channel lets the worker notice when this process dies, even by SIGKILL.
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  worker.once('exit', (code, signal) => {
    if (stopping) return;
    // Its running build is recovered from the queue; bring a new worker up for it.
    logger.error({ code, signal }, 'worker exited; restarting it');
    setTimeout(startWorker, 1000).unref();
  });
};
if (config.localWorkers > 0) startWorker();

await api.listen({ port: config.port, host: config.host });
logger.info({ port: config.port, host: config.host, dataDir: config.dataDir, store: config.store }, 'baler is up');

const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  await api.close();
  if (worker && worker.exitCode === null) {
    const exited = new Promise((resolve) => worker?.once('exit', resolve));
    worker.kill('SIGTERM');
    await exited;
  }
  await queue.close();
  await pushQueue.close();
  redis.disconnect();
  await privateRedis?.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
