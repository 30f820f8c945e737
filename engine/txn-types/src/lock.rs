//! [`Lock`]: the record a prewrite leaves on a key until commit or rollback.

use serde::{Deserialize, Serialize};

use crate::codec::{get_bytes, get_u64_be, get_uvarint, put_bytes, put_uvarint};
use crate::{DecodeError, LockInfo, Timestamp};

/// The kind of pending write a lock protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockType {
    /// The transaction writes a value.
    Put,
    /// The transaction deletes the key.
    Delete,
    /// The key is only locked (no data change), e.g. `SELECT ... FOR UPDATE`.
    Lock,
}

impl LockType {
    fn tag(self) -> u8 {
        match self {
            LockType::Put => b'P',
            LockType::Delete => b'D',
            LockType::Lock => b'L',
        }
    }

    fn from_tag(tag: u8) -> Result<LockType, DecodeError> {
        match tag {
            b'P' => Ok(LockType::Put),
            b'D' => Ok(LockType::Delete),
            b'L' => Ok(LockType::Lock),
            _ => Err(DecodeError::Corrupt("lock type")),
        }
    }
}

const FLAG_SHORT_VALUE: u8 = b'v';
const FLAG_MIN_COMMIT_TS: u8 = b'c';
const FLAG_TXN_SIZE: u8 = b's';

/// A transaction's lock on one key.
///
/// Binary format: type byte, primary key (uvarint length + bytes), start
/// timestamp (u64 BE), TTL in ms (uvarint), then optional fields each behind
/// a one-byte prefix: `v` short value, `c` min commit timestamp, `s`
/// transaction size. Decoders stop at an unknown prefix, so fields can be
/// added later without breaking older readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Kind of pending write.
    pub lock_type: LockType,
    /// The transaction's primary key.
    pub primary: Vec<u8>,
    /// The transaction's start timestamp.
    pub start_ts: Timestamp,
    /// Time to live counted from `start_ts`'s physical time, in milliseconds.
    pub ttl_ms: u64,
    /// The value to write, when short enough to live in the lock itself.
    pub short_value: Option<Vec<u8>>,
    /// The smallest commit timestamp the transaction may use; raised when a
    /// reader pushes the transaction.
    pub min_commit_ts: Timestamp,
    /// Number of keys in the transaction (a hint for lock resolution).
    pub txn_size: u64,
}

impl Lock {
    /// Serializes the lock.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            32 + self.primary.len() + self.short_value.as_ref().map_or(0, Vec::len),
        );
        out.push(self.lock_type.tag());
        put_bytes(&mut out, &self.primary);
        out.extend_from_slice(&self.start_ts.into_inner().to_be_bytes());
        put_uvarint(&mut out, self.ttl_ms);
        if let Some(v) = &self.short_value {
            out.push(FLAG_SHORT_VALUE);
            put_bytes(&mut out, v);
        }
        if self.min_commit_ts > Timestamp::ZERO {
            out.push(FLAG_MIN_COMMIT_TS);
            out.extend_from_slice(&self.min_commit_ts.into_inner().to_be_bytes());
        }
        if self.txn_size > 0 {
            out.push(FLAG_TXN_SIZE);
            put_uvarint(&mut out, self.txn_size);
        }
        out
    }

    /// Parses a lock written by [`Lock::to_bytes`].
    pub fn from_bytes(mut input: &[u8]) -> Result<Lock, DecodeError> {
        let (&tag, rest) = input
            .split_first()
            .ok_or(DecodeError::Truncated("lock type"))?;
        input = rest;
        let lock_type = LockType::from_tag(tag)?;
        let primary = get_bytes(&mut input)?.to_vec();
        let start_ts = Timestamp::new(get_u64_be(&mut input)?);
        let ttl_ms = get_uvarint(&mut input)?;
        let mut lock = Lock {
            lock_type,
            primary,
            start_ts,
            ttl_ms,
            short_value: None,
            min_commit_ts: Timestamp::ZERO,
            txn_size: 0,
        };
        while let Some((&flag, rest)) = input.split_first() {
            input = rest;
            match flag {
                FLAG_SHORT_VALUE => lock.short_value = Some(get_bytes(&mut input)?.to_vec()),
                FLAG_MIN_COMMIT_TS => lock.min_commit_ts = Timestamp::new(get_u64_be(&mut input)?),
                FLAG_TXN_SIZE => lock.txn_size = get_uvarint(&mut input)?,
                _ => break,
            }
        }
        Ok(lock)
    }

    /// The lock as reported to a reader or writer that met it on `key`.
    pub fn info(&self, key: &[u8]) -> LockInfo {
        LockInfo {
            key: key.to_vec(),
            primary: self.primary.clone(),
            start_ts: self.start_ts,
            ttl_ms: self.ttl_ms,
            lock_type: self.lock_type,
            min_commit_ts: self.min_commit_ts,
            more_keys: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_all_fields() {
        let lock = Lock {
            lock_type: LockType::Put,
            primary: b"pk".to_vec(),
            start_ts: Timestamp::new(77),
            ttl_ms: 3000,
            short_value: Some(b"value".to_vec()),
            min_commit_ts: Timestamp::new(78),
            txn_size: 12,
        };
        assert_eq!(Lock::from_bytes(&lock.to_bytes()).unwrap(), lock);
    }

    #[test]
    fn unknown_trailing_field_is_ignored() {
        let lock = Lock {
            lock_type: LockType::Delete,
            primary: vec![],
            start_ts: Timestamp::new(1),
            ttl_ms: 0,
            short_value: None,
            min_commit_ts: Timestamp::ZERO,
            txn_size: 0,
        };
        let mut bytes = lock.to_bytes();
        bytes.extend_from_slice(b"zfuture");
        assert_eq!(Lock::from_bytes(&bytes).unwrap(), lock);
        assert!(Lock::from_bytes(b"X").is_err());
        assert!(Lock::from_bytes(&[]).is_err());
    }
}
