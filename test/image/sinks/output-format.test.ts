import { describe, expect, it } from 'vitest';
import { compressionRefusal, defaultCompression } from '../../../src/image/sinks/output-format.ts';

describe('the compression rule: what each format allows, its default first', () => {
  it('defaults to gzip for docker-archive and oci-archive, none for docker-archive-oci and rootfs', () => {
    expect(defaultCompression('docker-archive')).toBe('gzip');
    expect(defaultCompression('oci-archive')).toBe('gzip');
    expect(defaultCompression('docker-archive-oci')).toBe('none');
    expect(defaultCompression('rootfs')).toBe('none');
  });
  it('refuses zstd but for oci-archive, saying what the format allows', () => {
    expect(compressionRefusal('oci-archive', 'zstd')).toBeUndefined();
    expect(compressionRefusal('docker-archive-oci', 'zstd')).toBe("'zstd' is not available for docker-archive-oci (one of: none, gzip)");
    expect(compressionRefusal('rootfs', 'zstd')).toBe("'zstd' is not available for rootfs (one of: none, gzip)");
    expect(compressionRefusal('docker-archive', 'none')).toBeUndefined();
  });
});
