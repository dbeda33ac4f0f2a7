// A small typed event emitter: `on` returns a function that removes the handler. A handler
// that throws does not stop the others; its error is rethrown on a fresh task so it shows
// in the console without breaking the SDK's state.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Handler = (...args: any[]) => void;

/** Emits the events named in `E`. */
export class Emitter<E extends { [K in keyof E]: Handler }> {
  private readonly handlers = new Map<keyof E, Set<Handler>>();

  /** Adds a handler; returns a function that removes it. */
  on<K extends keyof E>(event: K, handler: E[K]): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler);
    return () => this.off(event, handler);
  }

  /** Removes a handler. */
  off<K extends keyof E>(event: K, handler: E[K]): void {
    this.handlers.get(event)?.delete(handler);
  }

  /** Calls every handler of `event`. */
  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}
