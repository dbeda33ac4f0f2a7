//! The codec seam: the wire formats a connection may speak, and the one place that turns a
//! publication into the bytes of its push in each of them.
//!
//! Fan-out (`hub`) keeps one cache slot per codec on every publication and asks for bytes
//! by [`Codec`], never naming a format: adding one (Protobuf next) is a variant here, its
//! [`Codec::encode_publication`] arm and nothing in the hub. The set of formats is closed
//! and small, so this is an enum with exhaustive matches rather than a trait object: a new
//! variant cannot be forgotten in any of them, and dispatch costs one branch.

use std::sync::Arc;

use bytes::Bytes;

use super::{Command, CommandBody, Publication, Push, framing, json, native};

/// Why a frame's commands could not be decoded (the driver closes with 3501).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Malformed Centrifugo JSON.
    #[error(transparent)]
    Json(#[from] json::DecodeError),
    /// Malformed native (postcard) command.
    #[error(transparent)]
    Native(#[from] native::DecodeError),
    /// A frame with no command in it.
    #[error("empty frame")]
    Empty,
}

/// A publication's push in one codec, with the framing its stream transports put around
/// every message already in front: a WebSocket frame header for the JSON codecs (what a
/// WebSocket subscriber writes as is), a varint length for the native codec (what a
/// subscription stream writes as is). Transports with another framing take [`Framed::body`].
#[derive(Debug, Clone)]
pub struct Framed {
    bytes: Bytes,
    header: usize,
}

impl Framed {
    /// Header and body, shared by every subscriber (a cheap clone).
    pub fn frame(&self) -> &Bytes {
        &self.bytes
    }

    /// The encoded message alone.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.header..]
    }

    /// The encoded message alone, as shared bytes.
    pub fn body_bytes(&self) -> Bytes {
        self.bytes.slice(self.header..)
    }
}

/// Wire formats a connection may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Centrifugo JSON, pushes wrapped in `{"push":…}` (bidirectional transports).
    Json,
    /// Centrifugo JSON, bare push objects (unidirectional transports).
    JsonUni,
    /// Tidewire native (postcard): the publication body without length prefix or
    /// subscription id, which each connection's stream or datagram adds.
    Native,
}

impl Codec {
    /// How many codecs there are: the size of a per-publication cache.
    pub const COUNT: usize = 3;

    /// This codec's index in a per-publication cache (`0..COUNT`, one per codec).
    pub fn slot(self) -> usize {
        match self {
            Self::Json => 0,
            Self::JsonUni => 1,
            Self::Native => 2,
        }
    }

    /// The bytes of `publication`'s push in this codec, as fan-out shares them: `cost`
    /// is the caller's estimate of the encoded size (a capacity hint).
    pub fn encode_publication(self, publication: &Arc<Publication>, cost: usize) -> Bytes {
        match self {
            Self::Json | Self::JsonUni => {
                let mut out = Vec::with_capacity(cost + 16);
                json::encode_push(&mut out, &Push::Publication(publication.clone()), self == Self::Json);
                Bytes::from(out)
            }
            Self::Native => Bytes::from(native::encode_publication(publication)),
        }
    }

    /// Decodes one inbound message (a WebSocket frame, a stream line, a native frame) into
    /// commands, appended to `out` in order: newline-joined commands for [`Codec::Json`];
    /// a bare connect request (an empty message is an empty request) for
    /// [`Codec::JsonUni`], which becomes `connect` with id 1; one command for
    /// [`Codec::Native`].
    pub fn decode_commands(self, frame: &[u8], out: &mut Vec<Command>) -> Result<(), DecodeError> {
        match self {
            Self::Json => {
                let before = out.len();
                for line in framing::lines(frame) {
                    out.push(json::decode_command(line)?);
                }
                if out.len() == before {
                    return Err(DecodeError::Empty);
                }
            }
            Self::JsonUni => {
                let req = json::decode_connect_request(frame)?;
                out.push(Command { id: 1, body: CommandBody::Connect(req) });
            }
            Self::Native => out.push(native::decode_command(frame)?),
        }
        Ok(())
    }

    /// [`Codec::encode_publication`] with this codec's stream framing in front (see
    /// [`Framed`]). The body is encoded once and the header written before it in the same
    /// buffer, so the frame costs one allocation and no copy of the body.
    pub fn frame_publication(self, publication: &Arc<Publication>, cost: usize) -> Framed {
        let body = self.encode_publication(publication, cost);
        let mut out = Vec::with_capacity(body.len() + 10);
        match self {
            Self::Json | Self::JsonUni => framing::put_ws_header(&mut out, framing::WS_TEXT, body.len()),
            Self::Native => framing::put_varint(&mut out, body.len()),
        }
        let header = out.len();
        out.extend_from_slice(&body);
        Framed { bytes: Bytes::from(out), header }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_in_range() {
        let all = [Codec::Json, Codec::JsonUni, Codec::Native];
        let mut seen = [false; Codec::COUNT];
        for c in all {
            assert!(!std::mem::replace(&mut seen[c.slot()], true), "{c:?} shares a slot");
        }
    }

    #[test]
    fn json_pushes_are_wrapped_for_bidirectional_transports_only() {
        let p = Arc::new(Publication { channel: "c".into(), data: Bytes::from_static(b"1"), ..Default::default() });
        assert_eq!(&Codec::Json.encode_publication(&p, 0)[..], br#"{"push":{"channel":"c","pub":{"data":1}}}"#);
        assert_eq!(&Codec::JsonUni.encode_publication(&p, 0)[..], br#"{"channel":"c","pub":{"data":1}}"#);
        assert_eq!(&Codec::Native.encode_publication(&p, 0)[..], &native::encode_publication(&p)[..]);
    }

    #[test]
    fn decoding_follows_each_codec() {
        let mut out = Vec::new();
        Codec::Json.decode_commands(b"{\"id\":1,\"connect\":{}}\n{\"id\":2,\"ping\":{}}", &mut out).expect("json");
        assert_eq!(out.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
        assert!(matches!(Codec::Json.decode_commands(b"\n", &mut out), Err(DecodeError::Empty)));
        assert!(matches!(Codec::Json.decode_commands(b"{nope", &mut out), Err(DecodeError::Json(_))));
        out.clear();
        Codec::JsonUni.decode_commands(b"", &mut out).expect("an empty uni request is an empty connect");
        Codec::JsonUni.decode_commands(br#"{"token":"t"}"#, &mut out).expect("uni");
        assert!(matches!(&out[1], Command { id: 1, body: CommandBody::Connect(r) } if r.token == "t"));
        assert!(Codec::JsonUni.decode_commands(b"[1]", &mut out).is_err());
        assert!(matches!(Codec::Native.decode_commands(&[0xff, 0xff], &mut out), Err(DecodeError::Native(_))));
    }

    #[test]
    fn frames_carry_their_transport_header_before_the_same_body() {
        let p = Arc::new(Publication { channel: "c".into(), data: Bytes::from_static(b"1"), ..Default::default() });
        let json = Codec::Json.frame_publication(&p, 0);
        assert_eq!(json.body(), &Codec::Json.encode_publication(&p, 0)[..]);
        assert_eq!(&json.frame()[..2], &[0x81, json.body().len() as u8]);
        let native = Codec::Native.frame_publication(&p, 0);
        assert_eq!(native.frame()[0] as usize, native.body().len(), "one-byte varint length");
        assert_eq!(&native.body_bytes()[..], native.body());
    }
}
