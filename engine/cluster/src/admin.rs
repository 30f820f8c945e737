//! [`ClusterAdminImpl`]: range administration for the SQL layer and tools.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use holo_kv::KvError;
use holo_kv::service::{ClusterAdmin, RangeInfo};

use crate::node::ClusterNode;
use crate::rpc::{AdminRequest, Request, Response};

/// Splits and range listings through a node.
#[derive(Debug)]
pub struct ClusterAdminImpl {
    node: Weak<ClusterNode>,
}

impl ClusterAdminImpl {
    /// Administration through `node`.
    pub fn new(node: &Arc<ClusterNode>) -> ClusterAdminImpl {
        ClusterAdminImpl {
            node: Arc::downgrade(node),
        }
    }

    fn node(&self) -> Result<Arc<ClusterNode>, KvError> {
        self.node
            .upgrade()
            .ok_or_else(|| KvError::Unavailable("the node is shutting down".into()))
    }
}

#[async_trait]
impl ClusterAdmin for ClusterAdminImpl {
    async fn split_at(&self, key: Vec<u8>) -> Result<(), KvError> {
        self.node()?.admin_split(key).await.map(|_| ())
    }

    async fn unsplit_at(&self, key: Vec<u8>) -> Result<(), KvError> {
        self.node()?.admin_unsplit(key).await.map(|_| ())
    }

    async fn range_info(&self, start: &[u8], end: &[u8]) -> Result<Vec<RangeInfo>, KvError> {
        let node = self.node()?;
        let locs = node.kv().cache().ranges(start, end).await?;
        // One status call per leaseholder for leaders and sizes.
        let mut statuses = HashMap::new();
        for loc in &locs {
            if let std::collections::hash_map::Entry::Vacant(e) = statuses.entry(loc.leaseholder)
                && let Ok(Response::Status(s)) = node
                    .peers()
                    .call(loc.leaseholder, Request::from(AdminRequest::Status))
                    .await
            {
                e.insert(s);
            }
        }
        Ok(locs
            .into_iter()
            .map(|loc| {
                let replica = statuses
                    .get(&loc.leaseholder)
                    .and_then(|s| s.replicas.iter().find(|r| r.desc.id == loc.desc.id));
                RangeInfo {
                    leaseholder: replica.and_then(|r| r.leader),
                    approximate_bytes: replica.map_or(0, |r| r.approximate_bytes),
                    desc: replica.map_or(loc.desc, |r| r.desc.clone()),
                }
            })
            .collect())
    }
}
