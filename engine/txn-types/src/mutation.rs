//! [`Mutation`]: one key's change inside a transaction.

use serde::{Deserialize, Serialize};

use crate::LockType;

/// The operation a mutation applies to its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MutationOp {
    /// Write a value, replacing any existing one.
    Put(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Write a value; fail with `AlreadyExists` if a live value exists.
    Insert(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Delete the key (write a tombstone).
    Delete,
    /// Lock the key without changing it.
    Lock,
}

/// A change to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// The raw key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// What happens to it.
    pub op: MutationOp,
}

impl Mutation {
    /// A put of `value` at `key`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Mutation {
        Mutation {
            key: key.into(),
            op: MutationOp::Put(value.into()),
        }
    }

    /// An insert of `value` at `key` that requires the key to be absent.
    pub fn insert(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Mutation {
        Mutation {
            key: key.into(),
            op: MutationOp::Insert(value.into()),
        }
    }

    /// A deletion of `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Mutation {
        Mutation {
            key: key.into(),
            op: MutationOp::Delete,
        }
    }

    /// The lock type a prewrite of this mutation leaves.
    pub fn lock_type(&self) -> LockType {
        match self.op {
            MutationOp::Put(_) | MutationOp::Insert(_) => LockType::Put,
            MutationOp::Delete => LockType::Delete,
            MutationOp::Lock => LockType::Lock,
        }
    }

    /// The value written, if any.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.op {
            MutationOp::Put(v) | MutationOp::Insert(v) => Some(v),
            MutationOp::Delete | MutationOp::Lock => None,
        }
    }

    /// Approximate size in bytes (key plus value).
    pub fn size(&self) -> usize {
        self.key.len() + self.value().map_or(0, <[u8]>::len)
    }
}
