//! A node's background work: refreshing the node registry, adding replicas
//! to under-replicated ranges it leads, keeping the meta range's
//! descriptors current, and splitting ranges that grew too large.

use std::sync::{Arc, Weak};
use std::time::Duration;

use holo_kv::KvError;

use crate::meta::{self, META_RANGE};
use crate::node::ClusterNode;

const TICK: Duration = Duration::from_secs(1);

/// Starts the background loops of `node`; they end when the node is dropped.
pub fn spawn(node: &Arc<ClusterNode>) {
    let weak = Arc::downgrade(node);
    tokio::spawn(run(weak));
}

async fn run(node: Weak<ClusterNode>) {
    let mut tick = 0u64;
    loop {
        tokio::time::sleep(TICK).await;
        let Some(node) = node.upgrade() else { return };
        tick += 1;
        if let Err(e) = refresh_registry(&node).await {
            tracing::debug!(error = %e, "node registry refresh failed");
        }
        if let Err(e) = reconcile_descriptors(&node).await {
            tracing::debug!(error = %e, "meta descriptor reconcile failed");
        }
        if let Err(e) = up_replicate(&node).await {
            tracing::warn!(error = %e, "adding a replica failed; will retry");
        }
        if tick.is_multiple_of(5)
            && let Err(e) = split_large_ranges(&node).await
        {
            tracing::warn!(error = %e, "size-based split failed; will retry");
        }
    }
}

async fn refresh_registry(node: &ClusterNode) -> Result<(), KvError> {
    let mut found = node.read_registry().await?;
    // Members of local groups are reachable even before they registered.
    for r in node.replicas() {
        let m = r.raft().metrics().borrow().membership_config.clone();
        for (id, addr) in m.membership().nodes() {
            found.entry(*id).or_insert_with(|| addr.clone());
        }
    }
    node.add_nodes(found);
    Ok(())
}

/// Every range this node leads makes sure the meta range maps its end key
/// to its current descriptor (after splits, and to heal a split whose meta
/// update was interrupted).
async fn reconcile_descriptors(node: &ClusterNode) -> Result<(), KvError> {
    for r in node.replicas() {
        if r.id() == META_RANGE || !r.is_leader() || !r.initialized() {
            continue;
        }
        let desc = r.descriptor();
        let key = meta::descriptor_key(&desc.end_key);
        let mut end = key.clone();
        end.push(0);
        let scan = node.meta_scan(key, end, 1).await?;
        let current = scan
            .pairs
            .first()
            .and_then(|(_, v)| holo_raft::codec::decode::<holo_storage::RangeDescriptor>(v).ok());
        let stale = match &current {
            None => true,
            Some(c) if c.id == desc.id => {
                c.epoch.version < desc.epoch.version || c.replicas != desc.replicas
            }
            Some(c) => c.epoch.version < desc.epoch.version,
        };
        if stale {
            tracing::info!(range = %desc.id, "publishing range descriptor to meta");
            node.publish_descriptors(std::slice::from_ref(&desc))
                .await?;
        }
    }
    Ok(())
}

async fn up_replicate(node: &ClusterNode) -> Result<(), KvError> {
    if let Some((replica, voters)) = node.under_replicated().into_iter().next() {
        node.add_replica(&replica, &voters).await?;
    }
    Ok(())
}

async fn split_large_ranges(node: &ClusterNode) -> Result<(), KvError> {
    let limit = node.config().split_size_bytes;
    if limit == 0 {
        return Ok(());
    }
    for r in node.replicas() {
        if r.id() == META_RANGE || !r.is_leader() || !r.initialized() {
            continue;
        }
        let desc = r.descriptor();
        let size = node
            .store()
            .approximate_size(&desc.start_key, &desc.end_key)
            .map_err(KvError::from)?;
        if size < limit {
            continue;
        }
        if let Some(key) = node
            .store()
            .middle_key(&desc.start_key, &desc.end_key)
            .map_err(KvError::from)?
            && key > desc.start_key
        {
            tracing::info!(range = %desc.id, size, "splitting a large range");
            node.split_at(key).await?;
        }
    }
    Ok(())
}
