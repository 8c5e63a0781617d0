import { LayerInputError } from '../../image/layer-entry.ts';

/** A package database in an image that is not in its format: the image's fault (a 422, as LayerInputError is). */
export class PackageDatabaseError extends LayerInputError {
  constructor(message: string) {
    super(message);
    this.name = 'PackageDatabaseError';
  }
}
