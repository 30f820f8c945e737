//! Serde helpers that encode byte strings as byte strings: serde's own
//! `Vec<u8>` is a sequence of single bytes, which bincode encodes and
//! decodes one element call at a time (the main cost of replicating a
//! large write). For single `Vec<u8>` fields use `#[serde(with =
//! "serde_bytes")]`; these cover the collections of them.

use serde::{Deserialize, Deserializer, Serializer};
use serde_bytes::{ByteBuf, Bytes};

/// Key/value pairs.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
/// Tagged key/value pairs.
type Tagged = Vec<(u8, Vec<u8>, Vec<u8>)>;

/// `Vec<Vec<u8>>` (keys).
pub mod list {
    use super::*;

    /// Serializes each element as a byte string.
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| Bytes::new(b)))
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<ByteBuf>::deserialize(d)?
            .into_iter()
            .map(ByteBuf::into_vec)
            .collect())
    }
}

/// `Vec<(Vec<u8>, Vec<u8>)>` (key/value pairs).
pub mod pairs {
    use super::*;

    /// Serializes each pair as two byte strings.
    pub fn serialize<S: Serializer>(v: &[(Vec<u8>, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(a, b)| (Bytes::new(a), Bytes::new(b))))
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        Ok(Vec::<(ByteBuf, ByteBuf)>::deserialize(d)?
            .into_iter()
            .map(|(a, b)| (a.into_vec(), b.into_vec()))
            .collect())
    }
}

/// `Vec<(u8, Vec<u8>, Vec<u8>)>` (tagged key/value pairs).
pub mod tagged {
    use super::*;

    /// Serializes each entry with its key and value as byte strings.
    pub fn serialize<S: Serializer>(v: &[(u8, Vec<u8>, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(t, a, b)| (t, Bytes::new(a), Bytes::new(b))))
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tagged, D::Error> {
        Ok(Vec::<(u8, ByteBuf, ByteBuf)>::deserialize(d)?
            .into_iter()
            .map(|(t, a, b)| (t, a.into_vec(), b.into_vec()))
            .collect())
    }
}
