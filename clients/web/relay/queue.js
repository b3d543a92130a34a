// The relay's outbox: a bounded FIFO sent one at a time, in order, each
// event retried with its own request id until the server answers.

import { Code, ConnectError } from "@connectrpc/connect";

/** Codes that will not change on a retry: the event is reported and dropped. */
const PERMANENT = new Set([
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.NotFound,
  Code.AlreadyExists,
]);

/** Whether an error is worth retrying (unreachable, overloaded, timed out). */
export function isRetriable(err) {
  return !PERMANENT.has(ConnectError.from(err).code);
}

/**
 * Sends queued items with `send(item)` one at a time, oldest first. An item
 * leaves the queue only when `send` succeeds or fails permanently; a
 * retriable failure waits (doubling from `retryDelayMs` to `maxRetryDelayMs`,
 * with jitter) and tries the same item again, so nothing is lost and order is
 * kept. At most `capacity` items wait; `push` refuses more.
 */
export class Outbox {
  constructor({ send, capacity, retryDelayMs, maxRetryDelayMs, onSent, onDrop, onRetry }) {
    this.send = send;
    this.capacity = capacity;
    this.retryDelayMs = retryDelayMs;
    this.maxRetryDelayMs = maxRetryDelayMs;
    this.onSent = onSent;
    this.onDrop = onDrop;
    this.onRetry = onRetry;
    this.items = [];
    this.running = false;
    this.closed = false;
    this.idle = [];
    this.wake = null;
  }

  /** Queues an item; false when the queue is full or closed (the caller reports it). */
  push(item) {
    if (this.closed || this.items.length >= this.capacity) return false;
    this.items.push(item);
    if (!this.running) this.drain();
    return true;
  }

  /** Items waiting, the one in flight included. */
  get size() {
    return this.items.length;
  }

  /** Resolves when every queued item has been sent or dropped. */
  flushed() {
    if (this.items.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Retries now instead of at the end of the current wait (e.g. the browser came back online). */
  retryNow() {
    this.wake?.();
  }

  /** Stops sending; items still queued are returned to the caller. */
  close() {
    this.closed = true;
    this.wake?.();
    return this.items.splice(0);
  }

  async drain() {
    this.running = true;
    let failures = 0;
    while (this.items.length > 0 && !this.closed) {
      const item = this.items[0];
      try {
        const result = await this.send(item);
        this.items.shift();
        failures = 0;
        this.onSent(item, result);
      } catch (err) {
        if (this.closed) break;
        if (!isRetriable(err)) {
          this.items.shift();
          failures = 0;
          this.onDrop(item, ConnectError.from(err));
          continue;
        }
        failures += 1;
        const delay = Math.min(this.maxRetryDelayMs, this.retryDelayMs * 2 ** (failures - 1));
        const wait = delay / 2 + Math.random() * (delay / 2);
        this.onRetry(item, ConnectError.from(err), failures, wait);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      }
    }
    this.running = false;
    if (this.items.length === 0) for (const resolve of this.idle.splice(0)) resolve();
  }
}
