// The demo page's script (served as /demo.js by `tidewire serve` in demo mode): a chat
// room on `chat:lobby` (history on entry, presence, join/leave, recovery after drops) and a
// live chart fed by the datagram channel `live:stats`, with the transport in use shown
// large. The server mints the demo's tokens at `GET /demo/token?user=NAME` and says where
// its QUIC port is at `GET /demo/info`.
//
// URL parameters: `user=NAME` (default: a random guest name), `transports=websocket,sse`
// (which transports to try, in order), `debug` (log to the console).
// For tests, `window.tidewireDemo` exposes the client and what the page has seen.
import { Tidewire, } from './tidewire.js';
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
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const user = (params.get('user') || `guest-${Math.floor(1000 + Math.random() * 9000)}`).slice(0, 32);
const names = {
    webtransport: 'WebTransport (QUIC)',
    websocket: 'WebSocket',
    sse: 'SSE + HTTP POST',
};
const explain = {
    webtransport: 'Native mode: one QUIC stream per channel, the chart arrives as QUIC datagrams.',
    websocket: 'Centrifugo JSON protocol over one WebSocket.',
    sse: 'Server-Sent Events down, POST /emulation up — works where UDP and WebSocket are blocked.',
};
/** What tests read. */
const seen = {
    user,
    states: [],
    subscribed: [],
    lines: [],
    samples: 0,
    sampleVia: '',
    presence: [],
    client: null,
};
window.tidewireDemo = seen;
function log(text, kind = '') {
    const li = document.createElement('li');
    li.className = kind;
    li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    const list = $('log');
    list.prepend(li);
    while (list.children.length > LOG_LINES)
        list.lastElementChild?.remove();
}
// --- chat ------------------------------------------------------------------------------
const lines = new Map();
let unordered = 0;
function addLine(p) {
    const data = (p.data ?? {});
    const text = typeof data.text === 'string' ? data.text : JSON.stringify(p.data);
    const who = p.info?.user || (typeof data.user === 'string' ? data.user : '');
    const line = { offset: p.offset, user: who || 'server API', text, mine: who === user, server: !who };
    // Offsets order and de-duplicate history, live and recovered messages; a channel without
    // history (offset 0) just appends.
    const key = p.offset > 0 ? p.offset : -(++unordered);
    if (lines.has(key))
        return;
    lines.set(key, line);
    renderChat();
}
function systemLine(text) {
    const li = document.createElement('li');
    li.className = 'system';
    li.textContent = text;
    $('messages').append(li);
}
function renderChat() {
    const list = $('messages');
    const sorted = [...lines.entries()].sort((a, b) => (a[0] > 0 && b[0] > 0 ? a[0] - b[0] : 0)).map(([, l]) => l);
    seen.lines = sorted;
    list.replaceChildren(...sorted.map((l) => {
        const li = document.createElement('li');
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
    }));
    list.scrollTop = list.scrollHeight;
}
// --- presence --------------------------------------------------------------------------
const online = new Map(); // client id → user
function renderPresence() {
    const users = new Map();
    for (const u of online.values())
        users.set(u, (users.get(u) ?? 0) + 1);
    const sorted = [...users.keys()].sort();
    seen.presence = sorted;
    $('online-count').textContent = String(sorted.length);
    $('presence').replaceChildren(...sorted.map((u) => {
        const li = document.createElement('li');
        const tabs = users.get(u) ?? 1;
        li.textContent = tabs > 1 ? `${u} ×${tabs}` : u;
        if (u === user)
            li.className = 'me';
        return li;
    }));
}
// --- live chart ------------------------------------------------------------------------
const samples = [];
function drawChart() {
    const canvas = $('chart');
    const ctx = canvas.getContext('2d');
    if (!ctx)
        return;
    const w = canvas.width;
    const h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = '#23304d';
    ctx.lineWidth = 1;
    for (let i = 1; i < 4; i++) {
        ctx.beginPath();
        ctx.moveTo(0, (h * i) / 4);
        ctx.lineTo(w, (h * i) / 4);
        ctx.stroke();
    }
    const line = (values, color) => {
        const max = Math.max(1, ...values) * 1.2;
        ctx.strokeStyle = color;
        ctx.lineWidth = 2;
        ctx.beginPath();
        values.forEach((v, i) => {
            // Grows from the left edge, then scrolls once the window is full.
            const x = (w * i) / (CHART_SAMPLES - 1);
            const y = h - 6 - ((h - 12) * v) / max;
            if (i === 0)
                ctx.moveTo(x, y);
            else
                ctx.lineTo(x, y);
        });
        ctx.stroke();
    };
    line(samples.map((s) => s.msgs_per_sec), '#38bdf8');
    line(samples.map((s) => s.connections), '#a78bfa');
}
function addSample(p) {
    const s = p.data;
    if (!s || typeof s.connections !== 'number' || typeof s.msgs_per_sec !== 'number')
        return;
    samples.push({ t: Number(s.t) || Date.now(), connections: s.connections, msgs_per_sec: s.msgs_per_sec });
    if (samples.length > CHART_SAMPLES)
        samples.shift();
    seen.samples++;
    $('msgs').textContent = s.msgs_per_sec.toFixed(1);
    $('conns').textContent = String(s.connections);
    $('samples').textContent = `${seen.samples} samples`;
}
function frame() {
    drawChart();
    requestAnimationFrame(frame);
}
// --- connection ------------------------------------------------------------------------
let skippedBefore = [];
function showState(e) {
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
        if (e.skipped.length)
            skippedBefore = e.skipped;
        for (const s of e.skipped.length ? e.skipped : skippedBefore) {
            const skip = document.createElement('div');
            skip.className = 'skip';
            skip.textContent = `${names[s.transport]} skipped: ${s.reason}`;
            note.append(skip);
        }
        log(e.reason, 'connected');
    }
    else if (e.state === 'connecting') {
        delete document.body.dataset.transport;
        text.textContent = e.transport ? `Connecting… (${names[e.transport]})` : 'Connecting…';
        log(e.reason, e.reason.includes('skipped') ? 'skip' : '');
    }
    else {
        delete document.body.dataset.transport;
        text.textContent = 'Disconnected';
        note.textContent = e.reason;
        log(`disconnected: ${e.reason}`, 'disconnected');
    }
}
async function main() {
    $('me').textContent = user;
    requestAnimationFrame(frame);
    const info = (await fetch('/demo/info').then((r) => r.json()).catch(() => ({})));
    const asked = (params.get('transports') ?? '').split(',').filter(Boolean);
    let transports = asked.length ? asked : ['webtransport', 'websocket', 'sse'];
    if (!info.quic_port)
        transports = transports.filter((t) => t !== 'webtransport');
    const client = new Tidewire(location.origin, {
        getToken: async () => {
            const resp = await fetch(`/demo/token?user=${encodeURIComponent(user)}`);
            if (!resp.ok)
                throw new Error(`/demo/token answered HTTP ${resp.status}`);
            return (await resp.json()).token;
        },
        transports,
        devCertHash: 'auto',
        ...(info.quic_port ? { quicPort: info.quic_port } : {}),
        debug: params.has('debug'),
    });
    seen.client = client;
    client.on('state', showState);
    client.on('error', (e) => log(`${e.type} error ${e.code}: ${e.message}`, 'skip'));
    const chat = client.subscribe(CHAT, {
        recover: true,
        onPublication: addLine,
        onJoin: (i) => {
            online.set(i.client, i.user);
            renderPresence();
            if (i.user !== user)
                log(`${i.user} joined`);
        },
        onLeave: (i) => {
            online.delete(i.client);
            renderPresence();
            if (i.user !== user)
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
                    h.publications.reverse().forEach(addLine);
                    if (!e.wasRecovering && h.publications.length === 0)
                        systemLine('No messages yet. Say hello!');
                }
                catch (err) {
                    log(`history failed: ${String(err)}`, 'skip');
                }
            }
            try {
                const p = await chat.presence();
                online.clear();
                for (const [id, i] of Object.entries(p.clients))
                    online.set(id, i.user);
                renderPresence();
            }
            catch (err) {
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
    $('send').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const input = $('text');
        const text = input.value.trim();
        if (!text)
            return;
        input.value = '';
        chat.publish({ text }).catch((err) => log(`publish failed: ${String(err)}`, 'skip'));
    });
    client.connect();
}
void main();
