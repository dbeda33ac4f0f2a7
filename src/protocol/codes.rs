//! Every wire code Tidewire sends: client error codes (in replies), unsubscribe codes
//! (in unsubscribe pushes) and disconnect codes (close frames or disconnect pushes).
//!
//! The numbers are assigned here and nowhere else; the rest of the crate names these
//! variants. Values and meanings follow Centrifugo's client protocol v2 so its SDKs react
//! as they do against Centrifugo (see shared/reference/centrifugo.md §2.7).

use std::borrow::Cow;

/// An error carried in a reply's `error` field (and in the server API's `error` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientError {
    /// 100: something failed inside the server; the client may retry.
    Internal,
    /// 101: the connection lacks the credentials for this action.
    Unauthorized,
    /// 102: the channel's namespace is not configured.
    UnknownChannel,
    /// 103: the channel's options forbid this action for this connection.
    PermissionDenied,
    /// 104: no handler for this command or method.
    MethodNotFound,
    /// 105: the connection already has this subscription.
    AlreadySubscribed,
    /// 106: a limit was reached (e.g. `client.channel_limit`).
    LimitExceeded,
    /// 107: the request is malformed or a field is out of range.
    BadRequest,
    /// 108: the feature is off for this channel (history, presence, RPC …).
    NotAvailable,
    /// 109: the token has expired; SDKs fetch a new one and retry.
    TokenExpired,
    /// 110: the connection expired (no token involved).
    Expired,
    /// 111: too many requests; the client may retry later.
    TooManyRequests,
    /// 112: the requested stream position cannot be served.
    UnrecoverablePosition,
    /// An application's own error, as its backend (a proxy) answered it: code (400–1999
    /// by convention), message and whether the client may retry. Messages are interned
    /// ([`ClientError::app`]) so the type stays `Copy` for every codec.
    App {
        /// The backend's code.
        code: u32,
        /// The backend's message.
        message: &'static str,
        /// The backend's `temporary` flag.
        temporary: bool,
    },
}

/// Distinct application error messages kept (a backend has a handful; past this many
/// the rest share [`APP_MESSAGE_OVERFLOW`]): bounds what interning can ever hold.
const MAX_APP_MESSAGES: usize = 1024;

/// Longest application error message kept, in bytes (longer ones are cut at a char
/// boundary): a message is for humans and must fit a reply comfortably.
const MAX_APP_MESSAGE_LEN: usize = 256;

/// The message of an application error once [`MAX_APP_MESSAGES`] distinct ones are kept.
const APP_MESSAGE_OVERFLOW: &str = "application error";

fn intern(message: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static KEPT: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut end = message.len().min(MAX_APP_MESSAGE_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let message = &message[..end];
    let mut kept = KEPT.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(m) = kept.get(message) {
        return m;
    }
    if kept.len() >= MAX_APP_MESSAGES {
        return APP_MESSAGE_OVERFLOW;
    }
    // Bounded above: at most MAX_APP_MESSAGES × MAX_APP_MESSAGE_LEN bytes, ever.
    let leaked: &'static str = Box::leak(message.to_owned().into_boxed_str());
    kept.insert(leaked);
    leaked
}

impl ClientError {
    /// The numeric code on the wire.
    pub fn code(self) -> u32 {
        match self {
            Self::Internal => 100,
            Self::Unauthorized => 101,
            Self::UnknownChannel => 102,
            Self::PermissionDenied => 103,
            Self::MethodNotFound => 104,
            Self::AlreadySubscribed => 105,
            Self::LimitExceeded => 106,
            Self::BadRequest => 107,
            Self::NotAvailable => 108,
            Self::TokenExpired => 109,
            Self::Expired => 110,
            Self::TooManyRequests => 111,
            Self::UnrecoverablePosition => 112,
            Self::App { code, .. } => code,
        }
    }

    /// The message Centrifugo sends with this code.
    pub fn message(self) -> &'static str {
        match self {
            Self::Internal => "internal server error",
            Self::Unauthorized => "unauthorized",
            Self::UnknownChannel => "unknown channel",
            Self::PermissionDenied => "permission denied",
            Self::MethodNotFound => "method not found",
            Self::AlreadySubscribed => "already subscribed",
            Self::LimitExceeded => "limit exceeded",
            Self::BadRequest => "bad request",
            Self::NotAvailable => "not available",
            Self::TokenExpired => "token expired",
            Self::Expired => "expired",
            Self::TooManyRequests => "too many requests",
            Self::UnrecoverablePosition => "unrecoverable position",
            Self::App { message, .. } => message,
        }
    }

    /// Whether SDKs may retry the same command.
    pub fn temporary(self) -> bool {
        match self {
            Self::App { temporary, .. } => temporary,
            _ => matches!(self, Self::Internal | Self::TooManyRequests),
        }
    }

    /// An application error (a backend's `error {code, message, temporary}`).
    pub fn app(code: u32, message: &str, temporary: bool) -> Self {
        Self::App { code, message: intern(message), temporary }
    }

    /// HTTP status for the server API's "transport" error mode.
    pub fn http_status(self) -> u16 {
        match self {
            Self::UnknownChannel | Self::MethodNotFound => 404,
            Self::BadRequest | Self::NotAvailable => 400,
            Self::UnrecoverablePosition => 416,
            _ => 500,
        }
    }
}

/// Why a subscription ends by the server's decision (pushed as `unsubscribe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeReason {
    /// 2000: the server API unsubscribed the client; terminal.
    Server,
    /// 2500: the subscriber lost its place in the stream; resubscribe and recover.
    InsufficientState,
    /// 2501: the subscription token expired; resubscribe with a new one.
    Expired,
}

impl UnsubscribeReason {
    /// The numeric code on the wire.
    pub fn code(self) -> u32 {
        match self {
            Self::Server => 2000,
            Self::InsufficientState => 2500,
            Self::Expired => 2501,
        }
    }

    /// The reason text on the wire.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Server => "server unsubscribe",
            Self::InsufficientState => "insufficient state",
            Self::Expired => "subscription expired",
        }
    }
}

/// Why the server closes a connection: a close frame on WebSocket, a disconnect push elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// The close code (3000–4999).
    pub code: u16,
    /// A short plain-text reason (under 123 bytes so it fits a WebSocket close frame).
    pub reason: Cow<'static, str>,
}

impl Disconnect {
    const fn builtin(code: u16, reason: &'static str) -> Self {
        Self { code, reason: Cow::Borrowed(reason) }
    }

    /// 3001: the server is shutting down; reconnect elsewhere or later.
    pub const SHUTDOWN: Self = Self::builtin(3001, "shutdown");
    /// 3004: an internal error ended the connection; reconnect.
    pub const INTERNAL: Self = Self::builtin(3004, "internal server error");
    /// 3005: the connection's credentials expired without a refresh.
    pub const EXPIRED: Self = Self::builtin(3005, "connection expired");
    /// 3006: a subscription expired without a refresh.
    pub const SUBSCRIPTION_EXPIRED: Self = Self::builtin(3006, "subscription expired");
    /// 3008: the client read too slowly and its queue overflowed.
    pub const SLOW: Self = Self::builtin(3008, "slow");
    /// 3009: writing to the client failed or timed out.
    pub const WRITE_ERROR: Self = Self::builtin(3009, "write error");
    /// 3010: the client missed publications it cannot get back.
    pub const INSUFFICIENT_STATE: Self = Self::builtin(3010, "insufficient state");
    /// 3011: the server asked the client to reconnect.
    pub const FORCE_RECONNECT: Self = Self::builtin(3011, "force reconnect");
    /// 3012: the client did not answer a ping in time.
    pub const NO_PONG: Self = Self::builtin(3012, "no pong");
    /// 3013: the client sent too many requests.
    pub const TOO_MANY_REQUESTS: Self = Self::builtin(3013, "too many requests");
    /// 3500: the connection token is invalid.
    pub const INVALID_TOKEN: Self = Self::builtin(3500, "invalid token");
    /// 3501: a malformed frame or a protocol violation.
    pub const BAD_REQUEST: Self = Self::builtin(3501, "bad request");
    /// 3502: the client did not connect in time.
    pub const STALE: Self = Self::builtin(3502, "stale");
    /// 3503: the server API disconnected the client.
    pub const FORCE_NO_RECONNECT: Self = Self::builtin(3503, "force disconnect");
    /// 3504: a connection limit was reached.
    pub const CONNECTION_LIMIT: Self = Self::builtin(3504, "connection limit");
    /// 3505: a server-side subscription went over `client.channel_limit`.
    pub const CHANNEL_LIMIT: Self = Self::builtin(3505, "channel limit");
    /// 3506: the client sent a frame type its protocol does not use.
    pub const INAPPROPRIATE_PROTOCOL: Self = Self::builtin(3506, "inappropriate protocol");
    /// 3507: permission denied.
    pub const PERMISSION_DENIED: Self = Self::builtin(3507, "permission denied");
    /// 3508: the command is not available (`send` without a handler).
    pub const NOT_AVAILABLE: Self = Self::builtin(3508, "not available");
    /// 3509: too many errors.
    pub const TOO_MANY_ERRORS: Self = Self::builtin(3509, "too many errors");

    /// A disconnect with an application-chosen code and reason (server API `disconnect`).
    pub fn custom(code: u16, reason: impl Into<String>) -> Self {
        let mut reason: String = reason.into();
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        Self { code, reason: Cow::Owned(reason) }
    }

    /// Whether SDKs reconnect after this code (the range rule of the protocol).
    pub fn reconnect(&self) -> bool {
        !matches!(self.code, 3500..=3999 | 4500..=4999)
    }
}

/// WebSocket close reasons must fit a 125-byte control frame with the 2-byte code.
pub const MAX_REASON_BYTES: usize = 123;

/// Close code a WebSocket sends when an inbound message is over the size limit (RFC 6455).
pub const WS_MESSAGE_TOO_BIG: u16 = 1009;

/// Close code a WebSocket sends when the peer broke the framing rules: unmasked client
/// frame, reserved bits or opcodes, an oversized or fragmented control frame (RFC 6455
/// section 7.4.1).
pub const WS_PROTOCOL_ERROR: u16 = 1002;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_follows_the_range_rule() {
        assert!(Disconnect::SHUTDOWN.reconnect());
        assert!(Disconnect::SLOW.reconnect());
        assert!(!Disconnect::INVALID_TOKEN.reconnect());
        assert!(Disconnect::custom(4000, "x").reconnect());
        assert!(!Disconnect::custom(4501, "x").reconnect());
    }

    #[test]
    fn custom_reason_is_cut_on_a_char_boundary() {
        let d = Disconnect::custom(4000, "é".repeat(100));
        assert!(d.reason.len() <= MAX_REASON_BYTES);
        assert!(d.reason.chars().all(|c| c == 'é'));
    }
}
