/**
 * A build planned into steps, once, from its resolved spec: the real build (run-build.ts) and
 * the dry run (build-plan.ts) both walk this plan, so they cannot tell two stories. Each step
 * carries `inputs`: everything its layers are made from (the build reads them from there, not
 * from the spec), and its cache key is a hash of that object, field by field. A spec field
 * that changes a layer is added to a step's inputs here and is in its key from then on.
 */
import type { Digest } from '../digest.ts';
import { cacheKey } from './result-cache.ts';
import type { ImageRunConfig } from '../image/run-config.ts';
import type { OutputCompression, OutputFormat } from '../image/sinks/output-format.ts';
import type { ContentEntry } from '../image/sources/content-entry.ts';
import { defaultVariant } from './build-platform.ts';
import { entryInput, entryIsFor, platformOfArchitecture } from './platforms.ts';
import { epochSeconds, needsVm, type FromImage, type ResolvedSpec } from './spec.ts';

/** Docker refuses images deeper than this, base included. */
const MAX_IMAGE_LAYERS = 125;

/** Whose build it is and under which device setting: part of what some steps depend on. */
export interface BuildScope {
  tenant: string;
  allowDevices: boolean;
}

/** The base image step: where `fromImage` comes from and which image of it is taken. */
export interface BaseStep {
  from: FromImage;
  /** One image for the build's platform, with room for this build's layer on top. */
  image: { name?: string; tag?: string; architecture: string; maxLayers: number };
}

/** What every layer the build makes is made with: owners, file times, the device rule, the platform. */
interface LayerEnvironment {
  uid: number;
  gid: number;
  /** Every entry's mtime: `created`, in epoch seconds. */
  mtime: number;
  allowDevices: boolean;
  architecture: string;
}

interface ContentsInputs extends LayerEnvironment {
  contents: ContentEntry[];
  /** Not split: the one layer's history line. */
  createdBy?: string;
  /** Split (`layering`): how many layers the entries may take; undefined while the base's layer count is unknown. */
  maxLayers?: number;
}

interface VmInputs extends LayerEnvironment {
  /** Unpacked into the upper dir before the scripts run. */
  contents: ContentEntry[];
  runAsRoot?: string;
  extraCommands?: string;
  shadowSetup: boolean;
  diskSize: number;
  memorySize: number;
  /**
   * The tenant that ran the scripts. What a script makes (random bytes, host keys, the time) is
   * not a function of these inputs: only the tenant that ran it gets its layer again.
   */
  ranBy: string;
  createdBy: string;
}

/** The spec's contents into one layer, or (`split`) into up to `inputs.maxLayers` layers. */
export interface ContentsStep {
  name: 'contents';
  /** The spec's contents entries it reads, by index. */
  entries: number[];
  split: boolean;
  /** Why it cannot be built (a layer budget without room): the build fails before looking anything up. */
  problem?: string;
  inputs: ContentsInputs;
}

/** The scripts in a VM over the layers below (the base's and this build's own), as one layer. */
export interface VmStep {
  name: 'vm';
  entries: number[];
  inputs: VmInputs;
  /** Bounds the work, not the result: not an input. */
  timeoutSeconds: number;
}

export type LayerStep = ContentsStep | VmStep;

export interface BuildSteps {
  base?: BaseStep;
  /** The steps making this build's own layers, bottom first, over a base of `baseLayers` layers (undefined: not known yet). */
  layersOver(baseLayers: number | undefined): LayerStep[];
  /** The image config's own fields (history comes from the layers). */
  image: { architecture: string; variant?: string; os: 'linux'; created: string; config?: ImageRunConfig };
  archive: { format: OutputFormat; compression: OutputCompression };
}

export function planSteps(spec: ResolvedSpec, scope: BuildScope): BuildSteps {
  const from = spec.fromImage;
  const image = { name: spec.fromImageName, tag: spec.fromImageTag, architecture: spec.architecture, maxLayers: MAX_IMAGE_LAYERS - 1 };
  return {
    ...(from ? { base: { from, image } } : {}),
    layersOver: (baseLayers) => planLayerSteps(spec, scope, baseLayers),
    image: { architecture: spec.architecture, ...variantOf(spec), os: 'linux', created: spec.created, ...(spec.config ? { config: spec.config } : {}) },
    archive: { format: spec.format, compression: spec.compression },
  };
}

/** The variant the image config says: the spec's, else its architecture's default (a platform of a multi-platform build gets its own). */
function variantOf(spec: ResolvedSpec): { variant?: string } {
  const variant = spec.variant ?? defaultVariant(spec.architecture);
  return variant === undefined ? {} : { variant };
}

function planLayerSteps(spec: ResolvedSpec, scope: BuildScope, baseLayers: number | undefined): LayerStep[] {
  const env: LayerEnvironment = { uid: spec.uid, gid: spec.gid, mtime: epochSeconds(spec.created), allowDevices: scope.allowDevices, architecture: spec.architecture };
  // The entries of this build's platform (every entry, unless some name another platform).
  const platform = platformOfArchitecture(spec.architecture);
  const all = spec.contents.flatMap((entry, i) => (entryIsFor(entry, platform) ? [i] : []));
  const inputsOf = (entries: number[]) => entries.map((i) => entryInput(spec.contents[i] as ContentEntry));
  const contents = inputsOf(all);
  const scripts = needsVm(spec);
  const vmStep = (entries: number[], createdBy: string): VmStep => ({
    name: 'vm',
    entries,
    inputs: {
      ...env,
      contents: inputsOf(entries),
      runAsRoot: spec.runAsRoot,
      extraCommands: spec.extraCommands,
      shadowSetup: spec.shadowSetup,
      diskSize: spec.diskSize,
      memorySize: spec.memorySize,
      ranBy: scope.tenant,
      createdBy,
    },
    timeoutSeconds: spec.timeout,
  });
  const oneLayer = (createdBy: string): ContentsStep => ({ name: 'contents', entries: all, split: false, inputs: { ...env, contents, createdBy } });

  if (!spec.layering) return [scripts ? vmStep(all, 'baler: contents, runAsRoot, extraCommands') : oneLayer('baler: contents')];
  // One layer per contents entry where the budget allows (base and script layers count); the VM step's changes on top.
  const steps: LayerStep[] = [];
  if (contents.length > 0) {
    const maxLayers = baseLayers === undefined ? undefined : spec.layering.maxLayers - baseLayers - (scripts ? 1 : 0);
    const problem = maxLayers !== undefined && maxLayers < 1 ? `layering.maxLayers ${spec.layering.maxLayers} leaves no room: the base has ${baseLayers} layers` : undefined;
    steps.push({ name: 'contents', entries: all, split: true, ...(problem ? { problem } : {}), inputs: { ...env, contents, maxLayers } });
  }
  if (scripts) steps.push(vmStep([], 'baler: runAsRoot, extraCommands'));
  // An image gets at least one layer of its own.
  if (steps.length === 0) steps.push(oneLayer('baler: empty'));
  return steps;
}

/**
 * The layer-cache key of a step: a hash of its inputs, every field of them, and for a VM step
 * of the layers it runs over (`lowers`, bottom first). Undefined while any of them is unknown.
 */
export function layerStepKey(step: LayerStep, lowers: Digest[] | undefined): string | undefined {
  if (step.name === 'vm') return lowers ? cacheKey('layer', { step: step.name, inputs: step.inputs, lowers }) : undefined;
  if (step.split && step.inputs.maxLayers === undefined) return undefined;
  return cacheKey('layer', { step: step.name, inputs: step.inputs });
}

/**
 * The import-cache key of an uploaded base archive: verified and stored once per key, for
 * every tenant. Importing is baler's own pure function of the archive, which the submitter
 * must own (so holds every byte of already): a hit hands over nothing it could not import.
 */
export function importCacheKey(step: BaseStep & { from: { blob: Digest } }): string {
  return cacheKey('import', { from: step.from, image: step.image });
}
