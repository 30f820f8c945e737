//! The meta range: layout of cluster metadata in its keys.
//!
//! Range 1 covers `["", 0x02)` and never splits. Its keys are ordinary MVCC
//! keys written with one-phase commits:
//!
//! - `0x00 'n' <node id u64 BE>`: a node's addresses (the node registry);
//! - `0x00 'g'`: the cluster's GC safe point (u64 BE timestamp);
//! - `0x00 'r'`: the last allocated range id (u64 BE);
//! - `0x00 's' <key>`: a split boundary made on request (`SPLIT AT`,
//!   `holoctl split`), which automatic merging keeps;
//! - `0x01 <end key>`: the descriptor of the range ending at `end key`
//!   (`0x01 0xFF` for the range without an end). A lookup of key `k` reads
//!   the first descriptor key greater than `0x01 k`.
//!
//! User keys start at `0x02` (SQL system keys) or later; keys starting with
//! `0xFF` are reserved.

use holo_storage::{RangeDescriptor, RangeEpoch, RangeId, ReplicaDescriptor};

/// The meta range's id.
pub const META_RANGE: RangeId = RangeId(1);
/// The range holding every other key when a cluster is bootstrapped.
pub const FIRST_DATA_RANGE: RangeId = RangeId(2);
/// End of the meta range (first key of the first data range).
pub const META_END: &[u8] = &[0x02];

const NODE_PREFIX: &[u8] = &[0x00, b'n'];
const RANGE_ID_KEY: &[u8] = &[0x00, b'r'];
const STICKY_PREFIX: &[u8] = &[0x00, b's'];
const GC_SAFE_POINT_KEY: &[u8] = &[0x00, b'g'];
const DESC_PREFIX: u8 = 0x01;

/// The meta range's descriptor (its span and generation never change).
pub fn meta_descriptor(replicas: impl IntoIterator<Item = u64>) -> RangeDescriptor {
    RangeDescriptor {
        id: META_RANGE,
        start_key: Vec::new(),
        end_key: META_END.to_vec(),
        epoch: RangeEpoch::default(),
        replicas: replicas
            .into_iter()
            .map(|node_id| ReplicaDescriptor { node_id })
            .collect(),
    }
}

/// The first data range of a new cluster: `[0x02, +inf)`.
pub fn first_data_descriptor(node_id: u64) -> RangeDescriptor {
    RangeDescriptor {
        id: FIRST_DATA_RANGE,
        start_key: META_END.to_vec(),
        end_key: Vec::new(),
        epoch: RangeEpoch::default(),
        replicas: vec![ReplicaDescriptor { node_id }],
    }
}

/// Registry key of a node.
pub fn node_key(node_id: u64) -> Vec<u8> {
    let mut k = NODE_PREFIX.to_vec();
    k.extend_from_slice(&node_id.to_be_bytes());
    k
}

/// The span of the node registry.
pub fn node_span() -> (Vec<u8>, Vec<u8>) {
    (NODE_PREFIX.to_vec(), vec![0x00, b'n' + 1])
}

/// The node id in a registry key.
pub fn node_id_of(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(NODE_PREFIX)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Key of the range id counter.
pub fn range_id_key() -> Vec<u8> {
    RANGE_ID_KEY.to_vec()
}

/// Key of the cluster's GC safe point (u64 BE timestamp).
pub fn gc_safe_point_key() -> Vec<u8> {
    GC_SAFE_POINT_KEY.to_vec()
}

/// Key marking `split_key` as a boundary made on request.
pub fn sticky_key(split_key: &[u8]) -> Vec<u8> {
    let mut k = STICKY_PREFIX.to_vec();
    k.extend_from_slice(split_key);
    k
}

/// Meta key of the descriptor of the range ending at `end_key`.
pub fn descriptor_key(end_key: &[u8]) -> Vec<u8> {
    let mut k = vec![DESC_PREFIX];
    if end_key.is_empty() {
        k.push(0xFF);
    } else {
        k.extend_from_slice(end_key);
    }
    k
}

/// Where a lookup of `key` starts scanning descriptors: the first key after
/// `0x01 key`, so the first descriptor found ends after `key`.
pub fn lookup_start(key: &[u8]) -> Vec<u8> {
    let mut k = vec![DESC_PREFIX];
    k.extend_from_slice(key);
    k.push(0x00);
    k
}

/// The span of the descriptor keys.
pub fn descriptor_span() -> (Vec<u8>, Vec<u8>) {
    (vec![DESC_PREFIX], META_END.to_vec())
}

/// Where to start scanning descriptors for ranges overlapping `[start, ..)`.
pub fn overlap_start(start: &[u8]) -> Vec<u8> {
    lookup_start(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_keys_order_by_end_key() {
        let a = descriptor_key(&[0x10, 0x01]);
        let b = descriptor_key(&[0x10, 0x02]);
        let unbounded = descriptor_key(&[]);
        assert!(a < b && b < unbounded);
        assert!(unbounded < META_END.to_vec());
        // A lookup of the end key itself finds the next range.
        assert!(lookup_start(&[0x10, 0x01]) > a);
        assert!(lookup_start(&[0x10, 0x01]) < b);
        assert!(lookup_start(&[0x10, 0x00, 0xFF]) < a);
    }

    #[test]
    fn node_keys_round_trip() {
        let k = node_key(7);
        assert_eq!(node_id_of(&k), Some(7));
        let (s, e) = node_span();
        assert!(k >= s && k < e);
        assert!(range_id_key() > e || range_id_key() < s);
    }
}
