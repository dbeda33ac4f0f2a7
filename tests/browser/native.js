// A minimal browser client for Tidewire's native multiplexed mode over WebTransport,
// written against the wire format of src/protocol/native.rs (postcard: varints, length-
// prefixed strings and bytes, enum variants as varint indexes). Used by the browser test
// to show that a page receives each subscription on its own server-opened stream and a
// datagram channel's publications as datagrams.
(() => {
  const enc = new TextEncoder();
  const dec = new TextDecoder();

  class Writer {
    constructor() { this.bytes = []; }
    varint(n) {
      let v = BigInt(n);
      do {
        let b = Number(v & 0x7fn);
        v >>= 7n;
        if (v) b |= 0x80;
        this.bytes.push(b);
      } while (v);
      return this;
    }
    bool(x) { this.bytes.push(x ? 1 : 0); return this; }
    str(s) { const e = enc.encode(s); this.varint(e.length); this.bytes.push(...e); return this; }
    none() { this.bytes.push(0); return this; }
    done() { return new Uint8Array(this.bytes); }
  }

  class Reader {
    constructor(a) { this.a = a; this.i = 0; }
    varint() {
      let v = 0n, shift = 0n;
      for (;;) {
        if (this.i >= this.a.length) throw new Error('short');
        const b = this.a[this.i++];
        v |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return Number(v);
        shift += 7n;
      }
    }
    bytes() { const n = this.varint(); const r = this.a.slice(this.i, this.i + n); this.i += n; return r; }
    str() { return dec.decode(this.bytes()); }
  }

  const frame = (body) => {
    const head = new Writer().varint(body.length).done();
    const out = new Uint8Array(head.length + body.length);
    out.set(head);
    out.set(body, head.length);
    return out;
  };

  // WireCommand { id, body: Connect(WireConnect { token, data: None, subs: [], name, version, headers: [] }) }
  const connectCommand = (id, token) =>
    new Writer().varint(id).varint(0).str(token).none().varint(0).str('browser-native').str('1').varint(0).done();
  // WireCommand { id, body: Subscribe(WireSubscribe { channel, token: "", recover: false, epoch: "",
  //   offset: 0, data: None, positioned: false, recoverable: false, join_leave: false }) }
  const subscribeCommand = (id, channel) =>
    new Writer().varint(id).varint(1).str(channel).str('').bool(false).str('').varint(0).none()
      .bool(false).bool(false).bool(false).done();
  // WireCommand { id: 0, body: Pong }
  const pongCommand = () => new Writer().varint(0).varint(12).done();

  class FrameReader {
    constructor(stream) { this.reader = stream.getReader(); this.buf = new Uint8Array(0); }
    async next() {
      for (;;) {
        try {
          const r = new Reader(this.buf);
          const len = r.varint();
          if (this.buf.length - r.i >= len) {
            const body = this.buf.slice(r.i, r.i + len);
            this.buf = this.buf.slice(r.i + len);
            return body;
          }
        } catch (_) { /* incomplete varint */ }
        const { value, done } = await this.reader.read();
        if (done) return null;
        const grown = new Uint8Array(this.buf.length + value.length);
        grown.set(this.buf);
        grown.set(value, this.buf.length);
        this.buf = grown;
      }
    }
  }

  // WirePublication { offset, data, info, tags, delta }: the fields the page needs.
  const publication = (r) => ({ offset: r.varint(), data: dec.decode(r.bytes()) });

  async function connect({ url, hash, token, channels, log }) {
    const value = new Uint8Array(hash.match(/../g).map((h) => parseInt(h, 16)));
    const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value }] });
    await wt.ready;
    const state = { byChannel: {}, channelOf: {}, pubs: [], streams: 0, notices: [], disconnect: null };
    const bidi = await wt.createBidirectionalStream();
    const writer = bidi.writable.getWriter();
    const control = new FrameReader(bidi.readable);
    await writer.write(frame(connectCommand(1, token)));
    const asked = {};
    let id = 2;
    for (const ch of channels) {
      asked[id] = ch;
      await writer.write(frame(subscribeCommand(id++, ch)));
    }
    (async () => {
      const streams = wt.incomingUnidirectionalStreams.getReader();
      for (;;) {
        const { value: stream, done } = await streams.read();
        if (done) return;
        state.streams++;
        (async () => {
          const fr = new FrameReader(stream);
          const header = new Reader(await fr.next());
          const sub = header.varint();
          const channel = header.str();
          log(`stream for subscription ${sub} (${channel})`);
          for (;;) {
            const body = await fr.next();
            if (!body) return;
            state.pubs.push({ sub, channel, via: 'stream', ...publication(new Reader(body)) });
          }
        })().catch((e) => log('stream error ' + e));
      }
    })().catch((e) => log('incoming streams error ' + e));
    (async () => {
      const datagrams = wt.datagrams.readable.getReader();
      for (;;) {
        const { value: d, done } = await datagrams.read();
        if (done) return;
        const r = new Reader(d);
        const sub = r.varint();
        state.pubs.push({ sub, channel: state.channelOf[sub], via: 'datagram', ...publication(r) });
      }
    })().catch((e) => log('datagrams error ' + e));
    let waiting = channels.length + 1;
    await new Promise((resolve, reject) => {
      (async () => {
        for (;;) {
          const body = await control.next();
          if (!body) { reject(new Error('control stream ended')); return; }
          const r = new Reader(body);
          const kind = r.varint(); // ServerFrame: Reply, Push, Ping, Notice, Disconnect
          if (kind === 0) {
            const rid = r.varint();
            const reply = r.varint(); // WireReplyBody: Error, Connect, Subscribe, ...
            if (reply === 0) { reject(new Error(`error ${r.varint()} ${r.str()} for command ${rid}`)); return; }
            if (reply === 2) {
              const sub = r.varint();
              state.byChannel[asked[rid]] = sub;
              state.channelOf[sub] = asked[rid];
            }
            if (--waiting === 0) resolve();
          } else if (kind === 2) {
            await writer.write(frame(pongCommand()));
          } else if (kind === 3) {
            state.notices.push(`${r.varint()} ${r.str()}`);
          } else if (kind === 4) {
            state.disconnect = `${r.varint()} ${r.str()}`;
            log('disconnect ' + state.disconnect);
          }
        }
      })().catch(reject);
    });
    state.close = () => wt.close();
    return state;
  }

  globalThis.TidewireNative = { connect };
})();
