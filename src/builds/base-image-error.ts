/** The base build a spec names cannot be used (it has not succeeded, or it is gone). */
export class BaseImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BaseImageError';
  }
}
