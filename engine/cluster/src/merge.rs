//! Range merges: a range `R` folds into its left-hand neighbour `L`.
//!
//! `L` and `R` must have the same voters, so `R`'s data is already in the
//! store of every node of `L` (ranges of a node share one RocksDB): a merge
//! moves no data, only the boundary.
//!
//! 1. **Freeze** `R` through its Raft log: from that entry on every replica
//!    of `R` refuses reads and writes (clients retry and find the merged
//!    range).
//! 2. **Wait** until every replica of `R` applied the freeze.
//! 3. **Merge** through `L`'s Raft log: on apply, `L` widens over `R`'s span
//!    and `R`'s Raft state is dropped in the same batch. This entry is the
//!    commit point.
//! 4. **Publish** `L`'s descriptor and delete `R`'s in the meta range (the
//!    reconcile loop repairs an interrupted publish).
//!
//! An attempt that fails between 1 and 3 is fenced in `L`'s log
//! ([`RaftCommand::MergeAbort`]): a late `Merge` of it cannot apply, and `R`
//! unfreezes. A range left frozen by a coordinator that died is resolved the
//! same way by its own leaseholder after [`FROZEN_RESOLVE_AFTER`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use holo_kv::KvError;
use holo_raft::{RaftCommand, RaftResponse};
use holo_storage::{RangeDescriptor, RangeId};

use crate::meta::{self, META_RANGE};
use crate::node::ClusterNode;
use crate::replica::RangeReplica;
use crate::retry::retry_stale;
use crate::rpc::{AdminRequest, Request, Response};

/// How long a range may stay frozen before its leaseholder resolves the
/// merge attempt itself.
pub const FROZEN_RESOLVE_AFTER: Duration = Duration::from_secs(10);
/// How long a replica of the right range may take to apply the freeze.
const FREEZE_APPLY_TIMEOUT: Duration = Duration::from_secs(5);

fn voters(desc: &RangeDescriptor) -> BTreeSet<u64> {
    desc.replicas.iter().map(|r| r.node_id).collect()
}

/// The range a stale-route error is about.
fn error_range(e: &KvError) -> Option<RangeId> {
    match e {
        KvError::RangeNotFound { range_id, .. }
        | KvError::EpochNotMatch { range_id, .. }
        | KvError::KeyNotInRange { range_id }
        | KvError::NotLeader { range_id, .. } => Some(*range_id),
        _ => None,
    }
}

fn unexpected(what: &str, answer: &Response) -> KvError {
    KvError::Unavailable(format!("unexpected {what} answer {answer:?}"))
}

impl ClusterNode {
    /// Merges the range holding `key` with its right-hand neighbour on
    /// request (`holoctl merge`, `ALTER TABLE ... UNSPLIT AT`): the
    /// boundary stops being one kept by automatic merging, and the ranges
    /// merge now. Returns the merged range.
    pub async fn admin_merge(&self, key: Vec<u8>) -> Result<RangeDescriptor, KvError> {
        let loc = self.kv().cache().locate(&key).await?;
        if !loc.desc.end_key.is_empty() {
            self.set_sticky(&loc.desc.end_key, false).await?;
        }
        self.merge_at(key).await
    }

    /// Removes the boundary at `key` on request: merges the range starting
    /// at `key` into the range ending there.
    pub async fn admin_unsplit(&self, key: Vec<u8>) -> Result<RangeDescriptor, KvError> {
        let loc = self.kv().cache().locate(&key).await?;
        if loc.desc.start_key != key {
            return Err(KvError::InvalidRequest(
                "no range starts at the given key: there is no boundary to remove".into(),
            ));
        }
        let left = self.left_neighbour(&loc.desc).await?;
        if left.end_key != key || left.id == META_RANGE {
            return Err(KvError::InvalidRequest(
                "the boundary at the given key cannot be removed".into(),
            ));
        }
        self.set_sticky(&key, false).await?;
        self.merge_at(left.start_key).await
    }

    /// Merges the range holding `key` with its right-hand neighbour,
    /// retrying while routes are stale.
    pub async fn merge_at(&self, key: Vec<u8>) -> Result<RangeDescriptor, KvError> {
        let kv = self.kv();
        retry_stale(
            || self.merge_once(key.clone()),
            |e| {
                // The error may be about the right-hand range.
                match error_range(e) {
                    Some(range) => kv.cache().on_stale(range, e),
                    None => {
                        if let Some(loc) = kv.cache().peek(&key) {
                            kv.cache().on_stale(loc.desc.id, e);
                        }
                    }
                }
                false
            },
        )
        .await
    }

    /// One merge attempt: at the left range's leaseholder, or forwarded to
    /// it.
    pub(crate) async fn merge_once(&self, key: Vec<u8>) -> Result<RangeDescriptor, KvError> {
        let loc = self.kv().cache().locate(&key).await?;
        if loc.desc.id == META_RANGE {
            return Err(KvError::InvalidRequest(
                "the meta range cannot be merged".into(),
            ));
        }
        let replica = match self.replica(loc.desc.id) {
            Some(r) if r.is_leader() => r,
            _ => {
                return match self
                    .peers()
                    .call(
                        loc.leaseholder,
                        Request::from(AdminRequest::Merge { key: key.clone() }),
                    )
                    .await?
                {
                    Response::Done => {
                        self.kv().cache().invalidate(loc.desc.id);
                        Ok(self.kv().cache().locate(&key).await?.desc)
                    }
                    other => Err(unexpected("merge", &other)),
                };
            }
        };
        let left = replica.descriptor();
        if left.end_key.is_empty() {
            return Err(KvError::InvalidRequest(format!(
                "range {} is the last range: there is no right-hand range to merge with",
                left.id
            )));
        }
        let right_loc = self.kv().cache().locate(&left.end_key).await?;
        if right_loc.desc.start_key != left.end_key {
            self.kv().cache().invalidate(right_loc.desc.id);
            return Err(KvError::KeyNotInRange {
                range_id: right_loc.desc.id,
            });
        }
        if voters(&left) != voters(&right_loc.desc) {
            return Err(KvError::InvalidRequest(format!(
                "ranges {} (nodes {:?}) and {} (nodes {:?}) are not on the same nodes; \
                 a merge needs colocated replicas",
                left.id,
                voters(&left),
                right_loc.desc.id,
                voters(&right_loc.desc)
            )));
        }
        // Every replica must take part: with one down, the freeze would
        // only block the right range until the attempt gives up.
        if let Some(down) = voters(&left)
            .into_iter()
            .find(|v| !self.peers().recently_seen(*v))
        {
            return Err(KvError::Aborted(format!(
                "node {down}, a replica of ranges {} and {}, is not answering",
                left.id, right_loc.desc.id
            )));
        }
        let nonce = self.timestamp().await?.into_inner();
        let frozen = self
            .peers()
            .call(
                right_loc.leaseholder,
                Request::from(AdminRequest::Freeze {
                    range: right_loc.desc.id,
                    nonce,
                }),
            )
            .await;
        let (right, index) = match frozen {
            Ok(Response::Frozen { desc, index }) => (desc, index),
            Ok(other) => return Err(unexpected("freeze", &other)),
            Err(e) => {
                // This node's route to the right range was stale: learn
                // from it here (the caller may be another node).
                self.kv().cache().on_stale(right_loc.desc.id, &e);
                // Not proposed (wrong node): nothing to undo. Otherwise the
                // freeze may have applied: undo it now rather than leave the
                // range frozen until its leaseholder resolves it.
                if !matches!(
                    e,
                    KvError::NotLeader { .. }
                        | KvError::RangeNotFound { .. }
                        | KvError::EpochNotMatch { .. }
                        | KvError::KeyNotInRange { .. }
                ) && let Err(abort) = self.abort_merge(&right_loc.desc, nonce).await
                {
                    tracing::warn!(right = %right_loc.desc.id, error = %abort, "undoing an unconfirmed freeze failed");
                }
                return Err(e);
            }
        };
        let merged = match self
            .commit_merge(&replica, &left, &right, index, nonce)
            .await
        {
            Ok(merged) => merged,
            Err(e) => {
                tracing::warn!(left = %left.id, right = %right.id, error = %e, "merge failed; aborting it");
                if let Err(abort) = self.abort_merge(&right, nonce).await {
                    tracing::warn!(right = %right.id, error = %abort,
                        "aborting the merge failed; the range's leaseholder resolves it later");
                }
                // Not retried at once: another attempt would freeze the
                // right range again for as long.
                return Err(KvError::Aborted(format!(
                    "merge of ranges {} and {}: {e}",
                    left.id, right.id
                )));
            }
        };
        tracing::info!(left = %merged.id, right = %right.id, "merged ranges");
        self.kv().cache().invalidate(right.id);
        self.kv().cache().invalidate(merged.id);
        if let Err(e) = self.publish_merged(&merged).await {
            tracing::warn!(range = %merged.id, error = %e,
                "publishing the merged descriptor failed; the reconcile loop repairs it");
        }
        Ok(merged)
    }

    /// Steps 2 and 3: every replica of `right` applied the freeze, then the
    /// merge goes through `left`'s log.
    async fn commit_merge(
        &self,
        replica: &RangeReplica,
        left: &RangeDescriptor,
        right: &RangeDescriptor,
        index: u64,
        nonce: u64,
    ) -> Result<RangeDescriptor, KvError> {
        if right.start_key != left.end_key || voters(left) != voters(right) {
            return Err(KvError::EpochNotMatch {
                range_id: right.id,
                current: Some(Box::new(right.clone())),
            });
        }
        for r in &right.replicas {
            match self
                .peers()
                .call(
                    r.node_id,
                    Request::from(AdminRequest::WaitApplied {
                        range: right.id,
                        index,
                        nonce,
                    }),
                )
                .await?
            {
                Response::Done => {}
                other => return Err(unexpected("wait-applied", &other)),
            }
        }
        match replica
            .propose(RaftCommand::Merge {
                right: right.clone(),
                nonce,
                left_version: left.epoch.version,
            })
            .await?
        {
            RaftResponse::Merge(Ok(merged)) => {
                // Later snapshots of the range must include the absorbed
                // span: a replica added from an older one would apply the
                // merge without the right range's data.
                let _ = replica.raft().trigger().snapshot().await;
                Ok(merged)
            }
            RaftResponse::Merge(Err(e)) => Err(replica.apply_error(e)),
            other => Err(KvError::Storage(format!(
                "unexpected merge result {other:?}"
            ))),
        }
    }

    /// Fences merge attempt `nonce` in the range left of `right` and, when
    /// the fence took (the merge had not applied), unfreezes `right`.
    async fn abort_merge(&self, right: &RangeDescriptor, nonce: u64) -> Result<(), KvError> {
        let left = self.left_neighbour(right).await?;
        let fenced = retry_stale(
            || async {
                let loc = self.kv().cache().locate(&left.start_key).await?;
                match self
                    .peers()
                    .call(
                        loc.leaseholder,
                        Request::from(AdminRequest::MergeAbort {
                            range: loc.desc.id,
                            nonce,
                            right_start: right.start_key.clone(),
                        }),
                    )
                    .await
                {
                    Ok(Response::MergeAborted(fenced)) => Ok(fenced),
                    Ok(other) => Err(unexpected("merge abort", &other)),
                    Err(e) => {
                        self.kv().cache().on_stale(loc.desc.id, &e);
                        Err(e)
                    }
                }
            },
            |_| false,
        )
        .await?;
        if !fenced {
            tracing::info!(right = %right.id, "the merge had applied; nothing to abort");
            return Ok(());
        }
        let kv = self.kv();
        retry_stale(
            || async {
                let loc = kv.cache().locate(&right.start_key).await?;
                match self
                    .peers()
                    .call(
                        loc.leaseholder,
                        Request::from(AdminRequest::Unfreeze {
                            range: right.id,
                            nonce,
                        }),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        kv.cache().on_stale(loc.desc.id, &e);
                        Err(e)
                    }
                }
            },
            |_| false,
        )
        .await?;
        tracing::info!(right = %right.id, nonce, "merge aborted; range unfrozen");
        Ok(())
    }

    /// The descriptor of the range ending where `right` starts, from the
    /// meta range.
    async fn left_neighbour(&self, right: &RangeDescriptor) -> Result<RangeDescriptor, KvError> {
        match self
            .meta()
            .get(meta::descriptor_key(&right.start_key))
            .await?
        {
            Some(v) => holo_raft::codec::decode(&v).map_err(|e| KvError::Storage(e.to_string())),
            // The meta range no longer has a range ending there: the merge
            // applied and was published.
            None => {
                let loc = self.kv().cache().locate(&right.start_key).await?;
                Ok(loc.desc)
            }
        }
    }

    /// Writes `merged` under its end key and deletes the descriptors of
    /// older generations inside its span (the ranges it absorbed).
    pub(crate) async fn publish_merged(&self, merged: &RangeDescriptor) -> Result<(), KvError> {
        for _ in 0..10 {
            let start_ts = self.timestamp().await?;
            let mut from = meta::descriptor_key(&merged.start_key);
            from.push(0);
            let own = meta::descriptor_key(&merged.end_key);
            let mut to = own.clone();
            to.push(0);
            let found = self.meta().scan(from, to, 64).await?;
            let older = |v: &[u8]| {
                holo_raft::codec::decode::<RangeDescriptor>(v)
                    .is_ok_and(|d| d.epoch.version < merged.epoch.version)
            };
            // A newer descriptor under the end key (the range changed
            // again since): nothing to publish.
            let newer = |v: &[u8]| {
                holo_raft::codec::decode::<RangeDescriptor>(v).is_ok_and(|d| {
                    let (a, b) = (d.epoch, merged.epoch);
                    a.version > b.version
                        || (a.version == b.version
                            && (d.id != merged.id || a.conf_ver > b.conf_ver))
                })
            };
            if found.pairs.iter().any(|(k, v)| *k == own && newer(v)) {
                return Ok(());
            }
            let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = found
                .pairs
                .into_iter()
                .filter(|(k, v)| *k != own && older(v))
                .map(|(k, _)| (k, None))
                .collect();
            let value =
                holo_raft::codec::encode(merged).map_err(|e| KvError::Storage(e.to_string()))?;
            changes.push((meta::descriptor_key(&merged.end_key), Some(value)));
            match self.meta().write(changes, start_ts).await {
                Ok(()) => return Ok(()),
                Err(KvError::Key(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return Err(e),
            }
        }
        Err(KvError::Unavailable(
            "publishing a merged descriptor kept conflicting".into(),
        ))
    }

    /// Marks `split_key` as a boundary made on request (kept by automatic
    /// merging), or clears the mark.
    pub(crate) async fn set_sticky(&self, split_key: &[u8], sticky: bool) -> Result<(), KvError> {
        let start_ts = self.timestamp().await?;
        let value = sticky.then(|| vec![1]);
        self.meta()
            .write(vec![(meta::sticky_key(split_key), value)], start_ts)
            .await
    }

    /// Whether `split_key` is a boundary made on request.
    pub(crate) async fn is_sticky(&self, split_key: &[u8]) -> Result<bool, KvError> {
        Ok(self
            .meta()
            .get(meta::sticky_key(split_key))
            .await?
            .is_some())
    }

    /// Freezes the local leader replica of `range` for merge attempt
    /// `nonce`; answers its descriptor and an applied index at or after the
    /// freeze.
    pub(crate) async fn freeze_local(
        &self,
        range: RangeId,
        nonce: u64,
    ) -> Result<Response, KvError> {
        let replica = self.leader_replica(range)?;
        match replica.propose(RaftCommand::Freeze { nonce }).await? {
            RaftResponse::Freeze(Ok(desc)) => Ok(Response::Frozen {
                desc,
                index: replica.applied_index(),
            }),
            RaftResponse::Freeze(Err(e)) => Err(replica.apply_error(e)),
            other => Err(KvError::Storage(format!(
                "unexpected freeze result {other:?}"
            ))),
        }
    }

    /// Lifts the freeze of attempt `nonce` at the local leader of `range`.
    pub(crate) async fn unfreeze_local(
        &self,
        range: RangeId,
        nonce: u64,
    ) -> Result<Response, KvError> {
        let replica = self.leader_replica(range)?;
        match replica.propose(RaftCommand::Unfreeze { nonce }).await? {
            RaftResponse::Freeze(Ok(_)) => Ok(Response::Done),
            RaftResponse::Freeze(Err(e)) => Err(replica.apply_error(e)),
            other => Err(KvError::Storage(format!(
                "unexpected unfreeze result {other:?}"
            ))),
        }
    }

    /// Fences attempt `nonce` at the local leader of the left range.
    pub(crate) async fn merge_abort_local(
        &self,
        range: RangeId,
        nonce: u64,
        right_start: Vec<u8>,
    ) -> Result<Response, KvError> {
        let replica = self.leader_replica(range)?;
        match replica
            .propose(RaftCommand::MergeAbort { nonce, right_start })
            .await?
        {
            RaftResponse::MergeAbort(Ok(fenced)) => Ok(Response::MergeAborted(fenced)),
            RaftResponse::MergeAbort(Err(e)) => Err(replica.apply_error(e)),
            other => Err(KvError::Storage(format!(
                "unexpected merge-abort result {other:?}"
            ))),
        }
    }

    /// Waits until the local replica of `range` applied `index` and is
    /// frozen by attempt `nonce`.
    pub(crate) async fn wait_frozen(
        &self,
        range: RangeId,
        index: u64,
        nonce: u64,
    ) -> Result<Response, KvError> {
        let replica = self.replica(range).ok_or(KvError::Unavailable(format!(
            "node {} has no replica of range {range} to merge",
            self.node_id()
        )))?;
        let deadline = Instant::now() + FREEZE_APPLY_TIMEOUT;
        while replica.applied_index() < index || replica.frozen() != nonce {
            if Instant::now() > deadline {
                return Err(KvError::Unavailable(format!(
                    "the replica of range {range} on node {} did not apply the freeze of \
                     merge attempt {nonce} in time",
                    self.node_id()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Response::Done)
    }

    /// Resolves a merge attempt that left `replica` (led here) frozen for
    /// too long: fences it in the left range and unfreezes, unless the merge
    /// had applied.
    pub(crate) async fn resolve_frozen(&self, replica: &RangeReplica) -> Result<(), KvError> {
        let nonce = replica.frozen();
        if nonce == 0 {
            return Ok(());
        }
        tracing::warn!(range = %replica.id(), nonce, "range frozen too long; resolving its merge");
        self.abort_merge(&replica.descriptor(), nonce).await
    }

    fn leader_replica(&self, range: RangeId) -> Result<std::sync::Arc<RangeReplica>, KvError> {
        let replica = self.replica(range).ok_or(KvError::RangeNotFound {
            range_id: range,
            node_id: self.node_id(),
        })?;
        if !replica.is_leader() {
            return Err(KvError::NotLeader {
                range_id: range,
                leader: replica.leader(),
            });
        }
        Ok(replica)
    }
}
