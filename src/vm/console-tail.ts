/**
 * The end of a guest's console (ttyS0: kernel and /init messages, and whatever root in the
 * guest writes there, for as long as the step runs). The host keeps the last `capacity`
 * bytes in a ring and counts the rest: a console flood costs fixed memory and no disk.
 */
export class ConsoleTail {
  readonly #ring: Buffer;
  /** Where the next byte goes. */
  #end = 0;
  /** The ring has wrapped: all of it holds console bytes. */
  #full = false;
  #total = 0;

  constructor(capacity: number) {
    this.#ring = Buffer.alloc(capacity);
  }

  /** Every byte the guest wrote, kept or not. */
  get totalBytes(): number {
    return this.#total;
  }

  push(chunk: Buffer): void {
    const capacity = this.#ring.length;
    this.#total += chunk.length;
    if (chunk.length >= capacity) {
      chunk.copy(this.#ring, 0, chunk.length - capacity);
      this.#end = 0;
      this.#full = true;
      return;
    }
    const first = Math.min(chunk.length, capacity - this.#end);
    chunk.copy(this.#ring, this.#end, 0, first);
    chunk.copy(this.#ring, 0, first);
    if (this.#end + chunk.length >= capacity) this.#full = true;
    this.#end = (this.#end + chunk.length) % capacity;
  }

  /** The last `bytes` kept (at most the capacity), oldest first. */
  tail(bytes = this.#ring.length): Buffer {
    const kept = this.#full ? Buffer.concat([this.#ring.subarray(this.#end), this.#ring.subarray(0, this.#end)]) : this.#ring.subarray(0, this.#end);
    return Buffer.from(kept.subarray(Math.max(0, kept.length - bytes)));
  }
}
