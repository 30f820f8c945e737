//! Table keys: `0x10 | table id (u32 BE) | index id (u16 BE) | key tuple`.
//!
//! Each tuple element starts with a tag byte, `0x01` for a value and `0xFF`
//! for NULL (so NULLs sort last, as in PostgreSQL's default ascending
//! order), followed by an order-preserving payload:
//!
//! | type                        | payload                                          |
//! |-----------------------------|--------------------------------------------------|
//! | BOOLEAN                     | `0x00` false, `0x01` true                        |
//! | SMALLINT/INTEGER/BIGINT     | big-endian two's complement, sign bit flipped    |
//! | DATE, TIMESTAMP[TZ]         | as INTEGER / BIGINT (days, microseconds)         |
//! | REAL/DOUBLE PRECISION       | IEEE bits, flipped so that order is numeric      |
//! | NUMERIC(p,s)                | unscaled i128 at the column's scale, sign flipped|
//! | TEXT/VARCHAR/BYTEA          | bytes with `0x00` escaped as `0x00 0xFF`, then `0x00 0x01` |
//!
//! Every element is self-delimiting, so a tuple prefix is a key prefix and
//! byte order equals tuple order.

use crate::error::{SqlError, SqlResult};

/// First byte of every table data key.
pub const TABLE_DATA_PREFIX: u8 = 0x10;
/// Index id of a table's primary index.
pub const PRIMARY_INDEX_ID: u16 = 1;
/// Tag of a present value.
pub const TAG_VALUE: u8 = 0x01;
/// Tag of NULL.
pub const TAG_NULL: u8 = 0xFF;

/// `0x10 | table_id`: the prefix of all of a table's keys.
pub fn table_prefix(table_id: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.push(TABLE_DATA_PREFIX);
    k.extend_from_slice(&table_id.to_be_bytes());
    k
}

/// `0x10 | table_id | index_id`: the prefix of one index's keys.
pub fn index_prefix(table_id: u32, index_id: u16) -> Vec<u8> {
    let mut k = table_prefix(table_id);
    k.extend_from_slice(&index_id.to_be_bytes());
    k
}

/// The table id of a table data key, if `key` is one.
pub fn table_id_of(key: &[u8]) -> Option<u32> {
    if key.first() != Some(&TABLE_DATA_PREFIX) {
        return None;
    }
    key.get(1..5)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

/// The smallest key greater than every key starting with `prefix`
/// (empty when there is none: unbounded).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// Appends an escaped, terminated byte string.
pub fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.push(0x00);
    out.push(0x01);
}

/// Reads an escaped, terminated byte string.
pub fn get_escaped(input: &mut &[u8]) -> SqlResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let b = *input
            .get(i)
            .ok_or_else(|| corrupt("unterminated string in key"))?;
        if b != 0 {
            out.push(b);
            i += 1;
            continue;
        }
        match input.get(i + 1) {
            Some(0xFF) => {
                out.push(0);
                i += 2;
            }
            Some(0x01) => {
                *input = &input[i + 2..];
                return Ok(out);
            }
            _ => return Err(corrupt("bad escape in key string")),
        }
    }
}

pub(crate) fn corrupt(what: &str) -> SqlError {
    SqlError::internal(format!("corrupt stored data: {what}"))
}

/// Takes `N` bytes from the front of `input`.
pub(crate) fn take<const N: usize>(input: &mut &[u8]) -> SqlResult<[u8; N]> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or_else(|| corrupt("truncated value"))?;
    *input = rest;
    Ok(*head)
}

/// Order-preserving bits of an f64 (-0.0 folded into 0.0, NaN canonical and
/// greatest, as in PostgreSQL).
pub fn f64_key_bits(v: f64) -> u64 {
    let v = if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    };
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Inverse of [`f64_key_bits`].
pub fn f64_from_key_bits(bits: u64) -> f64 {
    f64::from_bits(if bits >> 63 == 1 {
        bits & !(1 << 63)
    } else {
        !bits
    })
}

/// Order-preserving bits of an f32.
pub fn f32_key_bits(v: f32) -> u32 {
    let v = if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f32::NAN
    } else {
        v
    };
    let bits = v.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    }
}

/// Inverse of [`f32_key_bits`].
pub fn f32_from_key_bits(bits: u32) -> f32 {
    f32::from_bits(if bits >> 31 == 1 {
        bits & !(1 << 31)
    } else {
        !bits
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 2]), vec![1, 3]);
        assert_eq!(prefix_end(&[1, 0xFF]), vec![2]);
        assert_eq!(prefix_end(&[0xFF, 0xFF]), Vec::<u8>::new());
    }

    #[test]
    fn table_id_roundtrip() {
        assert_eq!(table_id_of(&index_prefix(4242, 1)), Some(4242));
        assert_eq!(table_id_of(b"\x03abc"), None);
    }

    proptest! {
        #[test]
        fn escaped_strings_roundtrip_and_order(a in proptest::collection::vec(any::<u8>(), 0..12),
                                               b in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut ea = Vec::new();
            put_escaped(&mut ea, &a);
            let mut eb = Vec::new();
            put_escaped(&mut eb, &b);
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            let mut s = ea.as_slice();
            prop_assert_eq!(get_escaped(&mut s).unwrap(), a);
            prop_assert!(s.is_empty());
        }

        #[test]
        fn floats_order(a in any::<f64>(), b in any::<f64>()) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            let (ka, kb) = (f64_key_bits(a), f64_key_bits(b));
            prop_assert_eq!(a.partial_cmp(&b).unwrap(), ka.cmp(&kb));
            if a != 0.0 {
                prop_assert_eq!(f64_from_key_bits(ka), a);
            }
        }
    }
}
