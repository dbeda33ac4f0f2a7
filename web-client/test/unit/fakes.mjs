// A scripted server and transports for the client's unit tests: no sockets, no browser.
// Each FakeTransport hands the commands it is sent to a FakeServer, which answers like
// Tidewire would (connect, subscribe with recovery from a per-channel history, publish,
// history, presence) and can push publications, close the transport or disconnect.

/** One channel's history stream. */
class Stream {
  constructor(epoch = 'e1') {
    this.epoch = epoch;
    this.pubs = [];
  }
  get top() {
    return this.pubs.length ? this.pubs[this.pubs.length - 1].offset : 0;
  }
  add(data) {
    const p = { offset: this.top + 1, data };
    this.pubs.push(p);
    return p;
  }
}

export class FakeServer {
  constructor() {
    this.streams = new Map();
    this.commands = [];
    this.transports = [];
    this.connectError = null;
    this.tokens = [];
  }
  stream(channel) {
    if (!this.streams.has(channel)) this.streams.set(channel, new Stream());
    return this.streams.get(channel);
  }
  get current() {
    return this.transports.filter((t) => t.openedOk && !t.closed).at(-1);
  }
  /** Publishes into `channel`: kept in history; pushed to the current transport when `live`. */
  publish(channel, data, live = true) {
    const p = this.stream(channel).add(data);
    if (live && this.current?.subscribed.has(channel)) this.current.push({ push: { channel, pub: p } });
    return p;
  }
  handle(t, cmd) {
    this.commands.push({ transport: t.name, cmd });
    const reply = (body) => t.push({ id: cmd.id, ...body });
    if (cmd.connect) {
      this.tokens.push(cmd.connect.token);
      if (this.connectError) {
        const e = this.connectError;
        this.connectError = null;
        reply({ error: e });
      } else reply({ connect: { client: `client-${this.transports.length}`, ping: 25, pong: true, ...(this.connectExtra ?? {}) } });
    } else if (cmd.subscribe) {
      const s = cmd.subscribe;
      const st = this.stream(s.channel);
      t.subscribed.add(s.channel);
      const result = { recoverable: true, epoch: st.epoch, offset: st.top };
      if (s.recover) {
        result.was_recovering = true;
        result.recovered = s.epoch === st.epoch;
        result.publications = result.recovered ? st.pubs.filter((p) => p.offset > (s.offset ?? 0)) : [];
        if (!result.recovered) delete result.recovered; // JSON leaves false fields out
      }
      reply({ subscribe: result });
    } else if (cmd.unsubscribe) {
      t.subscribed.delete(cmd.unsubscribe.channel);
      reply({ unsubscribe: {} });
    } else if (cmd.publish) {
      reply({ publish: {} });
      this.publish(cmd.publish.channel, cmd.publish.data);
    } else if (cmd.history) {
      const st = this.stream(cmd.history.channel);
      reply({ history: { publications: st.pubs.slice(-(cmd.history.limit || 0)), epoch: st.epoch, offset: st.top } });
    } else if (cmd.presence) {
      reply({ presence: { presence: { c1: { user: 'u1', client: 'c1' } } } });
    } else if (cmd.presence_stats) {
      reply({ presence_stats: { num_clients: 1, num_users: 1 } });
    }
  }
}

export class FakeTransport {
  constructor(name, server, behaviour = {}) {
    this.name = name;
    this.datagrams = name === 'webtransport';
    this.server = server;
    this.behaviour = behaviour;
    this.closed = false;
    this.openedOk = false;
    this.subscribed = new Set();
    this.sentBatches = [];
    server.transports.push(this);
  }
  open(connect, events) {
    this.events = events;
    if (this.behaviour.fail) return Promise.reject(new Error(this.behaviour.fail));
    if (this.behaviour.hang) return new Promise(() => {});
    this.openedOk = true;
    setTimeout(() => this.deliver(connect), 0);
    return Promise.resolve();
  }
  deliver(cmd) {
    if (!this.closed) this.server.handle(this, cmd);
  }
  send(cmds) {
    this.sentBatches.push(cmds);
    for (const c of cmds) setTimeout(() => this.deliver(c), 0);
  }
  sendDatagram() {
    return this.datagrams;
  }
  push(message) {
    setTimeout(() => {
      if (!this.closed) this.events.message(message);
    }, 0);
  }
  /** The server side drops the connection. */
  drop(code = 0, reason = 'dropped') {
    if (this.closed) return;
    this.closed = true;
    this.events.close(code, reason);
  }
  close() {
    this.closed = true;
  }
}

/** Factories for all three transports; `behaviours[name]` scripts each (or `unavailable`). */
export function factories(server, behaviours = {}) {
  const make = (name) => ({
    name,
    unavailable: () => behaviours[name]?.unavailable ?? null,
    create: () => new FakeTransport(name, server, behaviours[name] ?? {}),
  });
  return { webtransport: make('webtransport'), websocket: make('websocket'), sse: make('sse') };
}

/** Resolves when `pred()` holds, polling every few ms; fails after `ms`. */
export async function until(pred, ms = 2000, what = 'condition') {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
