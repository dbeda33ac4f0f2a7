type Handler = (...args: any[]) => void;
/** Emits the events named in `E`. */
export declare class Emitter<E extends {
    [K in keyof E]: Handler;
}> {
    private readonly handlers;
    /** Adds a handler; returns a function that removes it. */
    on<K extends keyof E>(event: K, handler: E[K]): () => void;
    /** Removes a handler. */
    off<K extends keyof E>(event: K, handler: E[K]): void;
    /** Calls every handler of `event`. */
    protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void;
}
export {};
