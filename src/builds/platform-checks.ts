/**
 * What the schema cannot say about a spec's `architecture` and `variant`: a variant must be one
 * of its architecture's, and scripts need a VM of the build's architecture (any other
 * architecture only labels an image built from contents, as before VMs had platforms).
 */
import type { FieldError } from '../problem.ts';
import type { VmPlatform } from '../vm/platform.ts';
import { VM_PLATFORMS } from '../vm/platforms/index.ts';
import { variantsOf, vmPlatformName } from './build-platform.ts';
import { needsVm, type BuildSpec } from './spec.ts';

/**
 * One error per field at fault; none when the spec's platforms can be built (`known`: the VM
 * platforms baler has). A multi-platform spec's scripts run on each of its `platforms`.
 */
export function architectureViolations(
  spec: Pick<BuildSpec, 'architecture' | 'variant' | 'runAsRoot' | 'extraCommands'> & { platforms?: readonly string[] },
  known: readonly VmPlatform[] = VM_PLATFORMS,
): FieldError[] {
  const architecture = spec.architecture ?? 'amd64';
  const errors: FieldError[] = [];
  const variants = variantsOf(architecture);
  if (spec.variant !== undefined && !variants.includes(spec.variant)) {
    const has = variants.length > 0 ? `variant ${variants.join(' or ')}` : 'no variant';
    errors.push({ pointer: '/variant', message: `${architecture} images have ${has}, not '${spec.variant}'` });
  }
  const missing = (spec.platforms ?? [vmPlatformName(architecture)]).filter((platform) => !known.some((p) => p.name === platform));
  if (needsVm(spec) && missing.length > 0) {
    const pointer = spec.runAsRoot?.trim() ? '/runAsRoot' : '/extraCommands';
    errors.push({ pointer, message: `scripts run in a VM of the platform built; baler has no ${missing.join(' or ')} VM (it has ${known.map((p) => p.name).join(', ')})` });
  }
  return errors;
}
