//! [`Write`]: the commit record of one version of a key.

use crate::codec::{get_bytes, get_u64_be, put_bytes};
use crate::{DecodeError, Timestamp};

/// What a committed version does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteType {
    /// A new value.
    Put,
    /// A deletion (tombstone).
    Delete,
    /// A lock-only commit: the value is unchanged.
    Lock,
    /// The transaction with this start timestamp was rolled back; stored at
    /// `start_ts` so a late prewrite of the same transaction fails.
    Rollback,
}

impl WriteType {
    fn tag(self) -> u8 {
        match self {
            WriteType::Put => b'P',
            WriteType::Delete => b'D',
            WriteType::Lock => b'L',
            WriteType::Rollback => b'R',
        }
    }

    fn from_tag(tag: u8) -> Result<WriteType, DecodeError> {
        match tag {
            b'P' => Ok(WriteType::Put),
            b'D' => Ok(WriteType::Delete),
            b'L' => Ok(WriteType::Lock),
            b'R' => Ok(WriteType::Rollback),
            _ => Err(DecodeError::Corrupt("write type")),
        }
    }

    /// Whether this record changes data (Put or Delete).
    pub fn is_data_change(self) -> bool {
        matches!(self, WriteType::Put | WriteType::Delete)
    }
}

const FLAG_SHORT_VALUE: u8 = b'v';
const FLAG_PROTECTED: u8 = b'p';

/// A write record, stored under `key + !commit_ts` (or `key + !start_ts` for
/// rollbacks).
///
/// Binary format: type byte, start timestamp (u64 BE), then optional fields
/// behind a prefix byte: `v` short value, `p` protected rollback (never
/// collapsed by GC). Decoders stop at an unknown prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Kind of record.
    pub write_type: WriteType,
    /// Start timestamp of the transaction that wrote it.
    pub start_ts: Timestamp,
    /// The value, when short enough to be inlined.
    pub short_value: Option<Vec<u8>>,
    /// For rollbacks of a primary key: keep the record until GC passes it.
    pub protected: bool,
}

impl Write {
    /// A record of the given type without an inlined value.
    pub fn new(write_type: WriteType, start_ts: Timestamp) -> Write {
        Write {
            write_type,
            start_ts,
            short_value: None,
            protected: false,
        }
    }

    /// A rollback record for the transaction started at `start_ts`.
    pub fn rollback(start_ts: Timestamp, protected: bool) -> Write {
        Write {
            write_type: WriteType::Rollback,
            start_ts,
            short_value: None,
            protected,
        }
    }

    /// Serializes the record.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.short_value.as_ref().map_or(0, Vec::len));
        out.push(self.write_type.tag());
        out.extend_from_slice(&self.start_ts.into_inner().to_be_bytes());
        if let Some(v) = &self.short_value {
            out.push(FLAG_SHORT_VALUE);
            put_bytes(&mut out, v);
        }
        if self.protected {
            out.push(FLAG_PROTECTED);
        }
        out
    }

    /// Parses a record written by [`Write::to_bytes`].
    pub fn from_bytes(mut input: &[u8]) -> Result<Write, DecodeError> {
        let (&tag, rest) = input
            .split_first()
            .ok_or(DecodeError::Truncated("write type"))?;
        input = rest;
        let write_type = WriteType::from_tag(tag)?;
        let start_ts = Timestamp::new(get_u64_be(&mut input)?);
        let mut write = Write::new(write_type, start_ts);
        while let Some((&flag, rest)) = input.split_first() {
            input = rest;
            match flag {
                FLAG_SHORT_VALUE => write.short_value = Some(get_bytes(&mut input)?.to_vec()),
                FLAG_PROTECTED => write.protected = true,
                _ => break,
            }
        }
        Ok(write)
    }
}

/// A borrowed view of a write record, parsed without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRef<'a> {
    /// Kind of record.
    pub write_type: WriteType,
    /// Start timestamp of the transaction that wrote it.
    pub start_ts: Timestamp,
    /// The inlined value, if any.
    pub short_value: Option<&'a [u8]>,
}

impl<'a> WriteRef<'a> {
    /// Parses the fields readers need from a record written by
    /// [`Write::to_bytes`].
    pub fn parse(mut input: &'a [u8]) -> Result<WriteRef<'a>, DecodeError> {
        let (&tag, rest) = input
            .split_first()
            .ok_or(DecodeError::Truncated("write type"))?;
        input = rest;
        let write_type = WriteType::from_tag(tag)?;
        let start_ts = Timestamp::new(get_u64_be(&mut input)?);
        let mut short_value = None;
        if let Some((&FLAG_SHORT_VALUE, rest)) = input.split_first() {
            input = rest;
            short_value = Some(get_bytes(&mut input)?);
        }
        Ok(WriteRef {
            write_type,
            start_ts,
            short_value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for w in [
            Write::new(WriteType::Put, Timestamp::new(9)),
            Write {
                write_type: WriteType::Put,
                start_ts: Timestamp::new(10),
                short_value: Some(vec![1, 2, 3]),
                protected: false,
            },
            Write::rollback(Timestamp::new(11), true),
            Write::new(WriteType::Delete, Timestamp::new(12)),
            Write::new(WriteType::Lock, Timestamp::new(13)),
        ] {
            assert_eq!(Write::from_bytes(&w.to_bytes()).unwrap(), w);
            let bytes = w.to_bytes();
            let r = WriteRef::parse(&bytes).unwrap();
            assert_eq!((r.write_type, r.start_ts), (w.write_type, w.start_ts));
            assert_eq!(r.short_value, w.short_value.as_deref());
        }
        assert!(Write::from_bytes(b"Q12345678").is_err());
        assert!(Write::from_bytes(b"P123").is_err());
    }
}
