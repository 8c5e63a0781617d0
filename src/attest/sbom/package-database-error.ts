import { LayerInputError } from '../../image/layer-entry.ts';

/**
 * A package database in an image that is not in its format: the image's fault (a 422, as
 * LayerInputError is). Its name stays `LayerInputError`, so that it crosses the build
 * sandbox's thread boundary (error-codec.ts revives errors by name) as the class callers test.
 */
export class PackageDatabaseError extends LayerInputError {}
