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

/** One error per field at fault; none when the spec's platform can be built (`known`: the VM platforms baler has). */
export function architectureViolations(spec: Pick<BuildSpec, 'architecture' | 'variant' | 'runAsRoot' | 'extraCommands'>, known: readonly VmPlatform[] = VM_PLATFORMS): FieldError[] {
  const architecture = spec.architecture ?? 'amd64';
  const errors: FieldError[] = [];
  const variants = variantsOf(architecture);
  if (spec.variant !== undefined && !variants.includes(spec.variant)) {
    const has = variants.length > 0 ? `variant ${variants.join(' or ')}` : 'no variant';
    errors.push({ pointer: '/variant', message: `${architecture} images have ${has}, not '${spec.variant}'` });
  }
  const vm = vmPlatformName(architecture);
  if (needsVm(spec) && !known.some((p) => p.name === vm)) {
    const pointer = spec.runAsRoot?.trim() ? '/runAsRoot' : '/extraCommands';
    errors.push({ pointer, message: `scripts run in a VM of the build's architecture; baler has no ${architecture} VM (it has ${known.map((p) => p.architecture).join(', ')})` });
  }
  return errors;
}
