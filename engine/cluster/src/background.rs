//! A node's background work: probing peers, refreshing the node registry,
//! replacing dead nodes' replicas, adding replicas to under-replicated
//! ranges it leads, spreading replicas over the nodes, dropping replicas it
//! was removed from, keeping the meta range's
//! descriptors current, splitting ranges that grew too large or busy,
//! merging small idle neighbours, and resolving merges whose coordinator
//! died.

use std::sync::{Arc, Weak};
use std::time::Duration;

use holo_kv::KvError;

use crate::meta::META_RANGE;
use crate::node::ClusterNode;

const TICK: Duration = Duration::from_secs(1);

/// Starts the background loops of `node`; they end when the node is dropped.
pub fn spawn(node: &Arc<ClusterNode>) {
    let weak = Arc::downgrade(node);
    tokio::spawn(run(weak.clone()));
    tokio::spawn(collect_garbage(weak));
}

/// Every `--gc-interval`: the meta range's leader advances the cluster's
/// safe point, then every node sweeps the ranges it leads.
async fn collect_garbage(node: Weak<ClusterNode>) {
    // A node that was down adopts the cluster's safe point at once.
    if let Some(n) = node.upgrade()
        && let Ok(safe_point) = n.cluster_gc_safe_point().await
        && let Err(e) = n.store().advance_gc_safe_point(safe_point)
    {
        tracing::warn!(error = %e, "adopting the cluster's GC safe point failed");
    }
    loop {
        let Some(interval) = node.upgrade().map(|n| n.config().gc_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(node) = node.upgrade() else { return };
        if node.replica(META_RANGE).is_some_and(|r| r.is_leader()) {
            match node.gc_coordinate().await {
                Ok(Some(safe_point)) => tracing::info!(%safe_point, "advanced the GC safe point"),
                Ok(None) => {}
                Err(e) => tracing::info!(error = %e, "GC round skipped"),
            }
        }
        match node.gc_sweep().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "GC sweep removed old versions"),
            Err(e) => tracing::warn!(error = %e, "GC sweep failed; will retry"),
        }
    }
}

async fn run(node: Weak<ClusterNode>) {
    let mut tick = 0u64;
    let mut load = LoadTracker::default();
    let mut frozen_since = std::collections::HashMap::new();
    loop {
        tokio::time::sleep(TICK).await;
        let Some(node) = node.upgrade() else { return };
        tick += 1;
        node.peers().probe();
        if let Err(e) = refresh_registry(&node).await {
            tracing::debug!(error = %e, "node registry refresh failed");
        }
        if let Err(e) = reconcile_descriptors(&node).await {
            tracing::debug!(error = %e, "meta descriptor reconcile failed");
        }
        if let Err(e) = node.replace_dead_replica().await {
            tracing::warn!(error = %e, "replacing a dead node's replica failed; will retry");
        }
        if let Err(e) = up_replicate(&node).await {
            tracing::warn!(error = %e, "adding a replica failed; will retry");
        }
        if tick % 5 == 2 {
            if let Err(e) = node.rebalance_one().await {
                tracing::warn!(error = %e, "moving a replica failed; will retry");
            }
            if let Err(e) = node.drop_removed_replicas().await {
                tracing::debug!(error = %e, "checking for removed replicas failed");
            }
        }
        if tick.is_multiple_of(10)
            && let Err(e) = balance_leases(&node).await
        {
            tracing::warn!(error = %e, "lease rebalancing failed; will retry");
        }
        if tick.is_multiple_of(5) {
            if let Err(e) = split_large_ranges(&node, &mut load).await {
                tracing::warn!(error = %e, "size- or load-based split failed; will retry");
            }
            if let Err(e) = merge_small_ranges(&node, &load).await {
                tracing::warn!(error = %e, "merging small ranges failed; will retry");
            }
        }
        if let Err(e) = resolve_frozen(&node, &mut frozen_since).await {
            tracing::warn!(error = %e, "resolving a frozen range failed; will retry");
        }
    }
}

async fn refresh_registry(node: &ClusterNode) -> Result<(), KvError> {
    let mut found = node.meta().read_registry().await?;
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
        if r.id() == META_RANGE || !r.is_leader() || !r.initialized() || r.frozen() != 0 {
            continue;
        }
        let desc = r.descriptor();
        let current = node.meta().descriptor_ending_at(&desc.end_key).await?;
        let stale = match &current {
            None => true,
            Some(c) if c.id == desc.id => {
                c.epoch.version < desc.epoch.version || c.replicas != desc.replicas
            }
            Some(c) => c.epoch.version < desc.epoch.version,
        };
        if stale {
            tracing::info!(range = %desc.id, "publishing range descriptor to meta");
            // Also drops descriptors of ranges it absorbed in a merge.
            node.publish_merged(&desc).await?;
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
    qps: std::collections::HashMap<holo_storage::RangeId, f64>,
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
        if elapsed > 0.0 {
            load.qps
                .insert(r.id(), served.saturating_sub(before) as f64 / elapsed);
        }
        if r.id() == META_RANGE || !r.is_leader() || !r.initialized() || r.frozen() != 0 {
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
            holo_storage::blocking(|| node.store().middle_key(&desc.start_key, &desc.end_key))
                .map_err(KvError::from)?
            && key > desc.start_key
        {
            tracing::info!(range = %desc.id, size, qps, "splitting a large or busy range");
            node.split_at(key).await?;
        }
    }
    Ok(())
}

/// Merges a range this node leads with its right-hand neighbour when both
/// are small (together under a quarter of `--split-size-mib`) and idle
/// (together under a quarter of `--split-load-qps`), on the same nodes, and
/// their boundary was not made on request. One merge per round; off when
/// size-based splitting is off.
async fn merge_small_ranges(node: &ClusterNode, load: &LoadTracker) -> Result<(), KvError> {
    let size_limit = node.config().split_size_bytes / 4;
    if size_limit == 0 {
        return Ok(());
    }
    let qps_limit = node.config().split_load_qps as f64 / 4.0;
    let replicas = node.replicas();
    let voters = |d: &holo_storage::RangeDescriptor| {
        let mut v: Vec<u64> = d.replicas.iter().map(|r| r.node_id).collect();
        v.sort_unstable();
        v
    };
    for l in &replicas {
        if l.id() == META_RANGE || !l.is_leader() || !l.initialized() || l.frozen() != 0 {
            continue;
        }
        let left = l.descriptor();
        if left.end_key.is_empty() {
            continue;
        }
        let Some(r) = replicas.iter().find(|r| {
            r.initialized() && r.frozen() == 0 && r.descriptor().start_key == left.end_key
        }) else {
            continue;
        };
        let right = r.descriptor();
        if voters(&left) != voters(&right) {
            continue;
        }
        let size = node
            .store()
            .approximate_size(&left.start_key, &right.end_key)
            .map_err(KvError::from)?;
        // Load is known after a full round.
        let (Some(lq), Some(rq)) = (load.qps.get(&left.id), load.qps.get(&right.id)) else {
            continue;
        };
        let qps = lq + rq;
        if size >= size_limit || (qps_limit > 0.0 && qps >= qps_limit) {
            continue;
        }
        if node.is_sticky(&left.end_key).await? {
            continue;
        }
        tracing::info!(left = %left.id, right = %right.id, size, qps, "merging small idle ranges");
        node.merge_at(left.start_key.clone()).await?;
        return Ok(());
    }
    Ok(())
}

/// Resolves merge attempts that left a range this node leads frozen for
/// longer than [`crate::merge::FROZEN_RESOLVE_AFTER`] (their coordinator
/// died or lost its way).
async fn resolve_frozen(
    node: &ClusterNode,
    since: &mut std::collections::HashMap<holo_storage::RangeId, std::time::Instant>,
) -> Result<(), KvError> {
    let frozen: Vec<_> = node
        .replicas()
        .into_iter()
        .filter(|r| r.frozen() != 0 && r.is_leader())
        .collect();
    since.retain(|id, _| frozen.iter().any(|r| r.id() == *id));
    for r in frozen {
        let first = *since.entry(r.id()).or_insert_with(std::time::Instant::now);
        if first.elapsed() >= crate::merge::FROZEN_RESOLVE_AFTER {
            since.remove(&r.id());
            node.resolve_frozen(&r).await?;
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
        if r.id() == META_RANGE || !r.is_leader() || !r.initialized() || r.frozen() != 0 {
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
