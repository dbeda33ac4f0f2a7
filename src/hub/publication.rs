//! A publication as fan-out carries it: the model record behind one `Arc`, plus the bytes
//! of its push in each codec, encoded by the first subscriber that needs them and shared
//! (as cheap `Bytes` clones) by every other one. Nothing here is per subscriber, and no
//! wire format is named: the cache is keyed by [`Codec`], which encodes (the codec seam,
//! `protocol::codec`).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::protocol::codec::Codec;
use crate::protocol::Publication;

/// A publication shared by every subscriber it is delivered to.
#[derive(Debug)]
pub struct SharedPublication {
    /// The record.
    pub publication: Arc<Publication>,
    /// The push's bytes per codec ([`Codec::slot`]), each encoded at most once.
    encoded: [OnceLock<Bytes>; Codec::COUNT],
}

impl SharedPublication {
    /// Wraps a publication for fan-out.
    pub fn new(publication: Arc<Publication>) -> Arc<Self> {
        Arc::new(Self { publication, encoded: Default::default() })
    }

    /// Bytes the outbox charges for this publication: payload plus envelope, an estimate
    /// of the encoded size that needs no encoding.
    pub fn cost(&self) -> usize {
        const ENVELOPE: usize = 48;
        self.publication.data.len() + self.publication.channel.len() + ENVELOPE
    }

    /// The encoded push in `codec`, encoded at most once per publication.
    pub fn encoded(&self, codec: Codec) -> &Bytes {
        self.encoded[codec.slot()].get_or_init(|| codec.encode_publication(&self.publication, self.cost()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_once_and_shares_the_bytes() {
        let p = SharedPublication::new(Arc::new(Publication {
            channel: "c".into(),
            data: Bytes::from_static(b"1"),
            ..Default::default()
        }));
        let a = p.encoded(Codec::Json).clone();
        let b = p.encoded(Codec::Json).clone();
        assert_eq!(a.as_ptr(), b.as_ptr(), "second subscriber must share the first encoding");
        assert_eq!(&a[..], br#"{"push":{"channel":"c","pub":{"data":1}}}"#);
        assert_eq!(&p.encoded(Codec::JsonUni)[..], br#"{"channel":"c","pub":{"data":1}}"#);
    }
}
