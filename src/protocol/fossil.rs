//! Fossil's delta format (the `fossil` delta type of Centrifugo's delta compression,
//! decoded by centrifuge-js and the other SDKs): a patch that rebuilds a target from a
//! source. Pure bytes in, bytes out.
//!
//! A delta is the target's length, `\n`, then commands: `N@O,` copies N bytes of the
//! source from offset O, `N:` is followed by N literal bytes, and `C;` ends the delta with
//! the target's checksum. Numbers are written in Fossil's base-64 digits. The encoder
//! indexes the source in blocks of [`BLOCK`] bytes and, scanning the target, turns every
//! block found (extended forwards and backwards byte by byte) into a copy; everything
//! else is literal. Written from the public format description, not from Fossil's code.

use std::collections::HashMap;

/// Source block length the encoder indexes, in bytes: Fossil's `NHASH`. Shorter matches
/// cost more as commands than as literals.
const BLOCK: usize = 16;

/// Fossil's base-64 digits, lowest value first.
const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

fn put_int(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 11];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v & 63) as usize];
        v >>= 6;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Fossil's checksum: a 32-bit sum of the bytes as big-endian words (the last, partial
/// word padded with zeros), wrapping.
pub fn checksum(data: &[u8]) -> u32 {
    let mut sums = [0u32; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        for (s, b) in sums.iter_mut().zip(c) {
            *s = s.wrapping_add(u32::from(*b));
        }
    }
    let mut sum = sums[3]
        .wrapping_add(sums[2].wrapping_shl(8))
        .wrapping_add(sums[1].wrapping_shl(16))
        .wrapping_add(sums[0].wrapping_shl(24));
    for (i, b) in chunks.remainder().iter().enumerate() {
        sum = sum.wrapping_add(u32::from(*b).wrapping_shl(24 - 8 * i as u32));
    }
    sum
}

fn put_literal(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_int(out, bytes.len() as u64);
        out.push(b':');
        out.extend_from_slice(bytes);
    }
}

/// The delta that turns `source` into `target`.
pub fn encode(source: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() / 2 + 16);
    put_int(&mut out, target.len() as u64);
    out.push(b'\n');
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    if source.len() >= BLOCK {
        for start in (0..=source.len() - BLOCK).step_by(BLOCK) {
            index.entry(&source[start..start + BLOCK]).or_insert(start);
        }
    }
    // `literal_from` is where the pending literal run starts; `i` scans for a block.
    let (mut literal_from, mut i) = (0, 0);
    while !index.is_empty() && i + BLOCK <= target.len() {
        let Some(&at) = index.get(&target[i..i + BLOCK]) else {
            i += 1;
            continue;
        };
        // Extend backwards into the pending literal, then forwards.
        let back = (1..=at.min(i - literal_from)).take_while(|k| source[at - k] == target[i - k]).count();
        let (src, dst) = (at - back, i - back);
        let len = source[src..].iter().zip(&target[dst..]).take_while(|(a, b)| a == b).count();
        put_literal(&mut out, &target[literal_from..dst]);
        put_int(&mut out, len as u64);
        out.push(b'@');
        put_int(&mut out, src as u64);
        out.push(b',');
        i = dst + len;
        literal_from = i;
    }
    put_literal(&mut out, &target[literal_from..]);
    put_int(&mut out, u64::from(checksum(target)));
    out.push(b';');
    out
}

/// Why a delta could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fossil delta: {0}")]
pub struct ApplyError(&'static str);

/// Applies a delta to `source` (what a subscriber does; here for tests and checks).
pub fn apply(source: &[u8], delta: &[u8]) -> Result<Vec<u8>, ApplyError> {
    let mut pos = 0;
    let int = |pos: &mut usize| -> Result<u64, ApplyError> {
        let start = *pos;
        let mut v: u64 = 0;
        while let Some(d) = delta.get(*pos).and_then(|c| DIGITS.iter().position(|x| x == c)) {
            v = v.checked_mul(64).and_then(|v| v.checked_add(d as u64)).ok_or(ApplyError("number too large"))?;
            *pos += 1;
        }
        if *pos == start { Err(ApplyError("number expected")) } else { Ok(v) }
    };
    let total = usize::try_from(int(&mut pos)?).map_err(|_| ApplyError("target too large"))?;
    if delta.get(pos) != Some(&b'\n') {
        return Err(ApplyError("no newline after the length"));
    }
    pos += 1;
    let mut out = Vec::with_capacity(total.min(1 << 20));
    loop {
        let n = usize::try_from(int(&mut pos)?).map_err(|_| ApplyError("count too large"))?;
        let op = *delta.get(pos).ok_or(ApplyError("truncated"))?;
        pos += 1;
        match op {
            b'@' => {
                let offset = usize::try_from(int(&mut pos)?).map_err(|_| ApplyError("offset too large"))?;
                if delta.get(pos) != Some(&b',') {
                    return Err(ApplyError("no comma after a copy"));
                }
                pos += 1;
                let end = offset.checked_add(n).filter(|e| *e <= source.len()).ok_or(ApplyError("copy past the source"))?;
                out.extend_from_slice(&source[offset..end]);
            }
            b':' => {
                let end = pos.checked_add(n).filter(|e| *e <= delta.len()).ok_or(ApplyError("literal past the delta"))?;
                out.extend_from_slice(&delta[pos..end]);
                pos = end;
            }
            b';' => {
                if out.len() != total {
                    return Err(ApplyError("length mismatch"));
                }
                if u64::from(checksum(&out)) != n as u64 {
                    return Err(ApplyError("checksum mismatch"));
                }
                return Ok(out);
            }
            _ => return Err(ApplyError("unknown command")),
        }
        if out.len() > total {
            return Err(ApplyError("output past the length"));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn numbers_use_fossils_digits() {
        let mut out = Vec::new();
        put_int(&mut out, 0);
        put_int(&mut out, 63);
        put_int(&mut out, 64);
        assert_eq!(out, b"0~10");
    }

    #[test]
    fn a_similar_target_is_mostly_copies() {
        let a = br#"{"price":100.25,"symbol":"ACME","volume":123456,"bid":100.20,"ask":100.30,"ts":1700000000}"#;
        let b = br#"{"price":100.27,"symbol":"ACME","volume":123457,"bid":100.20,"ask":100.30,"ts":1700000001}"#;
        let d = encode(a, b);
        assert!(d.len() < b.len() / 2, "{}", String::from_utf8_lossy(&d));
        assert_eq!(apply(a, &d).expect("applies"), b);
    }

    #[test]
    fn edge_cases_round_trip() {
        for (a, b) in [(&b""[..], &b""[..]), (b"", b"x"), (b"x", b""), (b"same bytes, same bytes!!", b"same bytes, same bytes!!")] {
            assert_eq!(apply(a, &encode(a, b)).expect("applies"), b);
        }
    }

    #[test]
    fn corrupt_deltas_are_errors_not_panics() {
        let d = encode(b"0123456789abcdef0123", b"0123456789abcdef0124");
        for cut in 0..d.len() {
            assert!(apply(b"0123456789abcdef0123", &d[..cut]).is_err(), "cut at {cut}");
        }
        assert!(apply(b"", b"3\n5@0,1;").is_err(), "copy past the source");
        let mut bad = d.clone();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
        assert!(apply(b"0123456789abcdef0123", &bad).is_err(), "checksum");
    }

    /// A typical update of a JSON document (the sample that was checked by hand against
    /// centrifuge-js's own decoder) is a small delta that applies back to the target.
    #[test]
    fn a_typical_json_update_is_a_small_delta() {
        let a = br#"{"price":100.25,"symbol":"ACME","volume":123456,"bid":100.20,"ask":100.30,"ts":1700000000}"#;
        let b = br#"{"price":100.27,"symbol":"ACME","volume":123457,"bid":100.20,"ask":100.30,"ts":1700000001,"x":[1,2,3]}"#;
        let d = encode(a, b);
        assert_eq!(apply(a, &d).expect("applies"), b.to_vec());
        assert!(d.len() < b.len() * 2 / 3, "{} bytes of delta for {} bytes", d.len(), b.len());
    }

    proptest! {
        #[test]
        fn apply_of_encode_is_the_target(a in proptest::collection::vec(any::<u8>(), 0..600), edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8), tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            // A target near the source (a few bytes changed, some appended), as
            // successive publications of one channel are, and an unrelated one.
            let mut b = a.clone();
            for (at, v) in edits {
                if !b.is_empty() {
                    let i = usize::from(at) % b.len();
                    b[i] = v;
                }
            }
            b.extend_from_slice(&tail);
            prop_assert_eq!(apply(&a, &encode(&a, &b)).expect("applies"), b);
            prop_assert_eq!(apply(&a, &encode(&a, &tail)).expect("applies"), tail);
        }

        #[test]
        fn apply_never_panics(source in proptest::collection::vec(any::<u8>(), 0..64), delta in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = apply(&source, &delta);
        }
    }
}
