// A small typed event emitter: `on` returns a function that removes the handler. A handler
// that throws does not stop the others; its error is rethrown on a fresh task so it shows
// in the console without breaking the SDK's state.
/** Emits the events named in `E`. */
export class Emitter {
    handlers = new Map();
    /** Adds a handler; returns a function that removes it. */
    on(event, handler) {
        let set = this.handlers.get(event);
        if (!set) {
            set = new Set();
            this.handlers.set(event, set);
        }
        set.add(handler);
        return () => this.off(event, handler);
    }
    /** Removes a handler. */
    off(event, handler) {
        this.handlers.get(event)?.delete(handler);
    }
    /** Calls every handler of `event`. */
    emit(event, ...args) {
        const set = this.handlers.get(event);
        if (!set)
            return;
        for (const handler of [...set]) {
            try {
                handler(...args);
            }
            catch (e) {
                setTimeout(() => {
                    throw e;
                }, 0);
            }
        }
    }
}
