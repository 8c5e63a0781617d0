/**
 * A script flooding its output while Redis is slow: the writer holds no more than the log can
 * keep (its cap), keeps the order, and the log says it was truncated.
 */
import { expect, it } from 'vitest';
import { BuildLogWriter } from '../../src/builds/build-log-writer.ts';

it('holds at most the log cap however much comes while an append is slow, in order', async () => {
  const appended: string[] = [];
  let release: () => void = () => {};
  let gate = new Promise<void>((resolve) => (release = resolve));
  const logs = {
    maxBytes: 1000,
    append: async (_id: string, text: string) => {
      await gate;
      appended.push(text);
    },
  };
  const writer = new BuildLogWriter(logs, 'b', (err) => {
    throw err;
  });
  writer.write('first\n');
  // 64 MiB arrive while the first append waits on Redis.
  const chunk = 'x'.repeat(64 * 1024);
  for (let i = 0; i < 1024; i++) writer.write(chunk);
  release();
  await writer.flush();
  const passed = appended.join('');
  expect(appended[0]).toBe('first\n');
  // What went to the log: the cap and one byte more (over the cap the log says it truncated).
  expect(passed.length).toBe(1001);
  expect(passed).toBe(`first\n${'x'.repeat(995)}`);
  // Nothing more is held or sent once the cap is reached.
  gate = Promise.resolve();
  writer.write('later\n');
  await writer.flush();
  expect(appended.join('')).toBe(passed);
});
