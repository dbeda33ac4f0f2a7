//! A publication as fan-out carries it: the model record behind one `Arc`, plus the bytes
//! of its push in each codec, encoded by the first subscriber that needs them and shared
//! (as cheap `Bytes` clones) by every other one. Nothing here is per subscriber, and no
//! wire format is named: the cache is keyed by [`Codec`], which encodes (the codec seam,
//! `protocol::codec`).
//!
//! Delta compression: a subscriber that negotiated it gets one of two other forms of the
//! same publication, each a `SharedPublication` of its own with its own per-codec cache,
//! built once per publication by the first such subscriber: the *full* form (the whole
//! payload, as delta subscribers expect it: a JSON string on JSON connections) and the
//! *patch* form (a fossil patch against the channel's previous publication, marked
//! `delta`). Fan-out sets the previous publication's data (the patch's base) before
//! delivering; the patch is computed at most once, and only when it is smaller than the
//! payload.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::protocol::codec::{Codec, Framed};
use crate::protocol::{Publication, fossil};

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
    /// Which push this is.
    pub(super) form: Form,
    /// The data of the channel's previous publication (offset − 1, same epoch), set by
    /// fan-out when this one is delta-eligible: the base of its patch.
    base: OnceLock<Bytes>,
    /// The forms for delta subscribers, built by the first one that needs them.
    delta: OnceLock<DeltaForms>,
}

/// What a [`SharedPublication`]'s bytes are.
#[derive(Debug)]
pub(super) enum Form {
    /// The publication as every subscriber without delta compression gets it.
    Plain,
    /// The full payload for a delta subscriber.
    DeltaFull,
    /// A patch for a delta subscriber that has the previous publication: the
    /// publication with the patch as its data, marked `delta`.
    DeltaPatch(Arc<Publication>),
}

/// The two forms of a publication for delta subscribers.
#[derive(Debug)]
struct DeltaForms {
    full: Arc<SharedPublication>,
    /// None: no base, or a patch no smaller than the payload.
    patch: Option<Arc<SharedPublication>>,
}

impl SharedPublication {
    /// Wraps a publication for fan-out.
    pub fn new(publication: Arc<Publication>) -> Arc<Self> {
        Self::in_stream(publication, "", Coalesce::default())
    }

    /// Wraps a publication of stream epoch `epoch` for fan-out in a namespace with a
    /// coalescing window.
    pub fn in_stream(publication: Arc<Publication>, epoch: &str, coalesce: Coalesce) -> Arc<Self> {
        Self::with_form(publication, epoch.into(), coalesce, Form::Plain)
    }

    fn with_form(publication: Arc<Publication>, epoch: Box<str>, coalesce: Coalesce, form: Form) -> Arc<Self> {
        Arc::new(Self {
            publication,
            epoch,
            coalesce,
            encoded: Default::default(),
            form,
            base: OnceLock::new(),
            delta: OnceLock::new(),
        })
    }

    /// Sets the data of the channel's previous publication, the base a patch is computed
    /// against (fan-out does, before delivering, for a delta-eligible publication whose
    /// predecessor it saw). A second call changes nothing.
    pub fn set_base(&self, base: Bytes) {
        let _ = self.base.set(base);
    }

    /// What a subscriber that negotiated delta compression gets: the patch when it is
    /// `in_sync` (it received the channel's previous publication, the patch's base) and
    /// there is a patch, the full form otherwise. Built once per publication; every
    /// later delta subscriber shares the forms (and their encodings).
    pub fn for_delta(&self, in_sync: bool) -> &Arc<Self> {
        let forms = self.delta.get_or_init(|| {
            let full = Self::with_form(self.publication.clone(), self.epoch.clone(), self.coalesce, Form::DeltaFull);
            let patch = self.base.get().and_then(|base| {
                let patch = fossil::encode(base, &self.publication.data);
                (patch.len() < self.publication.data.len()).then(|| {
                    let p = Publication { data: Bytes::from(patch), delta: true, ..(*self.publication).clone() };
                    Self::with_form(self.publication.clone(), self.epoch.clone(), self.coalesce, Form::DeltaPatch(Arc::new(p)))
                })
            });
            DeltaForms { full, patch }
        });
        match &forms.patch {
            Some(patch) if in_sync => patch,
            _ => &forms.full,
        }
    }

    /// Whether this is a patch (a delta subscriber's form with `delta: true`).
    pub fn is_patch(&self) -> bool {
        matches!(self.form, Form::DeltaPatch(_))
    }

    /// Bytes the outbox charges for this publication: payload plus envelope, an estimate
    /// of the encoded size that needs no encoding.
    pub fn cost(&self) -> usize {
        const ENVELOPE: usize = 48;
        let data = match &self.form {
            Form::DeltaPatch(p) => p.data.len(),
            Form::Plain | Form::DeltaFull => self.publication.data.len(),
        };
        data + self.publication.channel.len() + ENVELOPE
    }

    /// The encoded push in `codec`, encoded at most once per publication.
    pub fn encoded(&self, codec: Codec) -> &[u8] {
        self.framed(codec).body()
    }

    /// The encoded push in `codec` with its stream framing (see [`Framed`]), shared.
    pub fn framed(&self, codec: Codec) -> &Framed {
        self.encoded[codec.slot()].get_or_init(|| match &self.form {
            Form::Plain => codec.frame_publication(&self.publication, self.cost()),
            Form::DeltaFull => codec.frame_delta_publication(&self.publication, None, self.cost()),
            Form::DeltaPatch(patch) => codec.frame_delta_publication(&self.publication, Some(patch), self.cost()),
        })
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
