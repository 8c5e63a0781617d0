import { resolveSpec } from '../../src/builds/spec.ts';
import { digestOf } from '../../src/digest.ts';
import type { ProvenanceInput } from '../../src/attest/provenance/statement.ts';

export const CONTENTS_BLOB = digestOf('contents tar');
export const BASE_MANIFEST = digestOf('base manifest');
export const IMAGE_MANIFEST = digestOf('image manifest');

/** A build's provenance input as a worker would give it: a registry base, one tar, one VM step. */
export function provenanceInput(overrides: Partial<ProvenanceInput> = {}): ProvenanceInput {
  return {
    subject: { name: 'app:1.0', digest: IMAGE_MANIFEST },
    buildId: 'abcdefghijklmnopqrstuvwxyz',
    spec: resolveSpec(
      { name: 'app', tag: '1.0', fromImage: { ref: 'registry.example/debian:12' }, contents: [{ tar: CONTENTS_BLOB, to: '/' }], runAsRoot: 'echo hi > /hi' },
      new Date('2026-12-03T18:00:00Z'),
    ),
    builderId: 'https://builds.example.com/baler',
    vmAssets: [{ platform: 'linux/amd64', kernel: digestOf('vmlinux'), initramfs: digestOf('initramfs') }],
    balerVersion: '0.1.0',
    cacheVersion: 5,
    resolvedDependencies: [
      { name: '/fromImage/ref', uri: `pkg:docker/registry.example/debian@${BASE_MANIFEST}`, digest: BASE_MANIFEST },
      { name: '/contents/0/tar', digest: CONTENTS_BLOB },
    ],
    startedOn: '2026-12-03T18:00:01.000Z',
    finishedOn: '2026-12-03T18:00:09.000Z',
    worker: 'worker-host-1-1234',
    ...overrides,
  };
}
