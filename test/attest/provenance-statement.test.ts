/** The SLSA provenance statement: its shape, its digests, and byte-identical serialisation. */
import { describe, expect, it } from 'vitest';
import { digestOf, hexOf } from '../../src/digest.ts';
import { provenanceStatement, statementPayload } from '../../src/attest/provenance/statement.ts';
import { BASE_MANIFEST, CONTENTS_BLOB, IMAGE_MANIFEST, provenanceInput } from './provenance-fixture.ts';

describe('provenanceStatement', () => {
  it('is an in-toto v1 statement with a SLSA v1 predicate about the image manifest', () => {
    const input = provenanceInput();
    const statement = provenanceStatement(input);
    expect(statement._type).toBe('https://in-toto.io/Statement/v1');
    expect(statement.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(statement.subject).toEqual([{ name: 'app:1.0', digest: { sha256: hexOf(IMAGE_MANIFEST) } }]);
    const { buildDefinition, runDetails } = statement.predicate;
    expect(buildDefinition.buildType).toBe('https://baler.dev/build-types/image/v1');
    expect(buildDefinition.externalParameters.spec).toEqual(input.spec);
    expect(buildDefinition.internalParameters).toEqual({
      balerVersion: '0.1.0',
      cacheVersion: 5,
      vmAssets: { 'linux/amd64': { kernel: { sha256: hexOf(input.vmAssets[0]!.kernel) }, initramfs: { sha256: hexOf(input.vmAssets[0]!.initramfs) } } },
    });
    expect(buildDefinition.resolvedDependencies).toEqual([
      { name: '/fromImage/ref', uri: `pkg:docker/registry.example/debian@${BASE_MANIFEST}`, digest: { sha256: hexOf(BASE_MANIFEST) } },
      { name: '/contents/0/tar', digest: { sha256: hexOf(CONTENTS_BLOB) } },
    ]);
    expect(runDetails.builder).toEqual({ id: 'https://builds.example.com/baler', version: { baler: '0.1.0' } });
    expect(runDetails.metadata).toEqual({ invocationId: input.buildId, startedOn: input.startedOn, finishedOn: input.finishedOn });
    expect(runDetails.byproducts).toEqual([{ name: 'worker', content: Buffer.from('worker-host-1-1234').toString('base64'), mediaType: 'text/plain; charset=utf-8' }]);
  });

  it('has no vmAssets without a VM step, and names the original build of a cache hit', () => {
    const original = statementPayload(provenanceStatement(provenanceInput()));
    const originalDigest = digestOf(original);
    const statement = provenanceStatement(provenanceInput({ vmAssets: [], cachedFrom: { buildId: 'zyxwvutsrqponmlkjihgfedcba', provenance: originalDigest } }));
    expect(statement.predicate.buildDefinition.internalParameters).toEqual({ balerVersion: '0.1.0', cacheVersion: 5 });
    expect(statement.predicate.runDetails.byproducts.map((b) => b.name)).toEqual(['worker', 'cached-from/build', 'cached-from/provenance']);
    expect(statement.predicate.runDetails.byproducts[1]?.content).toBe(Buffer.from('zyxwvutsrqponmlkjihgfedcba').toString('base64'));
    expect(statement.predicate.runDetails.byproducts[2]).toEqual({ name: 'cached-from/provenance', digest: { sha256: hexOf(originalDigest) }, mediaType: 'application/vnd.in-toto+json' });
  });

  it('serialises to the same bytes whatever order its input was built in (sorted keys, no white space)', () => {
    const input = provenanceInput();
    const reordered = Object.fromEntries(Object.entries(input).reverse()) as typeof input;
    reordered.spec = Object.fromEntries(Object.entries(input.spec).reverse()) as typeof input.spec;
    const a = statementPayload(provenanceStatement(input));
    const b = statementPayload(provenanceStatement(reordered));
    expect(b.equals(a)).toBe(true);
    const text = a.toString('utf8');
    expect(text.startsWith('{"_type":"https://in-toto.io/Statement/v1","predicate":{"buildDefinition":{')).toBe(true);
    expect(text).not.toMatch(/\n| {2}/);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(provenanceStatement(input))));
  });
});
