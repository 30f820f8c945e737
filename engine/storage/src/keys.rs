//! How MVCC records are keyed inside RocksDB.
//!
//! | column family | key                              | value                    |
//! |---------------|----------------------------------|--------------------------|
//! | `lock`        | `enc(key)`                       | [`holo_txn_types::Lock`] |
//! | `write`       | `enc(key) ++ !commit_ts` (BE)    | [`holo_txn_types::Write`]|
//! | `default`     | `enc(key) ++ !start_ts` (BE)     | long value bytes         |
//! | `meta`        | engine-local names               | engine-local state       |
//!
//! `enc` is the memcomparable encoding of [`holo_txn_types::codec`], so the
//! versions of one key are contiguous and ordered newest first.

use holo_txn_types::Timestamp;
use holo_txn_types::codec::{
    append_ts_desc, decode_bytes, decode_ts_desc, encode_bytes, encoded_len,
};

use crate::Result;

/// Column family of locks.
pub const CF_LOCK: &str = "lock";
/// Column family of write (commit) records.
pub const CF_WRITE: &str = "write";
/// Column family of long values.
pub const CF_DATA: &str = "default";
/// Column family of engine-local metadata (not replicated).
pub const CF_META: &str = "meta";
/// Column family of Raft state: logs, votes and applied state per range.
pub const CF_RAFT: &str = "raft";

/// Every column family the engine opens.
pub const ALL_CFS: [&str; 5] = [CF_DATA, CF_LOCK, CF_WRITE, CF_META, CF_RAFT];

/// The column families holding a range's MVCC data, in snapshot order.
pub const DATA_CFS: [&str; 3] = [CF_LOCK, CF_WRITE, CF_DATA];

/// The encoded user key: the key of the lock column family.
pub fn encode_key(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(raw.len()) + 8);
    encode_bytes(raw, &mut out);
    out
}

/// `enc(key) ++ !ts`: the key of a write or data record.
pub fn versioned_key(raw: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = encode_key(raw);
    append_ts_desc(ts, &mut out);
    out
}

/// Appends `!ts` to an already encoded key.
pub fn with_ts(encoded: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + 8);
    out.extend_from_slice(encoded);
    append_ts_desc(ts, &mut out);
    out
}

/// Splits a versioned key into its encoded user key and timestamp.
pub fn split_versioned(versioned: &[u8]) -> Result<(&[u8], Timestamp)> {
    if versioned.len() < 8 {
        return Err(holo_txn_types::DecodeError::Truncated("versioned key").into());
    }
    let (enc, ts) = versioned.split_at(versioned.len() - 8);
    Ok((enc, decode_ts_desc(ts)?))
}

/// Decodes an encoded user key back to its raw form.
pub fn decode_key(encoded: &[u8]) -> Result<Vec<u8>> {
    let (raw, used) = decode_bytes(encoded)?;
    if used != encoded.len() {
        return Err(holo_txn_types::DecodeError::Corrupt("trailing bytes after key").into());
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_roundtrip() {
        let vk = versioned_key(b"user", Timestamp::new(99));
        let (enc, ts) = split_versioned(&vk).unwrap();
        assert_eq!(ts, Timestamp::new(99));
        assert_eq!(decode_key(enc).unwrap(), b"user");
        assert!(versioned_key(b"user", Timestamp::new(100)) < vk);
    }
}
