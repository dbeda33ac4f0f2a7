//! A publication as fan-out carries it: the model record behind one `Arc`, plus the bytes
//! of its push in each codec, encoded by the first subscriber that needs them and shared
//! (as cheap `Bytes` clones) by every other one. Nothing here is per subscriber, and no
//! wire format is named: the cache is keyed by [`Codec`], which encodes (the codec seam,
//! `protocol::codec`).

use std::sync::{Arc, OnceLock};

use crate::protocol::codec::{Codec, Framed};
use crate::protocol::Publication;

/// How long a connection may hold a publication to send it with the next ones (the
/// namespace's `batch_max_delay` / `batch_max_size`); zero delay: send at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coalesce {
    /// Longest hold, in ms.
    pub max_delay_ms: u32,
    /// Send once this many messages are held (0: no count limit).
    pub max_size: u32,
}

/// A publication shared by every subscriber it is delivered to.
#[derive(Debug)]
pub struct SharedPublication {
    /// The record.
    pub publication: Arc<Publication>,
    /// The epoch of the stream its offset belongs to (empty without history), so that a
    /// subscriber can tell a late or repeated offset from one of a new stream.
    pub epoch: Box<str>,
    /// Its namespace's coalescing window.
    pub coalesce: Coalesce,
    /// The push's framed bytes per codec ([`Codec::slot`]), each encoded at most once.
    encoded: [OnceLock<Framed>; Codec::COUNT],
}

impl SharedPublication {
    /// Wraps a publication for fan-out.
    pub fn new(publication: Arc<Publication>) -> Arc<Self> {
        Self::in_stream(publication, "", Coalesce::default())
    }

    /// Wraps a publication of stream epoch `epoch` for fan-out in a namespace with a
    /// coalescing window.
    pub fn in_stream(publication: Arc<Publication>, epoch: &str, coalesce: Coalesce) -> Arc<Self> {
        Arc::new(Self { publication, epoch: epoch.into(), coalesce, encoded: Default::default() })
    }

    /// Bytes the outbox charges for this publication: payload plus envelope, an estimate
    /// of the encoded size that needs no encoding.
    pub fn cost(&self) -> usize {
        const ENVELOPE: usize = 48;
        self.publication.data.len() + self.publication.channel.len() + ENVELOPE
    }

    /// The encoded push in `codec`, encoded at most once per publication.
    pub fn encoded(&self, codec: Codec) -> &[u8] {
        self.framed(codec).body()
    }

    /// The encoded push in `codec` with its stream framing (see [`Framed`]), shared.
    pub fn framed(&self, codec: Codec) -> &Framed {
        self.encoded[codec.slot()].get_or_init(|| codec.frame_publication(&self.publication, self.cost()))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn encodes_once_and_shares_the_bytes() {
        let p = SharedPublication::new(Arc::new(Publication {
            channel: "c".into(),
            data: Bytes::from_static(b"1"),
            ..Default::default()
        }));
        let a = p.framed(Codec::Json).frame().clone();
        let b = p.framed(Codec::Json).frame().clone();
        assert_eq!(a.as_ptr(), b.as_ptr(), "second subscriber must share the first encoding");
        let a = p.encoded(Codec::Json);
        assert_eq!(a, br#"{"push":{"channel":"c","pub":{"data":1}}}"#);
        assert_eq!(p.encoded(Codec::JsonUni), br#"{"channel":"c","pub":{"data":1}}"#);
    }
}
