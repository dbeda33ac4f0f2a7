//! WebSocket (RFC 6455) on the raw upgraded TCP socket: server frame headers, a parser
//! for client frames, the socket reader and vectored writer, and the handshake checks.
//!
//! Why our own: a publication's whole server frame (header + payload, unmasked) is built
//! once and shared by every subscriber, then written with the connection's other pending
//! frames in one vectored write; and an idle connection holds no read or write buffer.
//! The read buffer exists only while a frame is arriving (see [`WsSocket::read_message`]);
//! there is no write buffer at all: the caller hands its pieces to
//! [`WsSocket::write_pieces`] (or its slices to [`WsSocket::write_all_vectored`]).
//!
//! What this room must not know: sessions, codecs, the hub. It moves frames; the transport
//! that drives it decides what a message means, when to ping, and how to close.
//!
//! Invariants:
//! - [`FrameParser::decode`] is two-phase: it checks that a whole frame has arrived by
//!   parsing its header without allocating, and consumes bytes only for whole frames. A
//!   frame's header is judged (size limit, control-frame rules, masking) as soon as it is
//!   there, before any of its payload is buffered.
//! - Every message handed out is whole (fragments reassembled) and, for text, valid UTF-8.
//! - [`WsSocket::read_message`] is cancel-safe: its only await is socket readiness, and
//!   bytes read are in the socket's own buffer before it can be dropped.
//! - After an error the connection is failed: the caller sends the error's close code (if
//!   any) and stops reading.
//!
//! Scope: HTTP/1.1 upgrades on our plain TCP listener. A WebSocket over HTTP/2 (extended
//! CONNECT) is a stream, not a socket: [`upgraded_stream`] refuses it.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;

use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::protocol::codes::{MAX_REASON_BYTES, WS_MESSAGE_TOO_BIG, WS_PROTOCOL_ERROR};
use crate::protocol::framing;

/// Largest payload of a control frame (close, ping, pong), in bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Bytes read per `try_read` while a frame's length is unknown or small, and the first
/// step toward a large frame's length: one page, what an idle connection's next message
/// usually fits in. A large frame's buffer then doubles with what has arrived, so a peer
/// announcing a large frame and sending it slowly makes us allocate at most twice what it
/// has actually sent.
const READ_CHUNK: usize = 4096;

/// Payloads shorter than this (bytes) are copied out of the read buffer into an
/// allocation of their own, so that a small message the caller keeps (a publication in
/// history) does not pin a whole read chunk. Longer ones arrive into a buffer grown toward
/// their own length and are handed over without a copy.
const COPY_BELOW: usize = READ_CHUNK;

/// Close code for invalid UTF-8 in a text message or a close reason (RFC 6455 §7.4.1).
const WS_INVALID_PAYLOAD: u16 = 1007;

/// The WebSocket version this server speaks (RFC 6455 §4.1), in the handshake's
/// `Sec-WebSocket-Version` header.
const WS_VERSION: &str = "13";

/// Bytes in a decoded `Sec-WebSocket-Key` (RFC 6455 §4.1: a random 16-byte nonce).
const WS_KEY_BYTES: usize = 16;

/// A frame's opcode (RFC 6455 §5.2). Reserved opcodes are not values of this type: the
/// parser rejects them as a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// `0x0`: the next fragment of a text or binary message.
    Continuation,
    /// `0x1`: the first (or only) frame of a text message.
    Text,
    /// `0x2`: the first (or only) frame of a binary message.
    Binary,
    /// `0x8`: close, with an optional code and reason.
    Close,
    /// `0x9`: ping.
    Ping,
    /// `0xA`: pong.
    Pong,
}

impl Opcode {
    /// Whether this is a control frame (close, ping, pong): at most 125 bytes, never
    /// fragmented, and allowed between the fragments of a message.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

impl TryFrom<u8> for Opcode {
    /// The reserved or out-of-range opcode.
    type Error = u8;

    fn try_from(value: u8) -> Result<Self, u8> {
        Ok(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(other),
        })
    }
}

impl From<Opcode> for u8 {
    fn from(op: Opcode) -> u8 {
        match op {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }
}

/// Slices per vectored write (Linux takes up to 1024 per `writev`): more pieces go out
/// in several writes.
pub const WRITE_SLICES: usize = 16;

/// Bytes of the header of a server frame with a `len`-byte payload: 2, 4 (16-bit
/// length) or 10 (64-bit length). Server frames are not masked. (The one definition is
/// `protocol::framing`'s, which also frames the publications fan-out shares.)
pub fn header_len(len: usize) -> usize {
    framing::ws_header_len(len)
}

/// Appends the header of a whole (FIN) unmasked server frame with a `len`-byte payload;
/// the payload follows, written by the caller (appended, or as the next `IoSlice`). The
/// caller keeps control frames to [`MAX_CONTROL_PAYLOAD`] bytes.
pub fn put_header(out: &mut Vec<u8>, opcode: Opcode, len: usize) {
    framing::put_ws_header(out, u8::from(opcode), len);
}

/// Appends a whole unmasked server frame: header and payload.
pub fn put_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.reserve(header_len(payload.len()) + payload.len());
    put_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a whole close frame carrying `code` and `reason`, the reason cut on a
/// character boundary so that the payload fits a control frame (2 + at most 123 bytes).
pub fn put_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    put_header(out, Opcode::Close, 2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
}

/// A whole message from the client: fragments reassembled, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; always valid UTF-8.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping; the caller answers with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (an answer to our ping, or unsolicited).
    Pong(Bytes),
    /// A close, with its code and reason when the client sent one (the code is one a
    /// peer may send: RFC 6455 §7.4).
    Close(Option<(u16, String)>),
}

/// Why reading a WebSocket failed. The connection is failed after any of these.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The client broke the framing rules (the reason is for logs).
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    /// A message (all its fragments together) is over the size limit.
    #[error("websocket message over the size limit")]
    TooBig,
    /// A text message or a close reason is not valid UTF-8.
    #[error("invalid UTF-8 in a websocket text message or close reason")]
    InvalidUtf8,
    /// Reading the socket failed.
    #[error("websocket read failed: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the TCP connection (possibly mid-frame).
    #[error("peer closed the connection")]
    Closed,
}

impl WsError {
    /// The close code RFC 6455 §7.4.1 gives this failure: 1002 (protocol), 1009 (too
    /// big), 1007 (invalid UTF-8; Centrifugo's transports answer 3501 instead, the
    /// transport's choice). `None` when the socket is gone and there is nobody to tell.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::Protocol(_) => Some(WS_PROTOCOL_ERROR),
            Self::TooBig => Some(WS_MESSAGE_TOO_BIG),
            Self::InvalidUtf8 => Some(WS_INVALID_PAYLOAD),
            Self::Io(_) | Self::Closed => None,
        }
    }
}

/// A client frame's header, parsed without allocating.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    /// Bytes of the header itself: 6, 8 or 14 (client frames always carry a mask).
    len: usize,
    /// The payload length as announced.
    payload: u64,
}

/// Parses the frame header at the start of `buf`: `None` until the whole header is there.
/// Rules a header breaks on its own (reserved bits and opcodes, no mask, a fragmented or
/// long control frame, a 64-bit length with its top bit set) are errors as soon as the
/// bytes that show them have arrived.
fn parse_header(buf: &[u8]) -> Result<Option<Header>, WsError> {
    // Byte 0: FIN (0x80), RSV1-3 (0x70), opcode (0x0F). Byte 1: MASK (0x80), length (0x7F:
    // the length itself, or 126 / 127 for a 16- / 64-bit length after it).
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set"));
    }
    let opcode = Opcode::try_from(b0 & 0x0F).map_err(|_| WsError::Protocol("reserved opcode"))?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(WsError::Protocol("unmasked client frame"));
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(WsError::Protocol("fragmented control frame"));
        }
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(WsError::Protocol("control frame over 125 bytes"));
        }
    }
    let extended = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let len = 2 + extended + 4;
    let Some(head) = buf.get(..len) else { return Ok(None) };
    let payload = match extended {
        0 => u64::from(len7),
        2 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        _ => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&head[2..10]);
            u64::from_be_bytes(be)
        }
    };
    if payload >> 63 != 0 {
        return Err(WsError::Protocol("64-bit length with the most significant bit set"));
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&head[len - 4..len]);
    Ok(Some(Header { fin, opcode, mask, len, payload }))
}

/// XORs `data` with the repeating 4-byte `mask`, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so the mask phase restarts at 0.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Hands a payload out as `Bytes`: copied when small (see [`COPY_BELOW`]), else frozen.
fn detach(payload: BytesMut) -> Bytes {
    if payload.len() < COPY_BELOW { Bytes::copy_from_slice(&payload) } else { payload.freeze() }
}

/// Whether a peer may send `code` in a close frame: the RFC 6455 §7.4.1 codes and the
/// IANA-registered 1012–1014, and the 3000–4999 ranges for libraries and applications.
/// 1004–1006 and 1015 are reserved for endpoints' own use and never on the wire.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A fragmented message whose last fragment has not arrived yet.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: BytesMut,
}

/// Decodes client frames into whole messages. Holds only what must survive between
/// frames: the size limit and a fragmented message still being assembled.
#[derive(Debug)]
pub struct FrameParser {
    max_message_size: usize,
    open: Option<Partial>,
}

impl FrameParser {
    /// A parser refusing messages over `max_message_size` bytes (all fragments together;
    /// control frames are bounded by their own 125 bytes).
    pub fn new(max_message_size: usize) -> Self {
        Self { max_message_size, open: None }
    }

    /// Decodes the next whole message from the front of `buf`, consuming the frames it
    /// took (control frames interleaved with fragments come out first, as they arrive).
    /// `Ok(None)`: more bytes are needed; a partial frame stays in `buf` untouched. After
    /// an error the parser's state is meaningless: fail the connection.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        loop {
            let Some(header) = parse_header(buf)? else { return Ok(None) };
            let payload_len = self.admit(&header)?;
            let total = header.len.checked_add(payload_len).ok_or(WsError::TooBig)?;
            if buf.len() < total {
                return Ok(None);
            }
            buf.advance(header.len);
            let mut payload = buf.split_to(payload_len);
            unmask(&mut payload, header.mask);
            if let Some(message) = self.complete(header, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// The rules a header breaks given what came before it, and the size limit; the
    /// payload length when the frame is admitted.
    fn admit(&self, header: &Header) -> Result<usize, WsError> {
        match (header.opcode, &self.open) {
            (Opcode::Continuation, None) => return Err(WsError::Protocol("continuation without a message to continue")),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(WsError::Protocol("new message before the fragmented one finished"));
            }
            _ => {}
        }
        let room = if header.opcode.is_control() {
            MAX_CONTROL_PAYLOAD
        } else {
            self.max_message_size.saturating_sub(self.open.as_ref().map_or(0, |p| p.data.len()))
        };
        match usize::try_from(header.payload) {
            Ok(n) if n <= room => Ok(n),
            _ => Err(WsError::TooBig),
        }
    }

    /// Takes a whole frame's unmasked payload; returns a message when one is complete.
    fn complete(&mut self, header: Header, payload: BytesMut) -> Result<Option<Message>, WsError> {
        let message = match header.opcode {
            Opcode::Ping => Message::Ping(detach(payload)),
            Opcode::Pong => Message::Pong(detach(payload)),
            Opcode::Close => close_message(&payload)?,
            Opcode::Text | Opcode::Binary => {
                let text = header.opcode == Opcode::Text;
                if !header.fin {
                    self.open = Some(Partial { text, data: payload });
                    return Ok(None);
                }
                data_message(text, payload)?
            }
            Opcode::Continuation => {
                let Some(partial) = self.open.as_mut() else {
                    return Err(WsError::Protocol("continuation without a message to continue"));
                };
                partial.data.extend_from_slice(&payload);
                if !header.fin {
                    return Ok(None);
                }
                let Some(Partial { text, data }) = self.open.take() else {
                    return Err(WsError::Protocol("continuation without a message to continue"));
                };
                data_message(text, data)?
            }
        };
        Ok(Some(message))
    }
}

/// A whole text or binary message; text is checked for UTF-8.
fn data_message(text: bool, data: BytesMut) -> Result<Message, WsError> {
    if !text {
        return Ok(Message::Binary(detach(data)));
    }
    if std::str::from_utf8(&data).is_err() {
        return Err(WsError::InvalidUtf8);
    }
    Ok(Message::Text(detach(data)))
}

/// A close frame's payload: empty, or a 2-byte code an endpoint may send and a UTF-8 reason.
fn close_message(payload: &[u8]) -> Result<Message, WsError> {
    let [hi, lo, reason @ ..] = payload else {
        return if payload.is_empty() { Ok(Message::Close(None)) } else { Err(WsError::Protocol("close payload of one byte")) };
    };
    let code = u16::from_be_bytes([*hi, *lo]);
    if !close_code_allowed(code) {
        return Err(WsError::Protocol("invalid close code"));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
    Ok(Message::Close(Some((code, reason.to_owned()))))
}

/// How many bytes to make room for before the next read, given what is buffered: a
/// [`READ_CHUNK`] while the header is incomplete or the frame nearly there; otherwise the
/// rest of the frame, but at most as much again as has arrived (doubling).
fn read_size(buf: &[u8]) -> usize {
    let Ok(Some(header)) = parse_header(buf) else { return READ_CHUNK };
    let total = usize::try_from(header.payload).unwrap_or(usize::MAX).saturating_add(header.len);
    let missing = total.saturating_sub(buf.len());
    missing.min(buf.len()).max(READ_CHUNK)
}

/// How far a write of pieces has got (see [`WsSocket::try_write_pieces`]): the next byte
/// is piece `piece`'s byte `offset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WritePosition {
    /// The piece being written.
    pub piece: usize,
    /// Bytes of it already written.
    pub offset: usize,
}

/// A WebSocket connection on a raw TCP socket, server side. Idle, it is the socket, an
/// empty buffer and a few words of parser state: the read buffer is allocated when bytes
/// arrive and given back as soon as no partial frame remains.
pub struct WsSocket {
    /// `None` only once dropped (taken to hand to `on_drop`).
    stream: Option<TcpStream>,
    /// Bytes read and not yet decoded: part of a frame, or frames after a returned message.
    /// Capacity 0 whenever it is empty.
    buf: BytesMut,
    parser: FrameParser,
    on_drop: fn(TcpStream),
}

impl fmt::Debug for WsSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSocket")
            .field("stream", &self.stream)
            .field("buffered", &self.buf.len())
            .field("parser", &self.parser)
            .finish_non_exhaustive()
    }
}

impl WsSocket {
    /// Takes over `stream` after the handshake. `read_buf`: bytes the HTTP server read past
    /// the request (the start of the client's first frames). `on_drop` receives the socket
    /// when this is dropped: the listener's lingering close (`Lingering::new` then drop,
    /// see [`crate::api::tcp::Lingering`]) so that our last close frame is not destroyed by
    /// an RST, or plain `drop`.
    pub fn new(stream: TcpStream, read_buf: &[u8], max_message_size: usize, on_drop: fn(TcpStream)) -> Self {
        Self {
            stream: Some(stream),
            buf: BytesMut::from(read_buf),
            parser: FrameParser::new(max_message_size),
            on_drop,
        }
    }

    fn io(&self) -> io::Result<&TcpStream> {
        self.stream.as_ref().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// The next whole message from the client.
    ///
    /// Cancel-safe: dropping the future at its await (socket readiness) loses nothing;
    /// every byte read is already in the socket's buffer, and the parser's state lives in
    /// `self`. While it waits with no partial frame, no buffer is held.
    pub async fn read_message(&mut self) -> Result<Message, WsError> {
        loop {
            let decoded = self.parser.decode(&mut self.buf);
            if self.buf.is_empty() {
                // Whatever capacity is left (a read chunk's tail) goes back now.
                self.buf = BytesMut::new();
            }
            if let Some(message) = decoded? {
                return Ok(message);
            }
            let stream = self.stream.as_ref().ok_or(WsError::Closed)?;
            // Polled in place (no readiness future): an idle connection waits here, so its
            // task carries only this wait's two pointers.
            std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await?;
            self.buf.reserve(read_size(&self.buf));
            let read = stream.try_read_buf(&mut self.buf);
            if self.buf.is_empty() {
                self.buf = BytesMut::new();
            }
            match read {
                Ok(0) => return Err(WsError::Closed),
                Ok(_) => {}
                // Readiness was stale; wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(WsError::Io(e)),
            }
        }
    }

    /// Writes every byte of `bufs` (frames built by the caller); see [`Self::write_pieces`].
    pub async fn write_all_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        self.write_pieces(bufs.len(), |i| &*bufs[i]).await
    }

    /// Writes pieces `0..count` of `piece` in order, with vectored writes of up to
    /// [`WRITE_SLICES`] pieces, resuming mid-piece after partial writes. The socket is
    /// tried first (it usually takes everything, and then no readiness is awaited), and
    /// the slices are made again for each attempt: none is held while the socket is not
    /// writable, so no connection's task carries them, and nothing is copied (a slow
    /// client's shared frames stay shared while it waits). Not cancel-safe: when the
    /// caller's timeout drops it, the stream may be mid-frame and the connection must be
    /// closed.
    pub async fn write_pieces<'a>(&self, count: usize, piece: impl Fn(usize) -> &'a [u8]) -> io::Result<()> {
        let mut at = WritePosition::default();
        while !self.try_write_pieces(count, &piece, &mut at)? {
            self.writable().await?;
        }
        Ok(())
    }

    /// Writes what the socket takes now of pieces `0..count` from `at` on, without
    /// waiting, and moves `at` past it: true once everything is written, false when the
    /// socket is full (wait with [`Self::writable`], then call again with the same
    /// pieces and position).
    pub fn try_write_pieces<'a>(&self, count: usize, piece: impl Fn(usize) -> &'a [u8], at: &mut WritePosition) -> io::Result<bool> {
        let stream = self.io()?;
        loop {
            let attempt = {
                let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
                let (mut n, mut i, mut skip) = (0, at.piece, at.offset);
                while i < count && n < WRITE_SLICES {
                    let p = piece(i);
                    if skip < p.len() {
                        slices[n] = IoSlice::new(&p[skip..]);
                        n += 1;
                    }
                    i += 1;
                    skip = 0;
                }
                if n == 0 {
                    return Ok(true);
                }
                stream.try_write_vectored(&slices[..n])
            };
            match attempt {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut written) => {
                    while written > 0 && at.piece < count {
                        let left = piece(at.piece).len() - at.offset;
                        if written < left {
                            at.offset += written;
                            written = 0;
                        } else {
                            written -= left;
                            at.piece += 1;
                            at.offset = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the socket may take more bytes. Polled in place: no readiness future
    /// in the caller's task.
    pub async fn writable(&self) -> io::Result<()> {
        let stream = self.io()?;
        std::future::poll_fn(|cx| stream.poll_write_ready(cx)).await
    }

    /// Writes every byte of `buf`; see [`Self::write_all_vectored`].
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all_vectored(&[IoSlice::new(buf)]).await
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io()?.peer_addr()
    }

    /// Bytes the read buffer holds room for: 0 whenever no partial frame is buffered.
    pub fn read_buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Shuts the write side down (FIN after everything written). Reading still works, to
    /// wait for the client's answering close.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self.stream.as_mut() {
            Some(stream) => stream.shutdown().await,
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Drop for WsSocket {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            (self.on_drop)(stream);
        }
    }
}

/// Why the upgraded connection cannot become a [`WsSocket`]. The caller closes it.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Not the io type the caller named: an HTTP/2 stream (extended CONNECT), or another
    /// listener. The upgraded connection comes back for another transport to try.
    #[error("the upgraded connection is not a socket of the expected type")]
    NotOurSocket(hyper::upgrade::Upgraded),
    /// Taking the socket out of its wrapper failed.
    #[error("cannot take the upgraded socket: {0}")]
    Io(#[from] io::Error),
}

/// The raw TCP socket under an HTTP/1.1 upgrade served by hyper-util's auto builder, and
/// the bytes hyper read past the request (give both to [`WsSocket::new`]). `T` is the io
/// type the listener gave hyper (`TokioIo<Lingering>` for ours), `into_stream` unwraps it
/// (`|io| io.into_inner().into_inner()`). Named by the caller because the listener lives
/// in `api`, which this room may not name.
pub fn upgraded_stream<T>(
    upgraded: hyper::upgrade::Upgraded,
    into_stream: impl FnOnce(T) -> io::Result<TcpStream>,
) -> Result<(TcpStream, Bytes), UpgradeError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    // hyper-util wraps the listener's io in a private rewinding type; its own downcast
    // sees through it and joins the bytes that type still held to hyper's read buffer.
    let parts = hyper_util::server::conn::auto::upgrade::downcast::<T>(upgraded).map_err(UpgradeError::NotOurSocket)?;
    Ok((into_stream(parts.io)?, parts.read_buf))
}

/// Why a request is not a WebSocket handshake we accept (RFC 6455 §4.2.1). Each variant
/// knows its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The method is not GET (405, as before with axum's upgrade).
    #[error("websocket handshake must be a GET")]
    MethodNotGet,
    /// No `upgrade` token in `Connection` (400).
    #[error("websocket handshake without `Connection: upgrade`")]
    NoConnectionUpgrade,
    /// No `websocket` token in `Upgrade` (400).
    #[error("websocket handshake without `Upgrade: websocket`")]
    NoUpgradeWebsocket,
    /// `Sec-WebSocket-Version` is missing or not 13 (426, telling the version we speak).
    #[error("unsupported websocket version (13 is supported)")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing, repeated, or not base64 of 16 bytes (400).
    #[error("missing or malformed Sec-WebSocket-Key")]
    BadKey,
}

impl HandshakeError {
    /// The HTTP status of the refusal.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Self::NoConnectionUpgrade | Self::NoUpgradeWebsocket | Self::BadKey => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.to_string()).into_response();
        if self == Self::UnsupportedVersion {
            response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static(WS_VERSION));
        }
        response
    }
}

/// Whether any of the comma-separated tokens of the `name` headers is `token`,
/// ignoring ASCII case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks an HTTP/1.1 WebSocket handshake request (RFC 6455 §4.2.1) and returns the
/// `Sec-WebSocket-Accept` value for the 101 response.
pub fn check_upgrade(method: &Method, headers: &HeaderMap) -> Result<String, HandshakeError> {
    if *method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(HandshakeError::NoUpgradeWebsocket);
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()).map(str::trim);
    if version != Some(WS_VERSION) {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let (Some(key), None) = (keys.next(), keys.next()) else { return Err(HandshakeError::BadKey) };
    let key = key.to_str().map_err(|_| HandshakeError::BadKey)?.trim();
    match base64::engine::general_purpose::STANDARD.decode(key) {
        // `derive_accept_key` is behind tungstenite's `handshake` feature, enabled today by
        // axum's `ws` feature (through tokio-tungstenite); dropping that needs it named.
        Ok(nonce) if nonce.len() == WS_KEY_BYTES => Ok(tungstenite::handshake::derive_accept_key(key.as_bytes())),
        _ => Err(HandshakeError::BadKey),
    }
}

/// The 101 response accepting a WebSocket handshake, once [`check_upgrade`] passed with
/// `accept`. Subprotocol negotiation (`Sec-WebSocket-Protocol`) is the caller's to add.
pub fn switching_protocols(accept: &str) -> Result<Response, HandshakeError> {
    let accept = HeaderValue::try_from(accept).map_err(|_| HandshakeError::BadKey)?;
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Upper bound on any socket test, so a bug hangs no CI run.
    const TEST_TIMEOUT: Duration = Duration::from_secs(20);

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame, as a browser sends it.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![opcode | if fin { 0x80 } else { 0 }];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn text(s: &str) -> Message {
        Message::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Feeds `bytes` in chunks of the given sizes (cycled), collecting every message.
    fn feed(parser: &mut FrameParser, bytes: &[u8], chunks: &[usize]) -> Result<Vec<Message>, WsError> {
        let (mut buf, mut out, mut at, mut i) = (BytesMut::new(), Vec::new(), 0, 0);
        while at < bytes.len() {
            let n = chunks[i % chunks.len()].max(1).min(bytes.len() - at);
            i += 1;
            buf.extend_from_slice(&bytes[at..at + n]);
            at += n;
            while let Some(m) = parser.decode(&mut buf)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, WsError> {
        feed(&mut FrameParser::new(1 << 20), bytes, &[usize::MAX])
    }

    fn expect_protocol(bytes: &[u8], why: &str) {
        match decode_all(bytes) {
            Err(e @ WsError::Protocol(_)) => assert_eq!(e.close_code(), Some(1002), "{why}"),
            other => panic!("{why}: expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn opcodes_round_trip_and_reserved_ones_are_refused() {
        for op in [Opcode::Continuation, Opcode::Text, Opcode::Binary, Opcode::Close, Opcode::Ping, Opcode::Pong] {
            assert_eq!(Opcode::try_from(u8::from(op)), Ok(op));
        }
        for reserved in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF, 0x10] {
            assert_eq!(Opcode::try_from(reserved), Err(reserved));
        }
    }

    #[test]
    fn header_bytes_for_each_length_encoding() {
        let cases: [(usize, &[u8]); 5] = [
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (65535, &[0x81, 126, 0xFF, 0xFF]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, want) in cases {
            let mut out = Vec::new();
            put_header(&mut out, Opcode::Text, len);
            assert_eq!(out, want, "len {len}");
            assert_eq!(header_len(len), want.len(), "len {len}");
        }
        let mut out = Vec::new();
        put_header(&mut out, Opcode::Binary, 3);
        put_header(&mut out, Opcode::Pong, 0);
        assert_eq!(out, [0x82, 3, 0x8A, 0]);
    }

    #[test]
    fn put_frame_is_header_then_payload() {
        let mut out = Vec::new();
        put_frame(&mut out, Opcode::Ping, b"hi");
        assert_eq!(out, [0x89, 2, b'h', b'i']);
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let mut out = Vec::new();
        put_close(&mut out, 3501, "bad request");
        assert_eq!(&out[..4], &[0x88, 13, 0x0D, 0xAD]);
        assert_eq!(&out[4..], b"bad request");
    }

    #[test]
    fn close_reasons_are_cut_on_a_char_boundary_to_fit_125_bytes() {
        // 61 two-byte characters and a one-byte lead: byte 123 falls inside a character.
        let reason = format!("x{}", "é".repeat(70));
        let mut out = Vec::new();
        put_close(&mut out, 1000, &reason);
        let payload = &out[2..];
        assert_eq!(out[1] as usize, payload.len());
        assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        let kept = std::str::from_utf8(&payload[2..]).expect("cut on a boundary");
        assert_eq!(kept, format!("x{}", "é".repeat(61)));
        // A long ASCII reason keeps exactly 123 bytes.
        out.clear();
        put_close(&mut out, 1000, &"a".repeat(300));
        assert_eq!(out.len(), 2 + 125);
        // And the parser reads back what we write (our frames, masked as a client would).
        let mut masked = client_frame(0x8, true, &out[2..], MASK);
        masked.extend(client_frame(0x8, true, &[0x03, 0xE8], MASK));
        assert_eq!(
            decode_all(&masked).expect("valid"),
            [Message::Close(Some((1000, "a".repeat(123)))), Message::Close(Some((1000, String::new())))]
        );
    }

    #[test]
    fn masked_text_and_binary_messages() {
        let mut bytes = client_frame(0x1, true, "héllo".as_bytes(), MASK);
        bytes.extend(client_frame(0x2, true, &[0, 1, 2, 255], [1, 2, 3, 4]));
        bytes.extend(client_frame(0x1, true, b"", MASK));
        bytes.extend(client_frame(0x9, true, b"ping", MASK));
        bytes.extend(client_frame(0xA, true, b"", MASK));
        bytes.extend(client_frame(0x8, true, b"", MASK));
        assert_eq!(
            decode_all(&bytes).expect("valid"),
            [
                text("héllo"),
                Message::Binary(Bytes::from_static(&[0, 1, 2, 255])),
                text(""),
                Message::Ping(Bytes::from_static(b"ping")),
                Message::Pong(Bytes::new()),
                Message::Close(None),
            ]
        );
    }

    #[test]
    fn long_lengths_are_decoded() {
        for len in [126, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let got = decode_all(&client_frame(0x2, true, &payload, MASK)).expect("valid");
            assert_eq!(got, [Message::Binary(payload.into())], "len {len}");
        }
    }

    #[test]
    fn fragments_are_reassembled_around_an_interleaved_ping() {
        // "é" split between two fragments: only the whole message must be UTF-8.
        let word = "ça va é".as_bytes();
        let split = word.len() - 1;
        let mut bytes = client_frame(0x1, false, &word[..3], MASK);
        bytes.extend(client_frame(0x9, true, b"p", MASK));
        bytes.extend(client_frame(0x0, false, &word[3..split], [9, 8, 7, 6]));
        bytes.extend(client_frame(0x0, false, b"", MASK));
        bytes.extend(client_frame(0x0, true, &word[split..], MASK));
        bytes.extend(client_frame(0x2, false, b"ab", MASK));
        bytes.extend(client_frame(0x0, true, b"cd", MASK));
        assert_eq!(
            decode_all(&bytes).expect("valid"),
            [Message::Ping(Bytes::from_static(b"p")), text("ça va é"), Message::Binary(Bytes::from_static(b"abcd"))]
        );
    }

    #[test]
    fn framing_violations_are_protocol_errors() {
        let mut rsv = client_frame(0x1, true, b"x", MASK);
        rsv[0] |= 0x40;
        expect_protocol(&rsv, "RSV1 set");
        let mut rsv3 = client_frame(0x1, true, b"x", MASK);
        rsv3[0] |= 0x10;
        expect_protocol(&rsv3, "RSV3 set");
        expect_protocol(&client_frame(0x3, true, b"x", MASK), "reserved data opcode");
        expect_protocol(&client_frame(0xB, true, b"x", MASK), "reserved control opcode");
        expect_protocol(&client_frame(0x9, true, &[0; 126], MASK), "ping over 125 bytes");
        expect_protocol(&client_frame(0x8, false, b"", MASK), "fragmented close");
        expect_protocol(&client_frame(0x0, true, b"x", MASK), "continuation without a start");
        let mut twice = client_frame(0x1, false, b"a", MASK);
        twice.extend(client_frame(0x1, true, b"b", MASK));
        expect_protocol(&twice, "new text frame while a message is open");
        let mut binary_in_text = client_frame(0x1, false, b"a", MASK);
        binary_in_text.extend(client_frame(0x2, true, b"b", MASK));
        expect_protocol(&binary_in_text, "new binary frame while a message is open");
        let mut msb = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        msb.extend_from_slice(&MASK);
        expect_protocol(&msb, "64-bit length with the top bit set");
        expect_protocol(&client_frame(0x8, true, &[0x03], MASK), "close payload of one byte");
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            expect_protocol(&client_frame(0x8, true, &code.to_be_bytes(), MASK), &format!("close code {code}"));
        }
        for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3501, 4999] {
            assert_eq!(
                decode_all(&client_frame(0x8, true, &code.to_be_bytes(), MASK)).expect("valid"),
                [Message::Close(Some((code, String::new())))]
            );
        }
    }

    #[test]
    fn unmasked_frames_are_refused_from_their_first_two_bytes() {
        let mut parser = FrameParser::new(1024);
        let mut buf = BytesMut::from(&[0x81u8, 0x05][..]);
        assert!(matches!(parser.decode(&mut buf), Err(WsError::Protocol("unmasked client frame"))));
    }

    #[test]
    fn too_big_is_decided_by_the_header_before_the_payload_arrives() {
        let mut parser = FrameParser::new(1000);
        // Only the header of a 1 MB frame: no payload has arrived.
        let frame = client_frame(0x2, true, &vec![0; 1 << 20], MASK);
        let mut buf = BytesMut::from(&frame[..14]);
        let err = parser.decode(&mut buf).expect_err("too big");
        assert!(matches!(err, WsError::TooBig));
        assert_eq!(err.close_code(), Some(1009));
        // Exactly at the limit is fine; the limit counts fragments together.
        let mut parser = FrameParser::new(4);
        let ok = client_frame(0x2, true, b"abcd", MASK);
        assert_eq!(feed(&mut parser, &ok, &[100]).expect("at the limit").len(), 1);
        let mut parts = client_frame(0x1, false, b"abc", MASK);
        parts.extend(&client_frame(0x0, true, b"de", MASK)[..8]);
        assert!(matches!(feed(&mut parser, &parts, &[100]), Err(WsError::TooBig)));
        // A 64-bit length above usize or the limit, without the top bit.
        let mut huge = vec![0x82, 0x80 | 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        huge.extend_from_slice(&MASK);
        assert!(matches!(decode_all(&huge), Err(WsError::TooBig)));
    }

    #[test]
    fn invalid_utf8_text_is_its_own_error() {
        let err = decode_all(&client_frame(0x1, true, &[b'a', 0xFF], MASK)).expect_err("not utf-8");
        assert!(matches!(err, WsError::InvalidUtf8));
        assert_eq!(err.close_code(), Some(1007));
        // Split across fragments, an incomplete character at the end stays invalid.
        let mut parts = client_frame(0x1, false, b"ok", MASK);
        parts.extend(client_frame(0x0, true, &"é".as_bytes()[..1], MASK));
        assert!(matches!(decode_all(&parts), Err(WsError::InvalidUtf8)));
        // Binary is not checked; a close reason is.
        assert!(decode_all(&client_frame(0x2, true, &[0xFF], MASK)).is_ok());
        assert!(matches!(decode_all(&client_frame(0x8, true, &[0x03, 0xE8, 0xFF], MASK)), Err(WsError::InvalidUtf8)));
    }

    #[test]
    fn bytes_fed_one_at_a_time_give_the_same_messages() {
        let mut bytes = client_frame(0x1, false, b"hello ", MASK);
        bytes.extend(client_frame(0x9, true, b"are you there", MASK));
        bytes.extend(client_frame(0x0, true, b"world", [0xde, 0xad, 0xbe, 0xef]));
        bytes.extend(client_frame(0x2, true, &[7; 300], MASK));
        bytes.extend(client_frame(0x8, true, &[0x03, 0xE8, b'b', b'y', b'e'], MASK));
        let whole = decode_all(&bytes).expect("valid");
        assert_eq!(whole.len(), 4);
        let one_by_one = feed(&mut FrameParser::new(1 << 20), &bytes, &[1]).expect("valid");
        assert_eq!(whole, one_by_one);
    }

    #[test]
    fn a_partial_frame_is_left_in_the_buffer_untouched() {
        let frame = client_frame(0x1, true, b"abcdef", MASK);
        let mut parser = FrameParser::new(100);
        let mut buf = BytesMut::from(&frame[..frame.len() - 1]);
        assert!(parser.decode(&mut buf).expect("partial").is_none());
        assert_eq!(&buf[..], &frame[..frame.len() - 1]);
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 100] {
            let original: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut data = original.clone();
            unmask(&mut data, MASK);
            let want: Vec<u8> = original.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]).collect();
            assert_eq!(data, want, "len {len}");
        }
    }

    #[test]
    fn reads_start_at_a_page_and_double_toward_the_frame() {
        let frame = client_frame(0x2, true, &vec![0; 1 << 20], MASK);
        assert_eq!(read_size(&[]), READ_CHUNK);
        assert_eq!(read_size(&frame[..3]), READ_CHUNK, "header incomplete");
        assert_eq!(read_size(&frame[..14]), READ_CHUNK, "a page first");
        assert_eq!(read_size(&frame[..100_000]), 100_000, "then doubling");
        assert_eq!(read_size(&frame[..frame.len() - 10]), READ_CHUNK, "nearly there");
        let small = client_frame(0x1, true, b"hi", MASK);
        assert_eq!(read_size(&small[..4]), READ_CHUNK);
    }

    #[test]
    fn small_messages_own_their_bytes() {
        // A 5-byte message decoded from a 4 KiB buffer must not keep the buffer alive.
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        buf.extend_from_slice(&client_frame(0x1, true, b"small", MASK));
        let Some(Message::Text(t)) = FrameParser::new(100).decode(&mut buf).expect("valid") else { panic!("text") };
        assert_eq!(&t[..], b"small");
        // `Bytes::copy_from_slice` makes an exact-size allocation it uniquely owns.
        assert!(t.try_into_mut().is_ok());
    }

    #[test]
    fn handshake_accepts_a_browser_request() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        // RFC 6455 §1.3's example.
        assert_eq!(check_upgrade(&Method::GET, &h).as_deref(), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let response = switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=").expect("valid");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(response.headers()[header::UPGRADE], "websocket");
        assert!(switching_protocols("bad\nvalue").is_err());

        // Connection as two header lines also counts.
        let mut two = h.clone();
        two.remove(header::CONNECTION);
        two.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        two.append(header::CONNECTION, HeaderValue::from_static("upgrade"));
        assert!(check_upgrade(&Method::GET, &two).is_ok());

        let refused = |edit: &dyn Fn(&mut HeaderMap), method: Method| {
            let mut h = h.clone();
            edit(&mut h);
            check_upgrade(&method, &h).expect_err("refused")
        };
        let set = |name: header::HeaderName, value: &'static str| {
            move |h: &mut HeaderMap| {
                h.insert(name.clone(), HeaderValue::from_static(value));
            }
        };
        let remove = |name: header::HeaderName| {
            move |h: &mut HeaderMap| {
                h.remove(&name);
            }
        };
        assert_eq!(refused(&|_| {}, Method::POST), HandshakeError::MethodNotGet);
        assert_eq!(refused(&remove(header::CONNECTION), Method::GET), HandshakeError::NoConnectionUpgrade);
        assert_eq!(refused(&set(header::CONNECTION, "upgrades"), Method::GET), HandshakeError::NoConnectionUpgrade);
        assert_eq!(refused(&set(header::UPGRADE, "h2c"), Method::GET), HandshakeError::NoUpgradeWebsocket);
        assert_eq!(refused(&set(header::SEC_WEBSOCKET_VERSION, "8"), Method::GET), HandshakeError::UnsupportedVersion);
        assert_eq!(refused(&remove(header::SEC_WEBSOCKET_VERSION), Method::GET), HandshakeError::UnsupportedVersion);
        assert_eq!(refused(&remove(header::SEC_WEBSOCKET_KEY), Method::GET), HandshakeError::BadKey);
        for key in ["not base64!", "dGhlIHNhbXBsZQ==", ""] {
            assert_eq!(refused(&set(header::SEC_WEBSOCKET_KEY, key), Method::GET), HandshakeError::BadKey, "key {key:?}");
        }
        let repeated = |h: &mut HeaderMap| {
            h.append(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        };
        assert_eq!(refused(&repeated, Method::GET), HandshakeError::BadKey);
    }

    #[test]
    fn handshake_refusals_carry_their_status() {
        let wrong_version = HandshakeError::UnsupportedVersion.into_response();
        assert_eq!(wrong_version.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(wrong_version.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        let bad = HandshakeError::NoUpgradeWebsocket.into_response();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.headers().get(header::SEC_WEBSOCKET_VERSION).is_none());
        assert_eq!(HandshakeError::MethodNotGet.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(HandshakeError::BadKey.status(), StatusCode::BAD_REQUEST);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn config() -> ProptestConfig {
            let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
            ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
        }

        /// A control message a client may send.
        fn control() -> impl Strategy<Value = Message> {
            let payload = || prop::collection::vec(any::<u8>(), 0..=MAX_CONTROL_PAYLOAD).prop_map(Bytes::from);
            prop_oneof![
                payload().prop_map(Message::Ping),
                payload().prop_map(Message::Pong),
                Just(Message::Close(None)),
                (prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999], "[a-zé✓]{0,40}")
                    .prop_map(|(code, reason)| Message::Close(Some((code, reason)))),
            ]
        }

        /// A data message, sometimes long enough for a 16- or 64-bit length.
        fn data() -> impl Strategy<Value = Message> {
            prop_oneof![
                4 => "\\PC{0,200}".prop_map(|s: String| Message::Text(s.into())),
                4 => prop::collection::vec(any::<u8>(), 0..600).prop_map(|v| Message::Binary(v.into())),
                1 => (65_530usize..66_000, any::<u8>()).prop_map(|(n, b)| Message::Binary(vec![b; n].into())),
            ]
        }

        /// A data message as fragments (cut points, sorted) with controls after some of
        /// them, or a lone control message.
        #[derive(Debug, Clone)]
        enum Item {
            Data { message: Message, cuts: Vec<usize>, between: Vec<Option<Message>> },
            Control(Message),
        }

        fn item() -> impl Strategy<Value = Item> {
            prop_oneof![
                3 => (data(), prop::collection::vec(any::<prop::sample::Index>(), 0..4), prop::collection::vec(prop::option::weighted(0.3, control()), 0..4))
                    .prop_map(|(message, idx, between)| {
                        let len = match &message {
                            Message::Text(b) | Message::Binary(b) => b.len(),
                            _ => 0,
                        };
                        let mut cuts: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
                        cuts.sort_unstable();
                        Item::Data { message, cuts, between }
                    }),
                1 => control().prop_map(Item::Control),
            ]
        }

        fn encode_control(out: &mut Vec<u8>, m: &Message, mask: [u8; 4]) {
            let (op, payload) = match m {
                Message::Ping(p) => (0x9, p.to_vec()),
                Message::Pong(p) => (0xA, p.to_vec()),
                Message::Close(None) => (0x8, Vec::new()),
                Message::Close(Some((code, reason))) => {
                    let mut p = code.to_be_bytes().to_vec();
                    p.extend_from_slice(reason.as_bytes());
                    (0x8, p)
                }
                _ => unreachable!("not a control message"),
            };
            out.extend(client_frame(op, true, &payload, mask));
        }

        /// The wire bytes of `items` and the messages a parser must yield, in order.
        fn encode(items: &[Item], masks: &[[u8; 4]]) -> (Vec<u8>, Vec<Message>) {
            let (mut out, mut expected, mut k) = (Vec::new(), Vec::new(), 0);
            let mut mask = || {
                k += 1;
                masks[k % masks.len()]
            };
            for item in items {
                match item {
                    Item::Control(m) => {
                        encode_control(&mut out, m, mask());
                        expected.push(m.clone());
                    }
                    Item::Data { message, cuts, between } => {
                        let (op, payload) = match message {
                            Message::Text(b) => (0x1, b),
                            Message::Binary(b) => (0x2, b),
                            _ => unreachable!("not a data message"),
                        };
                        let mut bounds = vec![0];
                        bounds.extend(cuts);
                        bounds.push(payload.len());
                        let pieces = bounds.len() - 1;
                        for i in 0..pieces {
                            let last = i + 1 == pieces;
                            let opcode = if i == 0 { op } else { 0x0 };
                            out.extend(client_frame(opcode, last, &payload[bounds[i]..bounds[i + 1]], mask()));
                            if !last && let Some(Some(c)) = between.get(i) {
                                encode_control(&mut out, c, mask());
                                expected.push(c.clone());
                            }
                        }
                        expected.push(message.clone());
                    }
                }
            }
            (out, expected)
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn fragmented_masked_chunked_messages_come_out_whole(
                items in prop::collection::vec(item(), 0..8),
                masks in prop::collection::vec(any::<[u8; 4]>(), 1..4),
                chunks in prop::collection::vec(1usize..3000, 1..8),
            ) {
                let (bytes, expected) = encode(&items, &masks);
                let got = feed(&mut FrameParser::new(1 << 20), &bytes, &chunks);
                prop_assert_eq!(got.expect("valid stream"), expected);
            }

            #[test]
            fn arbitrary_bytes_never_panic(
                bytes in prop::collection::vec(any::<u8>(), 0..512),
                chunks in prop::collection::vec(1usize..64, 1..8),
                max in 0usize..300,
            ) {
                let _ = feed(&mut FrameParser::new(max), &bytes, &chunks);
            }

            #[test]
            fn masked_garbage_after_a_valid_header_never_panics(
                header in (0u8..=255, 0u8..=127),
                rest in prop::collection::vec(any::<u8>(), 0..300),
            ) {
                // Set the mask bit so parsing gets past the first check most of the time.
                let mut bytes = vec![header.0, 0x80 | header.1];
                bytes.extend(rest);
                let _ = feed(&mut FrameParser::new(200), &bytes, &[7]);
            }
        }
    }

    // --- WsSocket over loopback TCP ---

    /// A connected (server side, client side) pair on 127.0.0.1.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (accepted.expect("accept").0, client.expect("connect"))
    }

    async fn socket_pair(max: usize) -> (WsSocket, TcpStream) {
        let (server, client) = tcp_pair().await;
        (WsSocket::new(server, &[], max, drop), client)
    }

    async fn within<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(TEST_TIMEOUT, f).await.expect("test timed out")
    }

    #[tokio::test]
    async fn reads_messages_sent_in_pieces_with_delays() {
        within(async {
            let (mut ws, mut client) = socket_pair(1 << 20).await;
            let mut bytes = client_frame(0x1, true, b"first", MASK);
            bytes.extend(client_frame(0x2, false, &[1; 5000], MASK));
            bytes.extend(client_frame(0x9, true, b"between", MASK));
            bytes.extend(client_frame(0x0, true, &[2; 3000], MASK));
            let writer = tokio::spawn(async move {
                for piece in bytes.chunks(1777) {
                    client.write_all(piece).await.expect("write");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                client
            });
            assert_eq!(ws.read_message().await.expect("first"), text("first"));
            assert_eq!(ws.read_message().await.expect("ping"), Message::Ping(Bytes::from_static(b"between")));
            let mut want = vec![1; 5000];
            want.extend([2; 3000]);
            assert_eq!(ws.read_message().await.expect("binary"), Message::Binary(want.into()));
            assert_eq!(ws.read_buffer_capacity(), 0, "no partial frame left, no buffer");
            drop(writer.await.expect("writer"));
            assert!(matches!(ws.read_message().await, Err(WsError::Closed)));
        })
        .await;
    }

    #[tokio::test]
    async fn read_message_survives_being_cancelled_mid_frame() {
        within(async {
            let (mut ws, mut client) = socket_pair(4 << 20).await;
            let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
            let mut bytes = client_frame(0x2, true, &big, MASK);
            bytes.extend(client_frame(0x1, true, b"after", MASK));
            let writer = tokio::spawn(async move {
                for piece in bytes.chunks(50_000) {
                    client.write_all(piece).await.expect("write");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                client
            });
            let mut got = Vec::new();
            let mut cancelled = 0;
            while got.len() < 2 {
                tokio::select! {
                    m = ws.read_message() => got.push(m.expect("message")),
                    () = tokio::time::sleep(Duration::from_micros(500)) => cancelled += 1,
                }
            }
            assert!(cancelled > 5, "the read was cancelled only {cancelled} times");
            assert_eq!(got, [Message::Binary(big.into()), text("after")]);
            assert_eq!(ws.read_buffer_capacity(), 0);
            drop(writer.await.expect("writer"));
        })
        .await;
    }

    #[tokio::test]
    async fn a_waiting_connection_holds_no_buffer() {
        within(async {
            let (mut ws, mut client) = socket_pair(1024).await;
            // Nothing has arrived: a parked read holds nothing.
            let idle = tokio::time::timeout(Duration::from_millis(20), ws.read_message()).await;
            assert!(idle.is_err());
            assert_eq!(ws.read_buffer_capacity(), 0);
            // Part of a frame: held until the rest arrives.
            let frame = client_frame(0x1, true, b"hello", MASK);
            client.write_all(&frame[..4]).await.expect("write");
            let partial = tokio::time::timeout(Duration::from_millis(50), ws.read_message()).await;
            assert!(partial.is_err());
            assert!(ws.read_buffer_capacity() > 0);
            client.write_all(&frame[4..]).await.expect("write");
            assert_eq!(ws.read_message().await.expect("hello"), text("hello"));
            assert_eq!(ws.read_buffer_capacity(), 0);
        })
        .await;
    }

    #[tokio::test]
    async fn bytes_read_before_the_upgrade_come_first() {
        within(async {
            let (server, mut client) = tcp_pair().await;
            let mut early = client_frame(0x1, true, b"early", MASK);
            early.extend(&client_frame(0x1, true, b"split", MASK)[..3]);
            let mut ws = WsSocket::new(server, &early, 1024, drop);
            assert_eq!(ws.read_message().await.expect("early"), text("early"));
            client.write_all(&client_frame(0x1, true, b"split", MASK)[3..]).await.expect("write");
            assert_eq!(ws.read_message().await.expect("split"), text("split"));
        })
        .await;
    }

    #[tokio::test]
    async fn errors_surface_with_their_close_codes() {
        within(async {
            let (mut ws, mut client) = socket_pair(100).await;
            // The header alone (16-bit length and mask): no payload needed to refuse it.
            client.write_all(&client_frame(0x2, true, &[0; 1000], MASK)[..8]).await.expect("write");
            let err = ws.read_message().await.expect_err("too big");
            assert!(matches!(err, WsError::TooBig));
            assert_eq!(err.close_code(), Some(1009));

            let (mut ws, mut client) = socket_pair(100).await;
            client.write_all(&[0x81, 0x01, b'x']).await.expect("write");
            assert!(matches!(ws.read_message().await, Err(WsError::Protocol(_))));

            // EOF in the middle of a frame.
            let (mut ws, mut client) = socket_pair(100).await;
            client.write_all(&client_frame(0x1, true, b"cut short", MASK)[..8]).await.expect("write");
            drop(client);
            let err = ws.read_message().await.expect_err("closed");
            assert!(matches!(err, WsError::Closed));
            assert_eq!(err.close_code(), None);
        })
        .await;
    }

    #[tokio::test]
    async fn vectored_writes_arrive_whole_through_partial_writes() {
        within(async {
            let (mut ws, mut client) = socket_pair(1024).await;
            let big = Bytes::from((0..8_000_000u32).map(|i| (i % 241) as u8).collect::<Vec<u8>>());
            let mut scratch = Vec::new();
            put_frame(&mut scratch, Opcode::Text, b"reply");
            let mut big_header = Vec::new();
            put_header(&mut big_header, Opcode::Binary, big.len());
            let shared = Bytes::from_static(b"\x81\x03pub");
            let mut want = Vec::new();
            for part in [&shared[..], &scratch, &[], &big_header, &big, &shared] {
                want.extend_from_slice(part);
            }
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match client.read(&mut buf).await.expect("read") {
                        0 => break got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                    // Slow reader: the server's socket buffer fills and writes go partial.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let slices =
                [IoSlice::new(&shared), IoSlice::new(&scratch), IoSlice::new(&[]), IoSlice::new(&big_header), IoSlice::new(&big), IoSlice::new(&shared)];
            ws.write_all_vectored(&slices).await.expect("write");
            // More slices than writev takes at once (IOV_MAX is 1024 on Linux).
            let small: Vec<Vec<u8>> = (0..3000u32).map(|i| i.to_be_bytes().to_vec()).collect();
            let many: Vec<IoSlice<'_>> = small.iter().map(|s| IoSlice::new(s)).collect();
            ws.write_all_vectored(&many).await.expect("write many");
            for s in &small {
                want.extend_from_slice(s);
            }
            ws.write_all(b"end").await.expect("write");
            want.extend_from_slice(b"end");
            ws.shutdown().await.expect("shutdown");
            let got = reader.await.expect("reader");
            assert_eq!(got.len(), want.len());
            assert!(got == want, "bytes differ");
            ws.write_all_vectored(&[]).await.expect("nothing to write");
        })
        .await;
    }

    static DROPPED: AtomicUsize = AtomicUsize::new(0);

    fn count_drop(stream: TcpStream) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
        drop(stream);
    }

    #[tokio::test]
    async fn dropping_hands_the_socket_to_on_drop() {
        let (server, _client) = tcp_pair().await;
        let ws = WsSocket::new(server, &[], 10, count_drop);
        assert!(ws.peer_addr().is_ok());
        drop(ws);
        assert_eq!(DROPPED.load(Ordering::SeqCst), 1);
    }

    /// Reads an HTTP request head by hand: method, headers, and the bytes after it.
    async fn read_request(stream: &mut TcpStream) -> (Method, HeaderMap, Vec<u8>) {
        let mut raw = Vec::new();
        let end = loop {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "eof in the request");
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = std::str::from_utf8(&raw[..end]).expect("ascii head");
        let mut lines = head.split("\r\n");
        let method = lines.next().and_then(|l| l.split(' ').next()).expect("request line");
        let mut headers = HeaderMap::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').expect("header line");
            headers.append(
                header::HeaderName::from_bytes(name.trim().as_bytes()).expect("name"),
                HeaderValue::from_str(value.trim()).expect("value"),
            );
        }
        (Method::from_bytes(method.as_bytes()).expect("method"), headers, raw[end..].to_vec())
    }

    #[tokio::test]
    async fn a_tungstenite_client_talks_to_ws_socket() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as TMessage;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

        within(async {
            let (mut server, client) = tcp_pair().await;
            let client = tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::client_async("ws://127.0.0.1/connection/websocket", client).await.expect("handshake");
                ws.send(TMessage::text("hello")).await.expect("text");
                ws.send(TMessage::Ping(Bytes::from_static(b"p"))).await.expect("ping");
                ws.send(TMessage::binary(vec![9u8; 100_000])).await.expect("binary");
                let reply = ws.next().await.expect("reply").expect("reply");
                assert_eq!(reply, TMessage::text("world"));
                let big = ws.next().await.expect("big").expect("big");
                assert_eq!(big, TMessage::binary(vec![5u8; 70_000]));
                ws.send(TMessage::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).await.expect("close");
                // Our close answer completes the handshake.
                let mut answered = None;
                while let Some(Ok(m)) = ws.next().await {
                    if let TMessage::Close(frame) = m {
                        answered = frame.map(|f| u16::from(f.code));
                    }
                }
                answered
            });

            let (method, headers, rest) = read_request(&mut server).await;
            let accept = check_upgrade(&method, &headers).expect("a valid handshake");
            let response = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
            server.write_all(response.as_bytes()).await.expect("101");
            let mut ws = WsSocket::new(server, &rest, 1 << 20, drop);

            assert_eq!(ws.read_message().await.expect("text"), text("hello"));
            assert_eq!(ws.read_message().await.expect("ping"), Message::Ping(Bytes::from_static(b"p")));
            assert_eq!(ws.read_message().await.expect("binary"), Message::Binary(vec![9u8; 100_000].into()));

            let mut scratch = Vec::new();
            put_frame(&mut scratch, Opcode::Text, b"world");
            let payload = Bytes::from(vec![5u8; 70_000]);
            let mut header = Vec::new();
            put_header(&mut header, Opcode::Binary, payload.len());
            ws.write_all_vectored(&[IoSlice::new(&scratch), IoSlice::new(&header), IoSlice::new(&payload)]).await.expect("write");

            assert_eq!(ws.read_message().await.expect("close"), Message::Close(Some((1000, "bye".into()))));
            let mut close = Vec::new();
            put_close(&mut close, 1000, "");
            ws.write_all(&close).await.expect("close answer");
            ws.shutdown().await.expect("shutdown");
            assert_eq!(client.await.expect("client"), Some(1000));
        })
        .await;
    }

    #[tokio::test]
    async fn upgraded_stream_takes_the_socket_out_of_hyper() {
        use hyper_util::rt::{TokioExecutor, TokioIo};

        within(async {
            let (server, mut client) = tcp_pair().await;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let tx = std::sync::Mutex::new(Some(tx));
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let response = check_upgrade(req.method(), req.headers()).and_then(|a| switching_protocols(&a));
                let upgrade = hyper::upgrade::on(&mut req);
                let tx = tx.lock().expect("lock").take();
                tokio::spawn(async move {
                    let upgraded = upgrade.await.expect("upgraded");
                    let parts = upgraded_stream(upgraded, |io: TokioIo<TcpStream>| Ok(io.into_inner()));
                    if let (Some(tx), Ok(parts)) = (tx, parts) {
                        let _ = tx.send(parts);
                    }
                });
                async move { Ok::<_, std::convert::Infallible>(response.unwrap_or_else(IntoResponse::into_response)) }
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection_with_upgrades(TokioIo::new(server), service).await;
            });

            // The request and the first frame in one write: hyper reads past the request.
            let mut first = b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                .to_vec();
            first.extend(client_frame(0x1, true, b"in the same packet", MASK));
            client.write_all(&first).await.expect("request");

            let (stream, read_buf) = rx.await.expect("the upgrade yields the socket");
            assert!(!read_buf.is_empty(), "hyper read the first frame with the request");
            let mut ws = WsSocket::new(stream, &read_buf, 1024, drop);
            assert_eq!(ws.read_message().await.expect("message"), text("in the same packet"));
            ws.write_all(&[0x81, 2, b'o', b'k']).await.expect("write");

            let mut response = Vec::new();
            while !response.ends_with(&[0x81, 2, b'o', b'k']) {
                let mut buf = [0u8; 512];
                let n = client.read(&mut buf).await.expect("read");
                assert!(n > 0, "eof before the frame");
                response.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 101"), "{head}");
            assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
        })
        .await;
    }
}
