//! Byte codecs shared by the MVCC layer and its records: the memcomparable
//! encoding of raw keys, descending timestamp suffixes and unsigned varints.

use crate::Timestamp;
use crate::error::DecodeError;

const GROUP: usize = 8;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0x00;

/// Length of `encode_bytes(raw)` for a raw key of `raw_len` bytes.
pub const fn encoded_len(raw_len: usize) -> usize {
    (raw_len / GROUP + 1) * (GROUP + 1)
}

/// Appends the memcomparable encoding of `raw` to `out`.
///
/// The key is cut into 8-byte groups, the last one zero-padded; every group is
/// followed by a marker byte `0xFF - padding`. The result sorts like the raw
/// bytes and no encoded key is a prefix of another, so a fixed-size suffix
/// (the version timestamp) can be appended without breaking the order.
pub fn encode_bytes(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(raw.len()));
    let mut chunks = raw.chunks_exact(GROUP);
    for chunk in &mut chunks {
        out.extend_from_slice(chunk);
        out.push(MARKER);
    }
    let rest = chunks.remainder();
    out.extend_from_slice(rest);
    let pad = GROUP - rest.len();
    out.extend(std::iter::repeat_n(PAD, pad));
    // `pad` is 1..=8, so the marker never collides with a full group's 0xFF.
    out.push(MARKER - pad as u8);
}

/// Decodes one memcomparable-encoded key from the front of `input`, returning
/// the raw key and the number of bytes consumed.
pub fn decode_bytes(input: &[u8]) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut raw = Vec::with_capacity(input.len());
    let mut offset = 0;
    loop {
        let group = input
            .get(offset..offset + GROUP + 1)
            .ok_or(DecodeError::Truncated("memcomparable key group"))?;
        let marker = group[GROUP];
        let pad = usize::from(MARKER - marker);
        if pad == 0 {
            raw.extend_from_slice(&group[..GROUP]);
            offset += GROUP + 1;
            continue;
        }
        if pad > GROUP {
            return Err(DecodeError::Corrupt("memcomparable key marker"));
        }
        let (data, padding) = group[..GROUP].split_at(GROUP - pad);
        if padding.iter().any(|b| *b != PAD) {
            return Err(DecodeError::Corrupt("memcomparable key padding"));
        }
        raw.extend_from_slice(data);
        return Ok((raw, offset + GROUP + 1));
    }
}

/// Appends `!ts` big-endian: newer versions sort first.
pub fn append_ts_desc(ts: Timestamp, out: &mut Vec<u8>) {
    out.extend_from_slice(&(!ts.into_inner()).to_be_bytes());
}

/// Reads a descending timestamp suffix written by [`append_ts_desc`].
pub fn decode_ts_desc(bytes: &[u8]) -> Result<Timestamp, DecodeError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| DecodeError::Truncated("timestamp suffix"))?;
    Ok(Timestamp::new(!u64::from_be_bytes(arr)))
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint from the front of `input`.
pub fn get_uvarint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let (&b, rest) = input
            .split_first()
            .ok_or(DecodeError::Truncated("varint"))?;
        *input = rest;
        if shift == 63 && b > 1 {
            return Err(DecodeError::Corrupt("varint overflow"));
        }
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(DecodeError::Corrupt("varint overflow"));
        }
    }
}

/// Reads a u64 big-endian from the front of `input`.
pub fn get_u64_be(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let (head, rest) = input
        .split_first_chunk::<8>()
        .ok_or(DecodeError::Truncated("u64"))?;
    *input = rest;
    Ok(u64::from_be_bytes(*head))
}

/// Reads a length-prefixed byte string (uvarint length) from `input`.
pub fn get_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let len = usize::try_from(get_uvarint(input)?)
        .map_err(|_| DecodeError::Corrupt("length overflow"))?;
    if input.len() < len {
        return Err(DecodeError::Truncated("byte string"));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

/// Appends a length-prefixed byte string (uvarint length).
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_bytes(raw, &mut out);
        out
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(b""), vec![0, 0, 0, 0, 0, 0, 0, 0, 0xF7]);
        assert_eq!(enc(b"abc"), vec![b'a', b'b', b'c', 0, 0, 0, 0, 0, 0xFA]);
        assert_eq!(enc(&[1u8; 8]).len(), 18);
        assert_eq!(encoded_len(8), 18);
    }

    #[test]
    fn corrupt_input_is_rejected() {
        assert!(decode_bytes(&[1, 2, 3]).is_err());
        assert!(decode_bytes(&[0, 0, 0, 0, 0, 0, 0, 1, 0xF7]).is_err());
        assert!(decode_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0x00]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let e = enc(&raw);
            prop_assert_eq!(e.len(), encoded_len(raw.len()));
            let (back, used) = decode_bytes(&e).unwrap();
            prop_assert_eq!(back, raw);
            prop_assert_eq!(used, e.len());
        }

        #[test]
        fn order_preserved_with_suffix(
            a in proptest::collection::vec(any::<u8>(), 0..20),
            b in proptest::collection::vec(any::<u8>(), 0..20),
            ta in any::<u64>(), tb in any::<u64>(),
        ) {
            let mut ea = enc(&a);
            append_ts_desc(Timestamp::new(ta), &mut ea);
            let mut eb = enc(&b);
            append_ts_desc(Timestamp::new(tb), &mut eb);
            if a != b {
                prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            } else {
                // Same key: newer timestamp sorts first.
                prop_assert_eq!(tb.cmp(&ta), ea.cmp(&eb));
            }
        }

        #[test]
        fn varint_roundtrip(v in any::<u64>()) {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            let mut slice = out.as_slice();
            prop_assert_eq!(get_uvarint(&mut slice).unwrap(), v);
            prop_assert!(slice.is_empty());
        }
    }
}
