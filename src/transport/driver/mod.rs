//! THE connection loop, once for every transport.
//!
//! A transport is framing only ([`Transport`]): it hands over whole inbound messages and
//! writes what it is given. This loop does the rest for all of them: it decodes commands
//! in the transport's codec, hands them to the session one at a time (Centrifugo's order:
//! commands of a connection are processed sequentially, the connect first), drains the
//! outbox and asks the transport to write it, and runs the timers.
//!
//! A command that waits (on the engine today, on an application backend next) never
//! stops the rest: the session is lent to the command's future, which this loop polls
//! beside everything else, so the outbox keeps draining and the [`Heartbeat`] keeps
//! pinging and checking pongs meanwhile. Commands that arrive in the meantime queue, up
//! to [`MAX_QUEUED_COMMANDS`]; past it the transport is not read until the queue drains
//! (back-pressure on the client, not memory on the server). The session's own timers
//! (stale, token expiry) run when it is not busy. One timer per connection, reset in
//! place only when its deadline moves.
//!
//! Server-side control events (API subscribe, unsubscribe, refresh …) arrive in the
//! outbox between publications. Output up to a control is written first; what follows it
//! is held until the session has applied it, so an API unsubscribe is never overtaken by
//! publications queued after it, and those are dropped.
//!
//! A coalescing window (`batch_max_delay` on the namespace) holds publications, and the
//! pushes queued with them, for up to that long: meanwhile the outbox is not watched
//! (unless `batch_max_size` may end the window early), so the publications of the window
//! cost the connection one wake-up and one write. A reply ends the window at once.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::now_ms;
use crate::hub::{Control, Drained, Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::{Command, CommandBody, Disconnect};
use crate::session::heartbeat::{Beat, Heartbeat};
use crate::session::{Session, TransportInfo};

/// Commands (and control events) waiting for the session, per connection. While this
/// many wait, the transport is not read.
pub const MAX_QUEUED_COMMANDS: usize = 64;

/// Items kept allocated between writes (what a connection holds while idle is at most
/// this many pointer-sized slots in each of its two vectors).
const KEEP_ITEMS: usize = 16;

/// Runs `fut` bounded by `limit`: `None` when it timed out. The timer is armed only when
/// the future does not finish at once, so the usual write (the socket takes it) costs no
/// timer registration; and it is boxed then, so that no connection's task carries its room.
pub(crate) async fn bounded<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    match std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => Box::pin(tokio::time::timeout(limit, fut)).await.ok(),
    }
}

/// What a transport read.
#[derive(Debug)]
pub enum Inbound {
    /// One whole message in the transport's codec (a WebSocket frame, a line, a native frame).
    Message(bytes::Bytes),
    /// Commands the transport decoded itself (an `/emulation` post, a datagram publish).
    Commands(Vec<Command>),
    /// The transport has bytes of its own to write (a pong frame, a notice): call
    /// [`Transport::write`] even though the outbox is empty.
    Flush,
    /// The peer broke the transport's rules: close with this.
    Close(Disconnect),
    /// The peer is gone (closed, reset, or acknowledged our close).
    Gone,
}

/// Why a write failed.
#[derive(Debug)]
pub enum WriteError {
    /// The socket or stream failed, or the write timed out.
    Io,
    /// The transport decided to close the connection (e.g. its own buffers passed the
    /// connection's byte bound: 3008).
    Close(Disconnect),
}

/// The framing half of a connection: what differs between WebSocket, HTTP-streaming, SSE,
/// WebTransport and raw QUIC.
pub trait Transport: Send {
    /// Name and capabilities, for the session and metrics.
    fn info(&self) -> TransportInfo;

    /// The codec inbound messages are decoded with.
    fn codec(&self) -> Codec;

    /// The next inbound event. Must be cancel-safe: the driver drops it whenever something
    /// else is ready, and no byte may be lost then.
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;

    /// Writes `items` (replies, pushes, publications, pings; never a control) in order,
    /// taking them out of the vector; called with an empty vector after
    /// [`Inbound::Flush`]. The driver bounds it with `websocket.write_timeout`.
    fn write(&mut self, items: &mut Vec<Outgoing>) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// [`Self::write`] bounded by `limit` (`None`: timed out): what the driver awaits, and
    /// so what every connection's task has room for. A transport that can try its write
    /// without waiting does so here and keeps the wait, when there is one, out of that
    /// room (boxed: a full socket is the rare case).
    fn write_bounded(&mut self, items: &mut Vec<Outgoing>, limit: Duration) -> impl Future<Output = Option<Result<(), WriteError>>> + Send {
        bounded(limit, self.write(items))
    }

    /// Gives back buffers kept between writes (called once a ping interval, when the
    /// connection may have gone quiet).
    fn trim(&mut self) {}

    /// Sees every decoded command before the session does (the native mode notes which
    /// channel a subscribe is for, to open its stream when the reply goes out).
    fn inbound(&mut self, _cmd: &Command) {}

    /// Last words and the close: with `Some`, tell the peer why (close frame, disconnect
    /// push) and give it a moment to acknowledge; with `None` the peer is already gone.
    fn close(&mut self, reason: Option<&Disconnect>) -> impl Future<Output = ()> + Send;
}

/// Work for the session, in arrival order.
#[derive(Debug)]
enum Work {
    Command(Command),
    Control(Control),
    Tick,
    /// Close with this once the commands before it are done (an undecodable message).
    Fail(Disconnect),
}

/// What a lent session comes back with.
struct Done {
    session: Session,
    result: Result<(), Disconnect>,
    /// The control it applied, if any (the held output is released after it).
    control: Option<Control>,
}

type Running = Pin<Box<dyn Future<Output = Done> + Send>>;

fn start(mut session: Session, work: Work) -> Running {
    Box::pin(async move {
        let now = now_ms();
        let (result, control) = match work {
            Work::Command(cmd) => (session.handle(cmd, now).await, None),
            Work::Control(c) => (session.handle_control(c.clone(), now).await, Some(c)),
            Work::Tick => (session.tick(now).await, None),
            Work::Fail(d) => (Err(d), None),
        };
        Done { session, result, control }
    })
}

/// Unix ms → a tokio instant (deadlines far away or past are clamped).
fn instant_at(deadline_ms: u64) -> Instant {
    let now = now_ms();
    // A day is "never" for a connection timer: it is re-armed whenever the deadline moves.
    let wait = deadline_ms.saturating_sub(now).min(86_400_000);
    Instant::now() + Duration::from_millis(wait)
}

/// Drives one connection until it closes: `session` was made for this `outbox`; the
/// `initial` commands arrived with the request that opened the connection (HTTP-streaming
/// bodies, a `cf_connect` parameter).
///
/// Not an `async fn`: one of those keeps its arguments twice (as passed, and moved into
/// its body), so the transport and the session would take their room twice in every
/// connection's task. The block below captures what it needs and uses it in place.
pub fn run<T: Transport>(mut transport: T, session: Session, outbox: Arc<Outbox>, initial: Vec<Command>) -> impl Future<Output = ()> {
    let mut heartbeat: Heartbeat = session.heartbeat();
    let metrics = session.hub().metrics().clone();
    let write_timeout = session.hub().config().websocket.write_timeout.0;
    let mut queue: VecDeque<Work> = initial.into_iter().map(Work::Command).collect();
    let mut home: Option<Session> = Some(session);
    async move {
        // Asked for where needed, not kept: every connection's task has room for what
        // lives across its awaits.
        let codec = transport.codec();
        if let Some(s) = home.as_mut() {
            // For the backend proxies' `protocol` field: anything but JSON is binary.
            s.set_binary_protocol(!matches!(codec, Codec::Json | Codec::JsonUni));
        }
        let tm = metrics.transport(transport.info().name);
        tm.accepted.fetch_add(1, Ordering::Relaxed);
        tm.connections.fetch_add(1, Ordering::Relaxed);

        let mut running: Option<Running> = None;
        let mut tick_queued = false;
        // Drained output not yet written; `held` while a control from it is with the session.
        let mut backlog: Vec<Outgoing> = Vec::new();
        let mut held = false;
        // Publications wait for more until then (unix ms), when their namespace asks for it.
        let mut hold_until: Option<u64> = None;
        // … and `batch_max_size` may end it early, so the outbox stays watched meanwhile.
        let mut hold_sized = false;
        let mut items: Vec<Outgoing> = Vec::new();
        // The transport has bytes of its own to write (Inbound::Flush).
        let mut flush = false;
        // Still reading the transport (until it broke the rules).
        let mut reading = true;
        let mut closing: Option<Disconnect> = None;
        // Unidirectional transports take one message (the connect request), nothing after.
        let mut messages_left = if transport.info().bidirectional { u64::MAX } else { u64::from(queue.is_empty()) };
        let timer = tokio::time::sleep_until(instant_at(u64::MAX));
        tokio::pin!(timer);
        let mut armed = u64::MAX;
        // The session's own next deadline, read when it comes home (only its work moves it).
        let mut session_deadline = home.as_ref().map_or(u64::MAX, Session::next_deadline);

        let close: Option<Disconnect> = 'conn: loop {
            // Hand the session its next piece of work.
            if running.is_none()
                && let Some(work) = queue.pop_front()
                && let Some(session) = home.take()
            {
                if matches!(work, Work::Tick) {
                    tick_queued = false;
                }
                if queue.is_empty() {
                    // Commands come one or two at a time: an idle connection holds no queue.
                    queue = VecDeque::new();
                }
                running = Some(start(session, work));
            }
            // Write what the backlog holds, up to the next control (unless a coalescing
            // window holds it a little longer), and what the transport asked to flush.
            let writing = !held && !backlog.is_empty() && (closing.is_some() || !coalescing(&backlog, &mut hold_until, &mut hold_sized));
            if writing {
                match backlog.iter().position(|i| matches!(i, Outgoing::Control(_))) {
                    // The usual case: no control, the whole backlog goes (no copy).
                    None => std::mem::swap(&mut items, &mut backlog),
                    Some(cut) => {
                        items.extend(backlog.drain(..cut));
                        if let Outgoing::Control(c) = backlog.remove(0) {
                            held = true;
                            queue.push_back(Work::Control(*c));
                        }
                    }
                }
            }
            if !items.is_empty() || flush {
                flush = false;
                // The one place the driver writes (one await point: a smaller connection future).
                match transport.write_bounded(&mut items, write_timeout).await {
                    Some(Ok(())) => {}
                    Some(Err(WriteError::Close(d))) => break 'conn Some(d),
                    Some(Err(WriteError::Io)) | None => break 'conn Some(super::write_failure(&outbox)),
                }
                items.clear();
                if items.capacity() > KEEP_ITEMS {
                    items = Vec::new();
                }
            }
            if writing {
                if backlog.is_empty() && backlog.capacity() > KEEP_ITEMS {
                    backlog = Vec::new();
                }
                if running.is_none() && !queue.is_empty() {
                    continue;
                }
            }
            if closing.is_some() && backlog.is_empty() {
                break closing.take();
            }
            // One timer: the heartbeat's next beat, or the session's when it is home.
            let deadline = heartbeat
                .next_deadline()
                .min(if home.is_some() { session_deadline } else { u64::MAX })
                .min(hold_until.unwrap_or(u64::MAX));
            if deadline != armed {
                armed = deadline;
                timer.as_mut().reset(instant_at(deadline));
            }

            tokio::select! {
                // Unbiased (tokio polls the branches from a random start each turn): a busy
                // outbox (always ready under load) cannot starve the timer, a finished
                // command or the reader, and a client that keeps the reader ready cannot
                // starve the outbox.
                // While a coalescing window holds output, the outbox is not watched: pushes
                // then wake nobody, and what they queue is taken when the window ends.
                // Nor while a control is with the session: what is queued meanwhile stays
                // in the outbox, under its byte bound (past it: 3008), not in the backlog.
                () = outbox.notified(), if !held && closing.is_none() && (hold_until.is_none() || hold_sized) => {
                    if let Some(d) = take_outbox(&outbox, &mut backlog, &mut held) {
                        closing = Some(d);
                    }
                }
                done = async {
                    match running.as_mut() {
                        Some(r) => r.await,
                        None => std::future::pending().await,
                    }
                }, if running.is_some() => {
                    running = None;
                    let Done { session, result, control } = done;
                    if hold_until.is_some() && let Some(d) = take_outbox(&outbox, &mut backlog, &mut held) {
                        // A reply never waits for a window: take it (and what it ends) now.
                        closing = Some(d);
                    }
                    if let Err(d) = result {
                        // Nothing after the command that closed the connection is processed.
                        outbox.close(d);
                        queue.clear();
                    }
                    if let Some(control) = control {
                        held = false;
                        if let Control::Unsubscribe(_, channel) = control {
                            // Whatever of the channel is queued now was fanned out before the
                            // session removed the subscriber: not for this client any more.
                            if let Some(d) = take_outbox(&outbox, &mut backlog, &mut held) {
                                closing = Some(d);
                            }
                            backlog.retain(|i| !matches!(i, Outgoing::Publication(p) if *p.publication.channel == *channel));
                        }
                    }
                    if !heartbeat.is_started() && session.is_connected() {
                        heartbeat.start(now_ms());
                    }
                    session_deadline = session.next_deadline();
                    home = Some(session);
                }
                inbound = transport.recv(), if reading && queue.len() < MAX_QUEUED_COMMANDS && closing.is_none() => {
                    match inbound {
                        Inbound::Gone => break None,
                        Inbound::Close(d) => {
                            // Nothing more is read: the rest of the input is what broke the rules.
                            reading = false;
                            outbox.close(d);
                            queue.clear();
                        }
                        Inbound::Flush => flush = true,
                        Inbound::Message(bytes) => {
                            if messages_left == 0 || outbox.is_closing() {
                                continue;
                            }
                            messages_left -= 1;
                            tm.bytes_received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                            // Per message, not kept: an idle connection holds no decoded slots.
                            let mut decoded = Vec::new();
                            let decoding = codec.decode_commands(&bytes, &mut decoded);
                            for cmd in decoded {
                                accept(&mut transport, &mut heartbeat, &mut queue, &outbox, cmd, tm);
                            }
                            if let Err(e) = decoding {
                                tracing::debug!(transport = transport.info().name, error = %e, "undecodable message");
                                // The commands before the bad one run, as they would have one
                                // by one; their replies go out before the close.
                                queue.push_back(Work::Fail(Disconnect::BAD_REQUEST));
                            }
                        }
                        Inbound::Commands(cmds) => {
                            if outbox.is_closing() {
                                continue;
                            }
                            for cmd in cmds {
                                accept(&mut transport, &mut heartbeat, &mut queue, &outbox, cmd, tm);
                            }
                        }
                    }
                }
                () = &mut timer => {
                    // An elapsed timer stays ready: force a reset on the next turn, even to
                    // "never" (else the loop would spin on it).
                    armed = 0;
                    let now = now_ms();
                    if hold_until.is_some_and(|t| now >= t)
                        && let Some(d) = take_outbox(&outbox, &mut backlog, &mut held)
                    {
                        closing = Some(d);
                    }
                    match heartbeat.tick(now) {
                        Beat::Idle => {}
                        Beat::Ping => {
                            // Once a ping interval, a connection gives back the vectors that
                            // circulate between it and its outbox under load (up to
                            // KEEP_ITEMS slots each), so one that went quiet holds none.
                            if backlog.is_empty() {
                                backlog = Vec::new();
                            }
                            items = Vec::new();
                            outbox.trim();
                            transport.trim();
                            outbox.push(Outgoing::Ping);
                        }
                        Beat::Dead(d) => outbox.close(d),
                    }
                    if !tick_queued && home.is_some() && now >= session_deadline {
                        tick_queued = true;
                        queue.push_back(Work::Tick);
                    }
                }
            }
        };

        // Boxed: the end's futures (session release, the transport's last words) are then
        // allocated only when a connection ends, not carried by every idle one.
        Box::pin(finish(transport, home, running, close)).await;
    }
}

/// The end of a connection: the session may be out on a command, so let it come back
/// (engine and backend calls are bounded by their own timeouts), release what it holds
/// in the hub, count the disconnect and let the transport say its last words.
async fn finish<T: Transport>(mut transport: T, home: Option<Session>, running: Option<Running>, close: Option<Disconnect>) {
    let info = transport.info();
    let session = match (home, running) {
        (Some(s), _) => Some(s),
        (None, Some(r)) => Some(r.await.session),
        // Not reachable: the session is either home or out on a command.
        (None, None) => None,
    };
    let Some(mut session) = session else { return };
    let metrics = session.hub().metrics().clone();
    session.close().await;
    if let Some(d) = &close {
        metrics.disconnects.inc(&d.code.to_string());
        if *d == Disconnect::SLOW {
            metrics.slow_disconnects.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(client = %session.client_id(), transport = info.name, "slow client disconnected");
        }
    }
    drop(session);
    transport.close(close.as_ref()).await;
    metrics.transport(info.name).connections.fetch_sub(1, Ordering::Relaxed);
}

/// Moves what the outbox holds to the backlog. When the outbox is closing: what came
/// before the close (a disconnect push, the last replies) is still written, controls no
/// longer matter, and the close is returned.
fn take_outbox(outbox: &Outbox, backlog: &mut Vec<Outgoing>, held: &mut bool) -> Option<Disconnect> {
    match outbox.drain(backlog) {
        Drained::Open => None,
        Drained::Close(d) => {
            backlog.retain(|i| !matches!(i, Outgoing::Control(_)));
            *held = false;
            Some(d)
        }
    }
}

/// Whether the backlog waits for more under a coalescing window (`batch_max_delay`):
/// only publications are held (replies and pushes go at once, and take what is held with
/// them), until the window of the first opens a write or `batch_max_size` are held.
/// Clears the window when it says "write now".
fn coalescing(backlog: &[Outgoing], hold_until: &mut Option<u64>, sized: &mut bool) -> bool {
    let mut window: Option<(u64, usize)> = None;
    for item in backlog {
        let Outgoing::Publication(p) = item else {
            *hold_until = None;
            return false;
        };
        let c = p.coalesce;
        if c.max_delay_ms == 0 {
            *hold_until = None;
            return false;
        }
        let size = if c.max_size == 0 { usize::MAX } else { c.max_size as usize };
        window = Some(window.map_or((u64::from(c.max_delay_ms), size), |(d, s)| (d.min(u64::from(c.max_delay_ms)), s.min(size))));
    }
    let Some((delay, size)) = window else { return false };
    *sized = size != usize::MAX;
    let now = now_ms();
    let until = *hold_until.get_or_insert(now.saturating_add(delay));
    if backlog.len() >= size || now >= until {
        *hold_until = None;
        return false;
    }
    true
}

/// Takes one decoded command: a pong goes to the heartbeat at once (it must not wait
/// behind a slow command, or the pong deadline would pass); the rest queue for the session.
fn accept<T: Transport>(
    transport: &mut T,
    heartbeat: &mut Heartbeat,
    queue: &mut VecDeque<Work>,
    outbox: &Outbox,
    cmd: Command,
    tm: &crate::metrics::TransportMetrics,
) {
    tm.messages_received.fetch_add(1, Ordering::Relaxed);
    if cmd.id == 0 && matches!(cmd.body, CommandBody::Empty) && heartbeat.is_started() {
        if let Err(d) = heartbeat.pong() {
            outbox.close(d);
        }
        return;
    }
    transport.inbound(&cmd);
    queue.push_back(Work::Command(cmd));
}

#[cfg(test)]
mod tests;
