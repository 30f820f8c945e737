//! Replica placement: which peers are alive, moving a replica from one
//! node to another through Raft membership changes, replacing the replicas
//! of dead nodes, spreading replicas onto nodes that hold fewer, and
//! dropping replicas a node no longer belongs to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use holo_kv::KvError;
use holo_storage::{RangeDescriptor, RangeId};

use crate::meta::{self, META_RANGE};
use crate::node::ClusterNode;
use crate::replica::RangeReplica;

impl ClusterNode {
    /// Voters of every local range this node leads that want another
    /// replica: `(range, voters)`.
    pub(crate) fn under_replicated(&self) -> Vec<(Arc<RangeReplica>, BTreeSet<u64>)> {
        let want = self
            .config
            .replication_factor
            .min(self.peers().live().len());
        let mut out = Vec::new();
        for r in self.replicas() {
            if !r.is_leader() || !r.initialized() || r.frozen() != 0 {
                continue;
            }
            if let Some(voters) = r.settled_voters()
                && voters.len() < want
            {
                out.push((r, voters));
            }
        }
        // The meta range first: everything else depends on it.
        out.sort_by_key(|(r, _)| r.id() != META_RANGE);
        out
    }

    /// Adds one replica to `replica`'s range on the live node without one
    /// that holds the fewest replicas.
    pub(crate) async fn add_replica(
        &self,
        replica: &RangeReplica,
        voters: &BTreeSet<u64>,
    ) -> Result<(), KvError> {
        let counts = self.replica_counts().await?;
        let candidate = counts
            .iter()
            .filter(|(id, _)| !voters.contains(id))
            .min_by_key(|(id, c)| (**c, **id))
            .map(|(id, _)| *id);
        match candidate {
            Some(id) => self.change_replicas(replica, Some(id), None).await,
            None => Ok(()),
        }
    }

    /// Changes the voters of `replica`'s range (led here): adds `add` (as a
    /// learner that catches up first, then a voter) and removes `remove`,
    /// in one membership change.
    pub(crate) async fn change_replicas(
        &self,
        replica: &RangeReplica,
        add: Option<u64>,
        remove: Option<u64>,
    ) -> Result<(), KvError> {
        let range = replica.id();
        let raft = replica.raft();
        if let Some(id) = add {
            let addr =
                self.nodes().get(&id).cloned().ok_or_else(|| {
                    KvError::InvalidRequest(format!("node {id} is not registered"))
                })?;
            tracing::info!(%range, node = id, "adding replica");
            tokio::time::timeout(Duration::from_secs(60), raft.add_learner(id, addr, true))
                .await
                .map_err(|_| {
                    KvError::Unavailable(format!(
                        "range {range}: new replica on node {id} did not catch up"
                    ))
                })?
                .map_err(|e| {
                    KvError::Unavailable(format!("range {range}: adding learner {id}: {e}"))
                })?;
        }
        // Read now: the catch-up may have taken a while.
        let mut voters = replica.voters();
        if let Some(id) = add {
            voters.insert(id);
        }
        if replica.frozen() != 0 {
            return Err(KvError::Unavailable(format!(
                "range {range} is being merged; its replicas stay as they are"
            )));
        }
        if let Some(id) = remove {
            tracing::info!(%range, node = id, "removing replica");
            voters.remove(&id);
        }
        if voters.is_empty() {
            return Err(KvError::InvalidRequest(format!(
                "range {range} cannot lose its last replica"
            )));
        }
        tokio::time::timeout(
            Duration::from_secs(30),
            raft.change_membership(voters, false),
        )
        .await
        .map_err(|_| KvError::Unavailable(format!("range {range}: membership change timed out")))?
        .map_err(|e| KvError::Unavailable(format!("range {range}: membership change: {e}")))?;
        tracing::info!(%range, ?add, ?remove, "replicas changed");
        Ok(())
    }

    /// Every range descriptor in the meta range.
    pub(crate) async fn all_descriptors(&self) -> Result<Vec<RangeDescriptor>, KvError> {
        let (start, end) = meta::descriptor_span();
        let scan = self.meta().scan(start, end, 100_000).await?;
        Ok(scan
            .pairs
            .iter()
            .filter_map(|(_, v)| holo_raft::codec::decode(v).ok())
            .collect())
    }

    /// Replicas per live node, from the meta range (every live node
    /// listed, with 0 when it holds none).
    pub(crate) async fn replica_counts(&self) -> Result<BTreeMap<u64, usize>, KvError> {
        let mut counts: BTreeMap<u64, usize> =
            self.peers().live().keys().map(|id| (*id, 0)).collect();
        for d in self.all_descriptors().await? {
            for r in &d.replicas {
                if let Some(c) = counts.get_mut(&r.node_id) {
                    *c += 1;
                }
            }
        }
        Ok(counts)
    }

    /// Removes a dead voter from one range this node leads, when a live
    /// node without a replica of it can take its place (up-replication
    /// adds that replica next). One change per call.
    pub(crate) async fn replace_dead_replica(&self) -> Result<(), KvError> {
        let live = self.peers().live();
        for r in self.replicas() {
            if !r.is_leader() || !r.initialized() || r.frozen() != 0 {
                continue;
            }
            let Some(voters) = r.settled_voters() else {
                continue;
            };
            let Some(dead) = voters.iter().copied().find(|v| self.peers().is_dead(*v)) else {
                continue;
            };
            if !live.keys().any(|id| !voters.contains(id)) {
                continue;
            }
            // The live node without a replica holding the fewest takes its
            // place: added (and caught up) before the dead one is removed.
            let counts = self.replica_counts().await?;
            let Some(to) = counts
                .iter()
                .filter(|(id, _)| !voters.contains(id))
                .min_by_key(|(id, c)| (**c, **id))
                .map(|(id, _)| *id)
            else {
                continue;
            };
            tracing::warn!(range = %r.id(), node = dead, to, "replacing the replica of a dead node");
            return self.change_replicas(&r, Some(to), Some(dead)).await;
        }
        Ok(())
    }

    /// Moves one replica of a range this node leads from the live node
    /// holding the most replicas to the one holding the fewest, when they
    /// differ by two or more. The meta range stays where it is.
    pub(crate) async fn rebalance_one(&self) -> Result<(), KvError> {
        let counts = self.replica_counts().await?;
        let (Some((&most, &max)), Some((&fewest, &min))) = (
            counts.iter().max_by_key(|(_, c)| **c),
            counts.iter().min_by_key(|(_, c)| **c),
        ) else {
            return Ok(());
        };
        if max < min + 2 {
            return Ok(());
        }
        for r in self.replicas() {
            if r.id() == META_RANGE || !r.is_leader() || !r.initialized() || r.frozen() != 0 {
                continue;
            }
            let Some(voters) = r.settled_voters() else {
                continue;
            };
            // The leader keeps its own replica (moving it needs a lease
            // transfer first; another leader of the range will move it).
            if voters.contains(&most) && !voters.contains(&fewest) && most != self.node_id() {
                tracing::info!(range = %r.id(), from = most, to = fewest, max, min, "rebalancing a replica");
                return self.change_replicas(&r, Some(fewest), Some(most)).await;
            }
        }
        Ok(())
    }

    /// Drops local replicas this node is no longer a member of: the meta
    /// range holds a newer descriptor of the range without this node (the
    /// removal's membership entry never reached it).
    pub(crate) async fn drop_removed_replicas(&self) -> Result<(), KvError> {
        for r in self.replicas() {
            if r.is_leader() || !r.initialized() || r.id() == META_RANGE {
                continue;
            }
            let local = r.descriptor();
            let Some(current) = self.meta().descriptor_ending_at(&local.end_key).await? else {
                continue;
            };
            // Checked again now: the replica may have been added back and
            // caught up meanwhile.
            if current.id == local.id
                && current.epoch.conf_ver > r.descriptor().epoch.conf_ver
                && !current.replicas.iter().any(|x| x.node_id == self.node_id())
            {
                tracing::info!(range = %local.id, "this node is no longer a replica; dropping it");
                self.remove_local_replica(local.id, true).await;
            }
        }
        Ok(())
    }

    /// Handles a membership change applied here: a node that is no longer a
    /// member (voter or learner) drops its replica and the range's data.
    pub(crate) async fn on_membership(&self, desc: &RangeDescriptor, members: &BTreeSet<u64>) {
        if members.contains(&self.node_id()) || members.is_empty() {
            return;
        }
        // The event may be stale (applied late, or replayed at startup)
        // while this node was added back since: only the current
        // membership decides.
        let current = self.replica(desc.id).map(|r| {
            r.raft()
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .nodes()
                .any(|(id, _)| *id == self.node_id())
        });
        if current == Some(false) {
            tracing::info!(range = %desc.id, "removed from the range; dropping the replica");
            self.remove_local_replica(desc.id, true).await;
        }
    }

    /// Stops and deletes the local replica of `range`; with `drop_data`,
    /// also deletes its span's data unless another local replica overlaps
    /// it or the range is frozen by a merge (its left neighbour is about to
    /// absorb that data).
    pub(crate) async fn remove_local_replica(&self, range: RangeId, drop_data: bool) {
        let span = self
            .replica(range)
            .filter(|r| r.frozen() == 0)
            .map(|r| r.descriptor());
        self.registry().destroy(range).await;
        let Some(desc) = span.filter(|_| drop_data) else {
            return;
        };
        self.registry().delete_span_data(range, &desc).await;
    }
}
