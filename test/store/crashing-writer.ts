/**
 * A writer that dies mid-upload, for the store contract: opens the store the environment
 * names (as the service does), puts CRASH_MIB MiB of bytes that never end, and says
 * `sent` on stdout once they are all handed to the store. The test kills it with SIGKILL.
 */
import { Readable } from 'node:stream';
import { loadConfig } from '../../src/config.ts';
import { openBlobStore } from '../../src/store/open-blob-store.ts';

const store = await openBlobStore(loadConfig());
const total = Number(process.env.CRASH_MIB ?? 20) * 1024 * 1024;
let sent = 0;
const source = new Readable({
  read() {
    if (sent >= total) {
      if (sent === total) process.stdout.write('sent\n');
      sent++;
      return; // never ends
    }
    const chunk = Buffer.alloc(1024 * 1024, sent / (1024 * 1024));
    sent += chunk.length;
    this.push(chunk);
  },
});
await store.put(source);
