import { isDigest, type Digest } from '../digest.ts';
import { LayerInputError } from './layer-entry.ts';

/** What a build needs from an image config that came from outside (an archive, a registry). */
export interface ParsedImageConfig {
  architecture?: string;
  os?: string;
  /** Read leniently: only the platform check reads it, and a config without a usable one states none. */
  variant?: string;
  created?: string;
  /** The run config (`config`), `{}` when absent. */
  config: unknown;
  diffIds: Digest[];
}

/**
 * Check and read a foreign image config (already parsed JSON). Throws LayerInputError saying
 * what is wrong, for the caller to wrap in its own error type.
 */
export function parseImageConfig(value: unknown, what: string): ParsedImageConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new LayerInputError(`${what} is not a JSON object`);
  const v = value as Record<string, unknown>;
  const rootfs = v.rootfs as Record<string, unknown> | null | undefined;
  if (rootfs === null || typeof rootfs !== 'object' || !Array.isArray(rootfs.diff_ids)) throw new LayerInputError(`${what} has no rootfs.diff_ids`);
  if (rootfs.type !== 'layers') throw new LayerInputError(`${what}: rootfs.type is not 'layers'`);
  const diffIds = rootfs.diff_ids.map((d, i) => {
    if (typeof d !== 'string' || !isDigest(d)) throw new LayerInputError(`${what}: diff_id ${i + 1} is not a sha256 digest`);
    return d;
  });
  const str = (key: string): string | undefined => {
    const field = v[key];
    if (field !== undefined && field !== null && typeof field !== 'string') throw new LayerInputError(`${what}: ${key} is not a string`);
    return typeof field === 'string' ? field : undefined;
  };
  const runConfig = v.config;
  if (runConfig !== undefined && runConfig !== null && (typeof runConfig !== 'object' || Array.isArray(runConfig))) {
    throw new LayerInputError(`${what}: config is not an object`);
  }
  const variant = typeof v.variant === 'string' && v.variant !== '' ? v.variant : undefined;
  return { architecture: str('architecture'), os: str('os'), ...(variant ? { variant } : {}), created: str('created'), config: runConfig ?? {}, diffIds };
}
