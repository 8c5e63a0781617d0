import { describe, expect, it } from 'vitest';
import { mergeRunConfig } from '../../src/image/run-config.ts';

describe('mergeRunConfig: the base config is inherited whole, the spec merged on top', () => {
  it('merges Env by variable name, base order kept, spec values winning', () => {
    expect(mergeRunConfig({ Env: ['PATH=/bin', 'A=1'] }, { Env: ['A=2', 'B=3'] }).Env).toEqual(['PATH=/bin', 'A=2', 'B=3']);
  });
  it('merges Labels, ExposedPorts and Volumes by key', () => {
    const merged = mergeRunConfig(
      { Labels: { a: '1', b: '1' }, ExposedPorts: { '80/tcp': {} }, Volumes: { '/data': {} } },
      { Labels: { b: '2' }, ExposedPorts: { '443/tcp': {} }, Volumes: { '/cache': {} } },
    );
    expect(merged).toEqual({ Labels: { a: '1', b: '2' }, ExposedPorts: { '80/tcp': {}, '443/tcp': {} }, Volumes: { '/data': {}, '/cache': {} } });
  });
  it('replaces scalars and Cmd, and keeps what the spec does not set', () => {
    expect(mergeRunConfig({ User: 'root', WorkingDir: '/', Cmd: ['a'], StopSignal: 'SIGTERM' }, { User: 'app', Cmd: ['b'] })).toEqual({
      User: 'app',
      WorkingDir: '/',
      Cmd: ['b'],
      StopSignal: 'SIGTERM',
    });
  });
  it('clears an inherited Cmd when the spec sets Entrypoint alone, as Docker does', () => {
    expect(mergeRunConfig({ Cmd: ['sh'], Entrypoint: ['old'] }, { Entrypoint: ['new'] })).toEqual({ Entrypoint: ['new'] });
    expect(mergeRunConfig({ Cmd: ['sh'] }, { Entrypoint: ['new'], Cmd: ['x'] })).toEqual({ Entrypoint: ['new'], Cmd: ['x'] });
  });
  it('keeps fields of the base it does not know', () => {
    const base = { Healthcheck: { Test: ['CMD', 'true'] }, Cmd: ['a'] } as unknown as Parameters<typeof mergeRunConfig>[0];
    expect(mergeRunConfig(base, {})).toEqual({ Healthcheck: { Test: ['CMD', 'true'] }, Cmd: ['a'] });
    expect(mergeRunConfig(undefined, undefined)).toEqual({});
  });
});
