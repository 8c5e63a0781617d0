import type { Digest } from '../../digest.ts';

/**
 * One entry of a spec's `contents` (ContentEntry in openapi.yaml): what resolveContents reads
 * into a tree. `platform` (os/architecture) limits it to that platform's image; the planner
 * drops it before the entry becomes a step's input.
 */
export type ContentEntry = (
  | { tar: Digest; to?: string; preserveOwners?: boolean }
  | { file: Digest; to: string; mode?: string }
  | { text: string; to: string; mode?: string }
  | { dir: string; mode?: string }
  | { symlink: string; target: string }
) & { platform?: string };
