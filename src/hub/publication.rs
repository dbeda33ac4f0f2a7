//! A publication as fan-out carries it: the model record behind one `Arc`, plus the bytes
//! of its push in each codec, encoded by the first subscriber that needs them and shared
//! (as cheap `Bytes` clones) by every other one. Nothing here is per subscriber.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::protocol::{Publication, Push, json, native};

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

/// A publication shared by every subscriber it is delivered to.
#[derive(Debug)]
pub struct SharedPublication {
    /// The record.
    pub publication: Arc<Publication>,
    json: OnceLock<Bytes>,
    json_uni: OnceLock<Bytes>,
    native: OnceLock<Bytes>,
}

impl SharedPublication {
    /// Wraps a publication for fan-out.
    pub fn new(publication: Arc<Publication>) -> Arc<Self> {
        Arc::new(Self { publication, json: OnceLock::new(), json_uni: OnceLock::new(), native: OnceLock::new() })
    }

    /// Bytes the outbox charges for this publication: payload plus envelope, an estimate
    /// of the encoded size that needs no encoding.
    pub fn cost(&self) -> usize {
        const ENVELOPE: usize = 48;
        self.publication.data.len() + self.publication.channel.len() + ENVELOPE
    }

    /// The encoded push in `codec`, encoded at most once per publication.
    pub fn encoded(&self, codec: Codec) -> &Bytes {
        let (cell, wrapped) = match codec {
            Codec::Json => (&self.json, true),
            Codec::JsonUni => (&self.json_uni, false),
            Codec::Native => return self.native.get_or_init(|| Bytes::from(native::encode_publication(&self.publication))),
        };
        cell.get_or_init(|| {
            let mut out = Vec::with_capacity(self.cost() + 16);
            json::encode_push(&mut out, &Push::Publication(self.publication.clone()), wrapped);
            Bytes::from(out)
        })
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
