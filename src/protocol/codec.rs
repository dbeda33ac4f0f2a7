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

use super::{Publication, Push, json, native};

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
}
