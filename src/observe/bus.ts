// Fan-out of session events to observers. Synchronous and never awaited: an observer that throws is
// logged and the session goes on; an observer that needs I/O must queue it itself.
import type { Observer, SessionEvent } from './events.js';

export class EventBus {
  private observers: Observer[] = [];
  /** Observers that want every DATA chunk (tx.data); most do not, and the hot path checks this. */
  wantsData = false;

  constructor(private readonly onError: (err: unknown) => void = () => {}) {}

  add(observer: Observer, opts: { data?: boolean } = {}): () => void {
    this.observers.push(observer);
    if (opts.data) this.wantsData = true;
    return () => {
      this.observers = this.observers.filter((o) => o !== observer);
    };
  }

  get active(): boolean {
    return this.observers.length > 0;
  }

  emit(ev: SessionEvent): void {
    for (const o of this.observers) {
      try {
        o(ev);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
