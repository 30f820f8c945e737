//! [`RangeDescriptor`]: the identity, key span and epoch of a range.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifier of a range; unique for the life of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RangeId(pub u64);

impl fmt::Display for RangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Versioning of a range descriptor. `version` grows on every split or merge,
/// `conf_ver` on every replica change; a request carrying an older epoch is
/// answered with a stale-route error so the sender refreshes its cache.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RangeEpoch {
    /// Bumped by splits and merges.
    pub version: u64,
    /// Bumped by membership changes.
    pub conf_ver: u64,
}

/// One replica of a range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaDescriptor {
    /// Node that holds the replica.
    pub node_id: u64,
}

/// A range: the keys `[start_key, end_key)` (an empty `end_key` means no upper
/// bound) and where they live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeDescriptor {
    /// The range's identifier.
    pub id: RangeId,
    /// Inclusive lower bound (raw key).
    #[serde(with = "serde_bytes")]
    pub start_key: Vec<u8>,
    /// Exclusive upper bound (raw key); empty = unbounded.
    #[serde(with = "serde_bytes")]
    pub end_key: Vec<u8>,
    /// Descriptor version.
    pub epoch: RangeEpoch,
    /// Replicas of the range.
    pub replicas: Vec<ReplicaDescriptor>,
}

impl RangeDescriptor {
    /// A range covering the whole keyspace, as used by a single-node store.
    pub fn whole_keyspace(id: RangeId, node_id: u64) -> RangeDescriptor {
        RangeDescriptor {
            id,
            start_key: Vec::new(),
            end_key: Vec::new(),
            epoch: RangeEpoch::default(),
            replicas: vec![ReplicaDescriptor { node_id }],
        }
    }

    /// Whether `other`'s span lies inside this range's span.
    pub fn covers(&self, other: &RangeDescriptor) -> bool {
        other.start_key >= self.start_key
            && (self.end_key.is_empty()
                || (!other.end_key.is_empty() && other.end_key <= self.end_key))
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice()
            && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }

    /// Clamps `[start, end)` (empty `end` = unbounded) to the range, returning
    /// `None` when they do not overlap.
    pub fn clamp(&self, start: &[u8], end: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let lo = if start > self.start_key.as_slice() {
            start
        } else {
            self.start_key.as_slice()
        };
        let hi = match (end.is_empty(), self.end_key.is_empty()) {
            (true, _) => self.end_key.as_slice(),
            (false, true) => end,
            (false, false) => end.min(self.end_key.as_slice()),
        };
        if !hi.is_empty() && lo >= hi {
            return None;
        }
        Some((lo.to_vec(), hi.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: &[u8], end: &[u8]) -> RangeDescriptor {
        RangeDescriptor {
            id: RangeId(1),
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            epoch: RangeEpoch::default(),
            replicas: vec![],
        }
    }

    #[test]
    fn contains_respects_bounds() {
        let r = range(b"b", b"d");
        assert!(!r.contains(b"a"));
        assert!(r.contains(b"b"));
        assert!(r.contains(b"c\xff"));
        assert!(!r.contains(b"d"));
        assert!(range(b"", b"").contains(b"anything"));
    }

    #[test]
    fn clamp_intersects() {
        let r = range(b"b", b"d");
        assert_eq!(r.clamp(b"a", b"c"), Some((b"b".to_vec(), b"c".to_vec())));
        assert_eq!(r.clamp(b"c", b""), Some((b"c".to_vec(), b"d".to_vec())));
        assert_eq!(r.clamp(b"d", b"e"), None);
        assert_eq!(
            range(b"", b"").clamp(b"x", b""),
            Some((b"x".to_vec(), vec![]))
        );
    }
}
