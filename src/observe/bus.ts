// Fan-out of session events to observers. Synchronous and never awaited: an observer that throws is
// logged and the session goes on; an observer that needs I/O must queue it itself.
import type { Observer, SessionEvent } from './events.js';

export class EventBus {
  private observers: Observer[] = [];
  /** Observers that want every DATA chunk (tx.data); most do not, and the hot path checks this. */
  wantsData = false;
  /** Observers that want protocol lines (the per-line events); the session skips building them otherwise. */
  private lineObservers = new Set<Observer>();

  constructor(private readonly onError: (err: unknown) => void = () => {}) {}

  /** `lines: false` for an observer that ignores `protocol` events (log, metrics): they are then not built. */
  add(observer: Observer, opts: { data?: boolean; lines?: boolean } = {}): () => void {
    this.observers.push(observer);
    if (opts.data) this.wantsData = true;
    if (opts.lines !== false) this.lineObservers.add(observer);
    return () => {
      this.observers = this.observers.filter((o) => o !== observer);
      this.lineObservers.delete(observer);
    };
  }

  get active(): boolean {
    return this.observers.length > 0;
  }

  /** Someone listens to `protocol` events (transcripts, the demo): only then are per-line events built. */
  get wantsLines(): boolean {
    return this.lineObservers.size > 0;
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
