//! [`NodeHandle`]: the node as its KV client sees it: range directory (meta
//! range lookups), timestamp oracle and local range service.
//!
//! The handle holds the node weakly so the node and its client do not keep
//! each other alive.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use holo_kv::KvError;
use holo_kv::service::{
    KvWrite, RangeDirectory, RangeHeader, RangeLocation, RangeService, WriteResponse,
};
use holo_kv::tso::TimestampOracle;
use holo_storage::{RangeDescriptor, RangeId, ReadOptions, ScanResult};
use holo_txn_types::Timestamp;

use crate::meta::{self, META_END};
use crate::node::ClusterNode;

/// A weak handle on a [`ClusterNode`].
#[derive(Clone)]
pub struct NodeHandle {
    node: Weak<ClusterNode>,
    node_id: u64,
}

impl NodeHandle {
    /// A handle on `node`.
    pub fn new(node: &Arc<ClusterNode>) -> NodeHandle {
        NodeHandle {
            node: Arc::downgrade(node),
            node_id: node.node_id(),
        }
    }

    /// A handle on the node `node_id` that `node` points to (used while
    /// the node is being built).
    pub fn from_weak(node: Weak<ClusterNode>, node_id: u64) -> NodeHandle {
        NodeHandle { node, node_id }
    }

    pub(crate) fn new_from(node: &ClusterNode) -> NodeHandle {
        NodeHandle {
            node: node.me.clone(),
            node_id: node.node_id(),
        }
    }

    fn get(&self) -> Result<Arc<ClusterNode>, KvError> {
        self.node
            .upgrade()
            .ok_or_else(|| KvError::Unavailable("the node is shutting down".into()))
    }
}

fn leaseholder(node: &ClusterNode, desc: &RangeDescriptor) -> u64 {
    if let Some(r) = node.replica(desc.id)
        && let Some(l) = r.leader()
    {
        return l;
    }
    if let Some(l) = node.hints.read().get(&desc.id) {
        return *l;
    }
    desc.replicas.first().map_or(node.node_id(), |r| r.node_id)
}

fn meta_location(node: &ClusterNode) -> RangeLocation {
    let replicas = match node.replica(meta::META_RANGE) {
        Some(r) => r
            .descriptor()
            .replicas
            .into_iter()
            .map(|r| r.node_id)
            .collect::<Vec<_>>(),
        None => node.nodes().keys().copied().collect(),
    };
    RangeLocation {
        desc: meta::meta_descriptor(replicas),
        leaseholder: node.meta().leader_hint(),
    }
}

fn decode_desc(bytes: &[u8]) -> Result<RangeDescriptor, KvError> {
    holo_raft::codec::decode(bytes)
        .map_err(|e| KvError::Storage(format!("corrupt range descriptor in meta: {e}")))
}

#[async_trait]
impl RangeDirectory for NodeHandle {
    async fn lookup(&self, key: &[u8]) -> Result<RangeLocation, KvError> {
        let node = self.get()?;
        if key < META_END {
            return Ok(meta_location(&node));
        }
        let (_, end) = meta::descriptor_span();
        let scan = node.meta().scan(meta::lookup_start(key), end, 1).await?;
        let Some((_, value)) = scan.pairs.first() else {
            return Err(KvError::Unavailable(
                "the meta range has no descriptor for the key yet".into(),
            ));
        };
        let desc = decode_desc(value)?;
        if !desc.contains(key) {
            // The meta range is being updated after a split: retry soon.
            return Err(KvError::Unavailable(format!(
                "meta descriptor of range {} does not cover the key yet",
                desc.id
            )));
        }
        Ok(RangeLocation {
            leaseholder: leaseholder(&node, &desc),
            desc,
        })
    }

    async fn ranges(&self, start: &[u8], end: &[u8]) -> Result<Vec<RangeLocation>, KvError> {
        let node = self.get()?;
        let mut out = Vec::new();
        if start < META_END {
            out.push(meta_location(&node));
        }
        let (_, span_end) = meta::descriptor_span();
        let mut from = meta::overlap_start(start.max(META_END));
        loop {
            let scan = node
                .meta()
                .scan(from.clone(), span_end.clone(), 256)
                .await?;
            let n = scan.pairs.len();
            for (k, v) in &scan.pairs {
                let desc = decode_desc(v)?;
                if !end.is_empty() && desc.start_key.as_slice() >= end {
                    return Ok(out);
                }
                out.push(RangeLocation {
                    leaseholder: leaseholder(&node, &desc),
                    desc,
                });
                from = k.clone();
                from.push(0);
            }
            if n < 256 && scan.resume_key.is_none() {
                return Ok(out);
            }
            if let Some(r) = scan.resume_key {
                from = r;
            }
        }
    }

    fn observe(&self, range_id: RangeId, leaseholder: u64) {
        if let Some(node) = self.node.upgrade() {
            node.hints.write().insert(range_id, leaseholder);
        }
    }
}

#[async_trait]
impl TimestampOracle for NodeHandle {
    async fn get_ts(&self) -> Result<Timestamp, KvError> {
        self.get()?.timestamp().await
    }
}

#[async_trait]
impl RangeService for NodeHandle {
    fn node_id(&self) -> u64 {
        self.node_id
    }

    async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>, KvError> {
        RangeService::get(&*self.get()?, header, key, read).await
    }

    async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult, KvError> {
        RangeService::scan(&*self.get()?, header, start, end, read, limit).await
    }

    async fn write(&self, header: RangeHeader, write: KvWrite) -> Result<WriteResponse, KvError> {
        RangeService::write(&*self.get()?, header, write).await
    }
}
