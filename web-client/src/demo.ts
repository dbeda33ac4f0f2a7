// The demo page's script (served as /demo.js by `tidewire serve` in demo mode): a chat
// room on `chat:lobby` (history on entry, presence, join/leave, recovery after drops) and a
// live chart fed by the datagram channel `live:stats`, with the transport in use shown
// large. The server mints the demo's tokens at `GET /demo/token?user=NAME` and says where
// its QUIC port is at `GET /demo/info`.
//
// URL parameters: `user=NAME` (default: a random guest name), `transports=websocket,sse`
// (which transports to try, in order), `debug` (log to the console).
// For tests, `window.tidewireDemo` exposes the client and what the page has seen.

import {
  Tidewire, type ClientInfo, type Publication, type StateEvent, type SubscribedEvent, type TransportName,
} from './tidewire.js';

/** The chat channel (namespace `chat`: history, presence, join/leave, recovery). */
const CHAT = 'chat:lobby';
/** The live channel (namespace `live`: datagram delivery). */
const LIVE = 'live:stats';
/** Messages loaded from history on entry. */
const HISTORY_LIMIT = 50;
/** Chart width in samples (30 s at one sample per 200 ms). */
const CHART_SAMPLES = 150;
/** Log lines kept on the page. */
const LOG_LINES = 60;

/** What the server's ticker publishes on `live:stats`. */
interface Sample {
  t: number;
  connections: number;
  msgs_per_sec: number;
}

/** A chat line as the page keeps it: a message, or someone joining or leaving. */
interface Line {
  kind: 'message' | 'join' | 'leave';
  /** The message's offset in the channel (0 for events and channels without history). */
  offset: number;
  user: string;
  text: string;
  mine: boolean;
  server: boolean;
  /** When the page saw it (events show it; messages carry no time). */
  at: number;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const user = (params.get('user') || `guest-${Math.floor(1000 + Math.random() * 9000)}`).slice(0, 32);
const names: Record<TransportName, string> = {
  webtransport: 'WebTransport (QUIC)',
  websocket: 'WebSocket',
  sse: 'SSE + HTTP POST',
};
const explain: Record<TransportName, string> = {
  webtransport: 'Native mode: one QUIC stream per channel, the chart arrives as QUIC datagrams.',
  websocket: 'Centrifugo JSON protocol over one WebSocket.',
  sse: 'Server-Sent Events down, POST /emulation up — works where UDP and WebSocket are blocked.',
};

/** What tests read. */
const seen = {
  user,
  states: [] as StateEvent[],
  subscribed: [] as SubscribedEvent[],
  lines: [] as Line[],
  samples: 0,
  lastSample: null as Sample | null,
  sampleVia: '' as string,
  presence: [] as string[],
  client: null as Tidewire | null,
};
(window as unknown as { tidewireDemo: typeof seen }).tidewireDemo = seen;

function log(text: string, kind = ''): void {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const list = $('log');
  list.prepend(li);
  while (list.children.length > LOG_LINES) list.lastElementChild?.remove();
}

// --- chat ------------------------------------------------------------------------------

/** Chat lines by key: `m<offset>` for messages with an offset (which de-duplicates
 * history, live and recovered copies), `e<n>` for the rest. */
const lines = new Map<string, { line: Line; order: [number, number] }>();
/** Arrival counter: orders lines that have no offset of their own. */
let arrivals = 0;
/** Set when history came back empty: the pane says so until the first line. */
let historyEmpty = false;

/** Where a line without an offset goes: after the newest message the page knows of when
 * it arrived (the subscription's position is the stream top even before history loads),
 * in arrival order. */
function orderNow(position: number): [number, number] {
  let top = position;
  for (const { line } of lines.values()) top = Math.max(top, line.offset);
  return [top, ++arrivals];
}

function addLine(p: Publication, position: number): void {
  const data = (p.data ?? {}) as { text?: unknown; user?: unknown };
  const text = typeof data.text === 'string' ? data.text : JSON.stringify(p.data);
  const who = p.info?.user || (typeof data.user === 'string' ? data.user : '');
  const line: Line = {
    kind: 'message', offset: p.offset, user: who || 'server API', text, mine: who === user, server: !who, at: Date.now(),
  };
  // Offsets order and de-duplicate history, live and recovered messages; a channel without
  // history (offset 0) just appends.
  if (p.offset > 0) {
    if (lines.has(`m${p.offset}`)) return;
    lines.set(`m${p.offset}`, { line, order: [p.offset, 0] });
  } else {
    const order = orderNow(position);
    lines.set(`e${order[1]}`, { line, order });
  }
  renderChat();
}

/** A muted line for someone joining or leaving the room. */
function addEvent(kind: 'join' | 'leave', i: ClientInfo, position: number): void {
  const sameUser = i.user === user;
  const text = `${i.user}${sameUser ? ' (you, in another tab)' : ''} ${kind === 'join' ? 'joined' : 'left'}`;
  const line: Line = { kind, offset: 0, user: i.user, text, mine: sameUser, server: false, at: Date.now() };
  const order = orderNow(position);
  lines.set(`e${order[1]}`, { line, order });
  renderChat();
}

function renderChat(): void {
  const list = $('messages');
  const sorted = [...lines.values()]
    .sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1])
    .map((e) => e.line);
  seen.lines = sorted;
  const items = sorted.map((l) => {
    const li = document.createElement('li');
    if (l.kind !== 'message') {
      li.className = `event ${l.kind}`;
      const time = document.createElement('span');
      time.className = 'off';
      time.textContent = new Date(l.at).toLocaleTimeString();
      li.append(time, document.createTextNode(`${l.kind === 'join' ? '→' : '←'} ${l.text}`));
      return li;
    }
    li.className = l.mine ? 'mine' : l.server ? 'server' : '';
    li.dataset.offset = String(l.offset);
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = l.mine ? `${l.user} (you)` : l.user;
    const off = document.createElement('span');
    off.className = 'off';
    off.textContent = l.offset ? `#${l.offset}` : '';
    li.append(off, who, document.createTextNode(l.text));
    return li;
  });
  if (historyEmpty && !sorted.some((l) => l.kind === 'message')) {
    const li = document.createElement('li');
    li.className = 'system';
    li.textContent = 'No messages yet. Say hello!';
    items.unshift(li);
  }
  list.replaceChildren(...items);
  list.scrollTop = list.scrollHeight;
}

// --- presence --------------------------------------------------------------------------

const online = new Map<string, string>(); // client id → user

function renderPresence(): void {
  const users = new Map<string, number>();
  for (const u of online.values()) users.set(u, (users.get(u) ?? 0) + 1);
  const sorted = [...users.keys()].sort();
  seen.presence = sorted;
  $('online-count').textContent = String(sorted.length);
  $('presence').replaceChildren(
    ...sorted.map((u) => {
      const li = document.createElement('li');
      const tabs = users.get(u) ?? 1;
      li.textContent = tabs > 1 ? `${u} ×${tabs}` : u;
      if (u === user) li.className = 'me';
      return li;
    }),
  );
}

// --- live chart ------------------------------------------------------------------------
//
// An SVG line chart (so tests can read its axes from the DOM): x is time in seconds before
// the newest sample, y has two labelled scales sharing the same gridlines — messages/s on
// the left, connections on the right — because the two are different units and a shared
// scale would flatten the connection count to the floor. Each scale starts at 0 and ends at
// a round number above its largest visible value. The lines grow from the left edge until
// the window is full, then scroll.

const SVG_NS = 'http://www.w3.org/2000/svg';
/** The chart's viewBox size in user units (CSS scales it to the panel's width). */
const VIEW_W = 440;
const VIEW_H = 200;
/** Plot area inside the viewBox: room for tick labels and axis titles around it. */
const PLOT = { left: 46, right: VIEW_W - 40, top: 10, bottom: VIEW_H - 36 };
/** The time the chart spans, ms (CHART_SAMPLES samples of the server's 200 ms ticker). */
const WINDOW_MS = CHART_SAMPLES * 200;
/** Spacing of x ticks, ms. */
const X_TICK_MS = 5_000;
/** Gridline intervals on y; both scales use the same count so their ticks share gridlines. */
const Y_INTERVALS = 4;
/** A pause between samples longer than this (ms) breaks the line instead of bridging it
 * (a reconnect, or lost datagrams). */
const GAP_MS = 1_000;

const samples: Sample[] = [];

/** A y scale: its top value and tick step, chosen so that ticks are round numbers. */
interface Scale {
  max: number;
  step: number;
}

/** The smallest round step (1, 2, 2.5 or 5 × 10ⁿ, at least `minStep`) that fits `max` in
 * Y_INTERVALS intervals. */
function niceScale(max: number, minStep: number): Scale {
  const raw = Math.max(max, 0) / Y_INTERVALS;
  let step = minStep;
  if (raw > minStep) {
    const pow = 10 ** Math.floor(Math.log10(raw));
    step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((c) => c >= raw * (1 - 1e-9)) ?? 10 * pow;
    step = Math.max(step, minStep);
  }
  return { max: step * Y_INTERVALS, step };
}

/** A tick label: compact for large values, without float noise for fractional steps. */
function tickText(v: number): string {
  if (v >= 10_000) return `${Number((v / 1000).toFixed(1))}k`;
  return String(Number(v.toFixed(2)));
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K, attrs: Record<string, string | number>, text?: string,
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A y axis at `x`: ticks with values (`data-value`), its title rotated beside it. */
function yAxis(side: 'left' | 'right', scale: Scale, title: string, cls: string): SVGGElement {
  const g = svg('g', { class: `y-axis ${cls}`, 'data-max': scale.max });
  const x = side === 'left' ? PLOT.left : PLOT.right;
  const dx = side === 'left' ? -6 : 6;
  for (let i = 0; i <= Y_INTERVALS; i++) {
    const v = scale.step * i;
    const y = yOf(v, scale);
    const tick = svg('g', { class: 'tick', 'data-value': v });
    tick.append(
      svg('line', { x1: x, x2: x + dx / 2, y1: y, y2: y }),
      svg('text', { x: x + dx, y, 'text-anchor': side === 'left' ? 'end' : 'start', 'dominant-baseline': 'middle' }, tickText(v)),
    );
    g.append(tick);
  }
  const tx = side === 'left' ? 12 : VIEW_W - 8;
  const ty = (PLOT.top + PLOT.bottom) / 2;
  g.append(svg('text', {
    class: 'axis-title', x: tx, y: ty, 'text-anchor': 'middle', transform: `rotate(${side === 'left' ? -90 : 90} ${tx} ${ty})`,
  }, title));
  return g;
}

function yOf(v: number, scale: Scale): number {
  return PLOT.bottom - ((PLOT.bottom - PLOT.top) * v) / scale.max;
}

/** The path of one series; breaks where samples are more than GAP_MS apart. */
function linePath(xs: number[], ys: number[], times: number[]): string {
  return xs.map((x, i) => `${i === 0 || times[i] - times[i - 1] > GAP_MS ? 'M' : 'L'}${x.toFixed(1)} ${ys[i].toFixed(1)}`).join(' ');
}

function drawChart(): void {
  const chart = $('chart') as unknown as SVGSVGElement;
  const msgsScale = niceScale(Math.max(0, ...samples.map((s) => s.msgs_per_sec)), 1);
  const connsScale = niceScale(Math.max(0, ...samples.map((s) => s.connections)), 1);
  const head = samples.at(-1)?.t ?? 0;
  // Grows from the left: the oldest sample sits at the left edge until the window is full.
  const start = Math.max(samples[0]?.t ?? 0, head - WINDOW_MS);
  const xOf = (t: number) => PLOT.left + ((PLOT.right - PLOT.left) * (t - start)) / WINDOW_MS;

  const grid = svg('g', { class: 'grid' });
  for (let i = 0; i <= Y_INTERVALS; i++) {
    const y = yOf(msgsScale.step * i, msgsScale);
    grid.append(svg('line', { x1: PLOT.left, x2: PLOT.right, y1: y, y2: y }));
  }

  const x = svg('g', { class: 'x-axis' });
  x.append(svg('line', { class: 'baseline', x1: PLOT.left, x2: PLOT.right, y1: PLOT.bottom, y2: PLOT.bottom }));
  if (samples.length) {
    for (let ago = 0; head - ago >= start; ago += X_TICK_MS) {
      const tx = xOf(head - ago);
      const tick = svg('g', { class: 'tick', 'data-value': ago / 1000 });
      tick.append(
        svg('line', { x1: tx, x2: tx, y1: PLOT.bottom, y2: PLOT.bottom + 4 }),
        svg('text', { x: tx, y: PLOT.bottom + 15, 'text-anchor': 'middle' }, ago === 0 ? 'now' : String(ago / 1000)),
      );
      x.append(tick);
    }
  }
  x.append(svg('text', { class: 'axis-title', x: (PLOT.left + PLOT.right) / 2, y: VIEW_H - 4, 'text-anchor': 'middle' }, 'time (seconds ago)'));

  const times = samples.map((s) => s.t);
  const xs = times.map(xOf);
  const lines = svg('g', { class: 'lines' });
  lines.append(
    svg('path', { class: 'line conns', d: linePath(xs, samples.map((s) => yOf(s.connections, connsScale)), times) }),
    svg('path', { class: 'line msgs', d: linePath(xs, samples.map((s) => yOf(s.msgs_per_sec, msgsScale)), times) }),
  );
  chart.replaceChildren(
    grid,
    x,
    yAxis('left', msgsScale, 'messages delivered/s', 'msgs'),
    yAxis('right', connsScale, 'connections', 'conns'),
    lines,
  );
}

function addSample(p: Publication): void {
  const s = p.data as Partial<Sample> | null;
  if (!s || typeof s.connections !== 'number' || typeof s.msgs_per_sec !== 'number') return;
  const sample = { t: Number(s.t) || Date.now(), connections: s.connections, msgs_per_sec: s.msgs_per_sec };
  // The server's clock stamps samples; one from before the newest (a reordered stream
  // sample) would draw the line backwards.
  if (samples.length && sample.t <= (samples.at(-1)?.t ?? 0)) return;
  samples.push(sample);
  while (samples.length > CHART_SAMPLES + 1 || samples[0].t < sample.t - WINDOW_MS) samples.shift();
  seen.samples++;
  seen.lastSample = sample;
  $('msgs').textContent = s.msgs_per_sec.toFixed(1);
  $('conns').textContent = String(s.connections);
  $('samples').textContent = `${seen.samples} samples`;
  drawChart();
}

// --- connection ------------------------------------------------------------------------

let skippedBefore: StateEvent['skipped'] = [];

function showState(e: StateEvent): void {
  seen.states.push(e);
  document.body.dataset.state = e.state;
  const status = $('status');
  status.className = `status ${e.state}`;
  const text = $('status-text');
  const note = $('transport-note');
  if (e.state === 'connected' && e.transport) {
    document.body.dataset.transport = e.transport;
    text.textContent = `Connected over ${names[e.transport]}`;
    note.replaceChildren(document.createTextNode(explain[e.transport]));
    // A reconnect goes straight to the transport that worked: keep saying why the others
    // were passed over the first time.
    if (e.skipped.length) skippedBefore = e.skipped;
    for (const s of e.skipped.length ? e.skipped : skippedBefore) {
      const skip = document.createElement('div');
      skip.className = 'skip';
      skip.textContent = `${names[s.transport]} skipped: ${s.reason}`;
      note.append(skip);
    }
    log(e.reason, 'connected');
  } else if (e.state === 'connecting') {
    delete document.body.dataset.transport;
    text.textContent = e.transport ? `Connecting… (${names[e.transport]})` : 'Connecting…';
    log(e.reason, e.reason.includes('skipped') ? 'skip' : '');
  } else {
    delete document.body.dataset.transport;
    text.textContent = 'Disconnected';
    note.textContent = e.reason;
    log(`disconnected: ${e.reason}`, 'disconnected');
  }
}

async function main(): Promise<void> {
  $('me').textContent = user;
  drawChart();
  const info = (await fetch('/demo/info').then((r) => r.json()).catch(() => ({}))) as { quic_port?: number | null };
  const asked = (params.get('transports') ?? '').split(',').filter(Boolean) as TransportName[];
  let transports: TransportName[] = asked.length ? asked : ['webtransport', 'websocket', 'sse'];
  if (!info.quic_port) transports = transports.filter((t) => t !== 'webtransport');
  const client = new Tidewire(location.origin, {
    getToken: async () => {
      const resp = await fetch(`/demo/token?user=${encodeURIComponent(user)}`);
      if (!resp.ok) throw new Error(`/demo/token answered HTTP ${resp.status}`);
      return ((await resp.json()) as { token: string }).token;
    },
    transports,
    devCertHash: 'auto',
    ...(info.quic_port ? { quicPort: info.quic_port } : {}),
    debug: params.has('debug'),
  });
  seen.client = client;
  client.on('state', showState);
  // Every client id this page has had: after a reconnect the server may still announce the
  // previous connection leaving, which is not someone else.
  const ownClients = new Set<string>();
  client.on('connected', (e) => ownClients.add(e.client));
  client.on('error', (e) => log(`${e.type} error ${e.code}: ${e.message}`, 'skip'));

  const chat = client.subscribe(CHAT, {
    recover: true,
    onPublication: (p) => addLine(p, chat.streamPosition.offset),
    onJoin: (i: ClientInfo) => {
      online.set(i.client, i.user);
      renderPresence();
      // Our own subscription is not news; another tab of the same user is.
      if (ownClients.has(i.client)) return;
      addEvent('join', i, chat.streamPosition.offset);
      log(`${i.user} joined`);
    },
    onLeave: (i: ClientInfo) => {
      online.delete(i.client);
      renderPresence();
      if (ownClients.has(i.client)) return;
      addEvent('leave', i, chat.streamPosition.offset);
      log(`${i.user} left`);
    },
    onSubscribed: async (e) => {
      seen.subscribed.push(e);
      if (e.wasRecovering) {
        log(e.recovered ? `back in ${CHAT}: missed messages recovered` : `back in ${CHAT}: could not recover everything, reloading history`);
      }
      if (!e.wasRecovering || !e.recovered) {
        try {
          const h = await chat.history({ limit: HISTORY_LIMIT, reverse: true });
          for (const p of h.publications.reverse()) addLine(p, chat.streamPosition.offset);
          historyEmpty = !e.wasRecovering && h.publications.length === 0;
          renderChat();
        } catch (err) {
          log(`history failed: ${String(err)}`, 'skip');
        }
      }
      try {
        const p = await chat.presence();
        online.clear();
        for (const [id, i] of Object.entries(p.clients)) online.set(id, i.user);
        renderPresence();
      } catch (err) {
        log(`presence failed: ${String(err)}`, 'skip');
      }
    },
  });

  client.subscribe(LIVE, {
    delivery: 'datagram',
    onPublication: addSample,
    onSubscribed: (e) => {
      seen.sampleVia = e.delivery;
      $('live-note').textContent = e.delivery === 'datagram'
        ? 'A sample every 200 ms, arriving as QUIC datagrams: latest value wins, a lost sample is simply skipped.'
        : `A sample every 200 ms over ${names[e.transport]} (datagrams need WebTransport).`;
    },
  });

  $<HTMLFormElement>('send').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('text');
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    chat.publish({ text }).catch((err) => log(`publish failed: ${String(err)}`, 'skip'));
  });

  client.connect();
}

void main();
