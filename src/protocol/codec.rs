//! The codec seam: the wire formats a connection may speak, and the one place that turns a
//! publication into the bytes of its push in each of them.
//!
//! Fan-out (`hub`) keeps one cache slot per codec on every publication and asks for bytes
//! by [`Codec`], never naming a format: adding one is a variant here, its
//! [`Codec::encode_publication`] arm and nothing in the hub. The set of formats is closed
//! and small, so this is an enum with exhaustive matches rather than a trait object: a new
//! variant cannot be forgotten in any of them, and dispatch costs one branch.

use std::sync::Arc;

use bytes::Bytes;

use super::{Command, CommandBody, Publication, Push, Reply, ReplyBody, framing, json, native, protobuf};

/// Why a frame's commands could not be decoded (the driver closes with 3501).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Malformed Centrifugo JSON.
    #[error(transparent)]
    Json(#[from] json::DecodeError),
    /// Malformed native (postcard) command.
    #[error(transparent)]
    Native(#[from] native::DecodeError),
    /// Malformed Centrifugo Protobuf (a bad length prefix, a message prost refuses).
    #[error(transparent)]
    Protobuf(#[from] protobuf::DecodeError),
    /// A frame with no command in it.
    #[error("empty frame")]
    Empty,
}

/// A publication's push in one codec, with the framing its stream transports put around
/// every message already in front: a WebSocket frame header for the Centrifugo codecs
/// (what a WebSocket subscriber writes as is: a text frame for JSON, a binary one for
/// Protobuf, whose body is already varint-delimited), a varint length for the native
/// codec (what a subscription stream writes as is). Transports with another framing take
/// [`Framed::body`].
#[derive(Debug, Clone)]
pub struct Framed {
    bytes: Bytes,
    header: usize,
    fits: bool,
}

impl Framed {
    /// A publication this codec cannot carry (see [`Framed::fits`]).
    const UNFIT: Self = Self { bytes: Bytes::new(), header: 0, fits: false };

    /// Whether this codec can carry the publication at all: false for a JSON codec and
    /// data that is not JSON (binary published through the API's `b64data`, or by a
    /// Protobuf client). The connection that would receive it is closed with 3506, as
    /// Centrifugo does; the bytes are then empty.
    pub fn fits(&self) -> bool {
        self.fits
    }

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
    /// Centrifugo Protobuf, every message varint-delimited, pushes wrapped in a Reply
    /// (bidirectional transports: WebSocket, HTTP-streaming, WebTransport compatible mode).
    Protobuf,
}

impl Codec {
    /// How many codecs there are: the size of a per-publication cache.
    pub const COUNT: usize = 4;

    /// This codec's index in a per-publication cache (`0..COUNT`, one per codec).
    pub fn slot(self) -> usize {
        match self {
            Self::Json => 0,
            Self::JsonUni => 1,
            Self::Native => 2,
            Self::Protobuf => 3,
        }
    }

    /// Whether this codec writes binary (a WebSocket binary frame, an octet stream).
    pub fn is_binary(self) -> bool {
        matches!(self, Self::Native | Self::Protobuf)
    }

    /// Whether this codec can carry `reply`: false for a JSON codec when a publication in
    /// it holds data that is not JSON (see [`Framed::fits`]; the connection gets 3506).
    pub fn fits_reply(self, reply: &Reply) -> bool {
        if !matches!(self, Self::Json | Self::JsonUni) {
            return true;
        }
        let pubs: &[super::PublicationRef] = match &reply.body {
            ReplyBody::Subscribe(r) => &r.publications,
            ReplyBody::History(h) => &h.publications,
            ReplyBody::Connect(c) => return c.subs.values().all(|s| s.publications.iter().all(|p| json::is_json(&p.data))),
            _ => return true,
        };
        pubs.iter().all(|p| json::is_json(&p.data))
    }

    /// Whether this codec can carry `push` (see [`Codec::fits_reply`]).
    pub fn fits_push(self, push: &Push) -> bool {
        if !matches!(self, Self::Json | Self::JsonUni) {
            return true;
        }
        match push {
            Push::Publication(p) => json::is_json(&p.data),
            Push::Message(data) => json::is_json(data),
            Push::Connect(c) => c.subs.values().all(|s| s.publications.iter().all(|p| json::is_json(&p.data))),
            _ => true,
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
            Self::Protobuf => Bytes::from(protobuf::encode_publication(publication)),
        }
    }

    /// Decodes one inbound message (a WebSocket frame, a stream line, a native frame) into
    /// commands, appended to `out` in order: newline-joined commands for [`Codec::Json`];
    /// a bare connect request (an empty message is an empty request) for
    /// [`Codec::JsonUni`], which becomes `connect` with id 1; one command for
    /// [`Codec::Native`]; varint-delimited commands for [`Codec::Protobuf`].
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
            Self::Protobuf => protobuf::decode_commands(frame, out)?,
        }
        Ok(())
    }

    /// [`Codec::encode_publication`] with this codec's stream framing in front (see
    /// [`Framed`]). The body is encoded once and the header written before it in the same
    /// buffer, so the frame costs one allocation and no copy of the body.
    pub fn frame_publication(self, publication: &Arc<Publication>, cost: usize) -> Framed {
        if !self.fits_push(&Push::Publication(publication.clone())) {
            return Framed::UNFIT;
        }
        self.frame(&self.encode_publication(publication, cost))
    }

    /// The push of `publication` for a subscription that negotiated delta compression,
    /// framed: `patch` (the publication with a fossil patch as its data, marked `delta`)
    /// when there is one and this codec can carry it, the full publication otherwise. The
    /// JSON codecs write `data` as a JSON string either way (the SDKs parse it; a patch
    /// that is not UTF-8 text goes as the full payload); the binary ones write the bytes.
    pub fn frame_delta_publication(self, publication: &Arc<Publication>, patch: Option<&Arc<Publication>>, cost: usize) -> Framed {
        match self {
            Self::Json | Self::JsonUni => {
                if !json::is_json(&publication.data) {
                    return Framed::UNFIT;
                }
                let chosen = patch.filter(|p| json::is_delta_text(&p.data)).unwrap_or(publication);
                let mut out = Vec::with_capacity(cost + 32);
                json::encode_delta_publication_push(&mut out, chosen, self == Self::Json);
                self.frame(&out)
            }
            Self::Native | Self::Protobuf => self.frame_publication(patch.unwrap_or(publication), cost),
        }
    }

    /// `body` with this codec's stream framing in front, in one buffer.
    fn frame(self, body: &[u8]) -> Framed {
        let mut out = Vec::with_capacity(body.len() + 10);
        match self {
            Self::Json | Self::JsonUni => framing::put_ws_header(&mut out, framing::WS_TEXT, body.len()),
            Self::Protobuf => framing::put_ws_header(&mut out, framing::WS_BINARY, body.len()),
            Self::Native => framing::put_varint(&mut out, body.len()),
        }
        let header = out.len();
        out.extend_from_slice(body);
        Framed { bytes: Bytes::from(out), header, fits: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_in_range() {
        let all = [Codec::Json, Codec::JsonUni, Codec::Native, Codec::Protobuf];
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
        let pb = Codec::Protobuf.frame_publication(&p, 0);
        assert_eq!(pb.frame()[0], 0x82, "a binary WebSocket frame");
        assert_eq!(pb.body(), &protobuf::encode_publication(&p)[..], "the body is the delimited push");
    }

    #[test]
    fn json_codecs_do_not_carry_binary_data_and_protobuf_carries_it_untouched() {
        let bin = Arc::new(Publication { channel: "c".into(), data: Bytes::from_static(&[0xff, 0, 1]), ..Default::default() });
        for codec in [Codec::Json, Codec::JsonUni] {
            let f = codec.frame_publication(&bin, 0);
            assert!(!f.fits() && f.frame().is_empty(), "{codec:?}");
            let reply = Reply {
                id: 1,
                body: ReplyBody::History(super::super::HistoryResult { publications: vec![bin.clone()], ..Default::default() }),
            };
            assert!(!codec.fits_reply(&reply));
            assert!(!codec.fits_push(&Push::Message(Bytes::from_static(b"\xff"))));
            assert!(codec.fits_push(&Push::Message(Bytes::from_static(b"[1]"))));
        }
        let f = Codec::Protobuf.frame_publication(&bin, 0);
        assert!(f.fits());
        let mut out = Vec::new();
        Codec::Protobuf.decode_commands(&[0], &mut out).expect("an empty command");
        assert_eq!(out[0].body, CommandBody::Empty, "an empty Protobuf command is the pong");
        let json = Arc::new(Publication { channel: "c".into(), data: Bytes::from_static(b"{\"a\":1}"), ..Default::default() });
        assert!(Codec::Json.frame_publication(&json, 0).fits());
    }

    #[test]
    fn delta_subscribers_get_json_data_as_a_string_and_patches_marked_delta() {
        let full = Arc::new(Publication { channel: "c".into(), data: Bytes::from_static(b"{\"a\":1}"), offset: 2, ..Default::default() });
        let patch = Arc::new(Publication { data: Bytes::from_static(b"7\n2@0,1:2;"), delta: true, ..(*full).clone() });
        let f = Codec::Json.frame_delta_publication(&full, None, 0);
        assert_eq!(f.body(), br#"{"push":{"channel":"c","pub":{"data":"{\"a\":1}","offset":2}}}"#);
        let f = Codec::Json.frame_delta_publication(&full, Some(&patch), 0);
        assert_eq!(f.body(), br#"{"push":{"channel":"c","pub":{"data":"7\n2@0,1:2;","offset":2,"delta":true}}}"#);
        // A patch that is not UTF-8 text cannot be a JSON string: the full payload goes.
        let binary = Arc::new(Publication { data: Bytes::from_static(b"1:\xff"), delta: true, ..(*full).clone() });
        let f = Codec::Json.frame_delta_publication(&full, Some(&binary), 0);
        assert!(!f.body().windows(5).any(|w| w == b"delta"));
        // Binary codecs carry the patch's bytes as they are.
        let f = Codec::Protobuf.frame_delta_publication(&full, Some(&binary), 0);
        assert_eq!(f.body(), Codec::Protobuf.frame_publication(&binary, 0).body());
        assert!(!Codec::Json.frame_delta_publication(&Arc::new(Publication { data: Bytes::from_static(&[0xff]), ..Default::default() }), None, 0).fits());
    }
}
