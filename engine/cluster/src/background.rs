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
    let mut load = LoadTracker::default();
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
        if tick.is_multiple_of(10)
            && let Err(e) = balance_leases(&node).await
        {
            tracing::warn!(error = %e, "lease rebalancing failed; will retry");
        }
        if tick.is_multiple_of(5)
            && let Err(e) = split_large_ranges(&node, &mut load).await
        {
            tracing::warn!(error = %e, "size- or load-based split failed; will retry");
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

/// Requests per range between two size/load rounds.
#[derive(Default)]
struct LoadTracker {
    last: std::collections::HashMap<holo_storage::RangeId, u64>,
    at: Option<std::time::Instant>,
}

/// Splits ranges this node leads that are larger than `--split-size-mib` or
/// busier than `--split-load-qps`, at their middle key.
async fn split_large_ranges(node: &ClusterNode, load: &mut LoadTracker) -> Result<(), KvError> {
    let size_limit = node.config().split_size_bytes;
    let qps_limit = node.config().split_load_qps;
    let elapsed = load.at.map_or(0.0, |t| t.elapsed().as_secs_f64());
    load.at = Some(std::time::Instant::now());
    for r in node.replicas() {
        let served = r.requests_served();
        let before = load.last.insert(r.id(), served).unwrap_or(served);
        if r.id() == META_RANGE || !r.is_leader() || !r.initialized() {
            continue;
        }
        let desc = r.descriptor();
        let size = node
            .store()
            .approximate_size(&desc.start_key, &desc.end_key)
            .map_err(KvError::from)?;
        let qps = if elapsed > 0.0 {
            served.saturating_sub(before) as f64 / elapsed
        } else {
            0.0
        };
        let too_big = size_limit > 0 && size >= size_limit;
        let too_busy = qps_limit > 0 && qps >= qps_limit as f64;
        if !too_big && !too_busy {
            continue;
        }
        if let Some(key) =
            holo_raft::blocking(|| node.store().middle_key(&desc.start_key, &desc.end_key))
                .map_err(KvError::from)?
            && key > desc.start_key
        {
            tracing::info!(range = %desc.id, size, qps, "splitting a large or busy range");
            node.split_at(key).await?;
        }
    }
    Ok(())
}

/// Spreads leaseholders: when this node holds at least two more leases than
/// the least-loaded node (among the leaders its replicas know of), it hands
/// one data range's lease to that node. One transfer per round.
async fn balance_leases(node: &ClusterNode) -> Result<(), KvError> {
    let mut leases: std::collections::BTreeMap<u64, usize> =
        node.nodes().keys().map(|id| (*id, 0)).collect();
    let replicas = node.replicas();
    for r in &replicas {
        if let Some(l) = r.leader()
            && r.id() != META_RANGE
        {
            *leases.entry(l).or_insert(0) += 1;
        }
    }
    let mine = leases.get(&node.node_id()).copied().unwrap_or(0);
    for r in replicas {
        if r.id() == META_RANGE || !r.is_leader() || !r.initialized() {
            continue;
        }
        let voters: Vec<u64> = r.descriptor().replicas.iter().map(|x| x.node_id).collect();
        let target = voters
            .iter()
            .filter(|v| **v != node.node_id())
            .min_by_key(|v| leases.get(v).copied().unwrap_or(0));
        if let Some(&to) = target
            && leases.get(&to).copied().unwrap_or(0) + 2 <= mine
        {
            return node.transfer_lease(r.id(), to).await;
        }
    }
    Ok(())
}
