//! Finding message boundaries, checked before anything is parsed.
//!
//! Two shapes: a whole transport frame holding newline-joined JSON messages (WebSocket,
//! HTTP bodies), and a byte stream where messages arrive in pieces (WebTransport, QUIC).
//! Both check the size limit before they allocate, and a stream decoder consumes bytes
//! only once a whole message is there, so a partial message costs nothing to retry.

/// Why a frame or stream could not be split into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message (or a partial one still growing) is larger than the limit.
    #[error("message over the size limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Iterates the non-empty lines of a frame of newline-joined messages, without copying.
/// Surrounding ASCII whitespace (`\r` included) is trimmed from each line.
pub fn lines(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    frame.split(|b| *b == b'\n').map(<[u8]>::trim_ascii).filter(|line| !line.is_empty())
}

/// Outcome of checking a stream buffer for the next newline-terminated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineCheck {
    /// A whole message occupies `buf[..len]`; the terminator is at `len`.
    Complete {
        /// Length of the message without its terminator.
        len: usize,
    },
    /// More bytes are needed.
    Incomplete,
}

/// Checks whether `buf` starts with a whole `\n`-terminated message no longer than `limit`.
/// Empty lines are messages of length 0; callers skip them.
pub fn check_line(buf: &[u8], limit: usize) -> Result<LineCheck, FrameError> {
    let window = &buf[..buf.len().min(limit.saturating_add(1))];
    match window.iter().position(|b| *b == b'\n') {
        Some(len) => Ok(LineCheck::Complete { len }),
        None if buf.len() > limit => Err(FrameError::TooLarge { limit }),
        None => Ok(LineCheck::Incomplete),
    }
}

/// Outcome of checking a stream buffer for the next varint-length-prefixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintCheck {
    /// A whole message is `buf[header..header + len]`.
    Complete {
        /// Bytes taken by the length prefix.
        header: usize,
        /// Length of the message body.
        len: usize,
    },
    /// More bytes are needed.
    Incomplete,
}

/// Largest varint prefix accepted: 5 bytes encode any `u32` length.
const MAX_VARINT_BYTES: usize = 5;

/// Checks whether `buf` starts with a whole unsigned-varint-prefixed message of at most `limit` bytes.
pub fn check_varint(buf: &[u8], limit: usize) -> Result<VarintCheck, FrameError> {
    let mut len: u64 = 0;
    for (i, byte) in buf.iter().take(MAX_VARINT_BYTES).enumerate() {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let header = i + 1;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > limit {
                return Err(FrameError::TooLarge { limit });
            }
            return Ok(if buf.len() - header >= len {
                VarintCheck::Complete { header, len }
            } else {
                VarintCheck::Incomplete
            });
        }
    }
    if buf.len() >= MAX_VARINT_BYTES {
        return Err(FrameError::TooLarge { limit });
    }
    Ok(VarintCheck::Incomplete)
}

/// Appends `len` as an unsigned varint.
pub fn put_varint(out: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

/// WebSocket opcode of a text frame.
pub const WS_TEXT: u8 = 0x1;
/// WebSocket opcode of a binary frame.
pub const WS_BINARY: u8 = 0x2;

/// Length of a server (unmasked) WebSocket frame header for a `len`-byte payload.
pub fn ws_header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    }
}

/// Appends the header of a final, unmasked WebSocket frame (RFC 6455 section 5.2) with
/// `opcode` and a `len`-byte payload: what a server puts before every frame it sends.
pub fn put_ws_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | (opcode & 0x0f));
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blank_and_trim() {
        let got: Vec<&[u8]> = lines(b"{\"a\":1}\r\n\n  {}\n").collect();
        assert_eq!(got, vec![&b"{\"a\":1}"[..], &b"{}"[..]]);
    }

    #[test]
    fn check_line_partial_complete_and_oversize() {
        assert_eq!(check_line(b"{\"a\"", 10), Ok(LineCheck::Incomplete));
        assert_eq!(check_line(b"{}\n{", 10), Ok(LineCheck::Complete { len: 2 }));
        assert_eq!(check_line(b"0123456789x", 10), Err(FrameError::TooLarge { limit: 10 }));
        assert_eq!(check_line(b"0123456789\n", 10), Ok(LineCheck::Complete { len: 10 }));
    }

    #[test]
    fn websocket_headers_use_the_shortest_length_form() {
        for (len, want) in [(0, vec![0x81, 0]), (125, vec![0x81, 125]), (126, vec![0x81, 126, 0, 126])] {
            let mut out = Vec::new();
            put_ws_header(&mut out, WS_TEXT, len);
            assert_eq!(out, want);
            assert_eq!(ws_header_len(len), out.len());
        }
        let mut out = Vec::new();
        put_ws_header(&mut out, WS_BINARY, 65_536);
        assert_eq!(out, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(ws_header_len(65_535), 4);
        assert_eq!(ws_header_len(65_536), 10);
    }

    #[test]
    fn varint_round_trip_and_limits() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 300);
        buf.extend(std::iter::repeat_n(7u8, 300));
        assert_eq!(check_varint(&buf, 1000), Ok(VarintCheck::Complete { header: 2, len: 300 }));
        assert_eq!(check_varint(&buf[..100], 1000), Ok(VarintCheck::Incomplete));
        assert_eq!(check_varint(&buf, 299), Err(FrameError::TooLarge { limit: 299 }));
        assert_eq!(check_varint(&[0xff; 6], usize::MAX), Err(FrameError::TooLarge { limit: usize::MAX }));
        assert_eq!(check_varint(&[], 10), Ok(VarintCheck::Incomplete));
    }
}
