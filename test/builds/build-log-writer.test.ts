/**
 * A script flooding its output while Redis is slow: the writer holds no more than the log can
 * keep (its cap), keeps the order, and the log says it was truncated.
 */
import { expect, it } from 'vitest';
import { BuildLogWriter, PARTIAL_LINE_MS } from '../../src/builds/build-log-writer.ts';

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

/** A log that records each append (each is one `log` event of the build). */
function recordingLog(maxBytes = 1000) {
  const appended: string[] = [];
  const logs = {
    maxBytes,
    append: async (_id: string, text: string) => {
      appended.push(text);
    },
  };
  const writer = new BuildLogWriter(logs, 'b', (err) => {
    throw err;
  });
  return { appended, writer };
}

it('appends by line, never a character at a time, as a serial port hands the output over', async () => {
  const { appended, writer } = recordingLog();
  for (const c of 'hello\nworld\n') writer.write(c);
  await new Promise((resolve) => setTimeout(resolve, 20));
  for (const c of 'and more') writer.write(c);
  writer.write(' of it\nthe last line\n');
  await writer.flush();
  // Lines that come together may share an append; none is cut.
  expect(appended).toEqual(['hello\n', 'world\n', 'and more of it\nthe last line\n']);
});

it('appends the start of a line that does not end within PARTIAL_LINE_MS, and the rest on flush', async () => {
  const { appended, writer } = recordingLog();
  for (const c of 'Continue? [y/N] ') writer.write(c);
  expect(appended).toEqual([]);
  await new Promise((resolve) => setTimeout(resolve, PARTIAL_LINE_MS + 50));
  expect(appended).toEqual(['Continue? [y/N] ']);
  writer.write('y\nno newline at the end');
  await writer.flush();
  expect(appended).toEqual(['Continue? [y/N] ', 'y\n', 'no newline at the end']);
});
