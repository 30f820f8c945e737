//! Splitting a range in two at a key: at the leaseholder (other nodes
//! forward), with a fresh range id from the meta range, and the new
//! descriptors published there; and starting the right-hand replica when a
//! split applies on this node.

use holo_kv::KvError;
use holo_raft::{RaftCommand, RaftResponse};
use holo_storage::RangeDescriptor;

use crate::meta::META_RANGE;
use crate::node::ClusterNode;
use crate::retry::retry_stale;
use crate::rpc::{AdminRequest, Request, Response};

impl ClusterNode {
    /// Splits at `key` on request (`SPLIT AT`, `holoctl split`): the
    /// boundary is kept by automatic merging.
    pub async fn admin_split(
        &self,
        key: Vec<u8>,
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        let pair = self.split_at(key.clone()).await?;
        self.set_sticky(&key, true).await?;
        Ok(pair)
    }

    /// Splits the range holding `key` at `key`, retrying while the route is
    /// stale (a range that just split is still electing its leader).
    pub async fn split_at(
        &self,
        key: Vec<u8>,
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        let kv = self.kv();
        retry_stale(
            || self.split_once(key.clone()),
            |e| {
                if let Some(loc) = kv.cache().peek(&key) {
                    kv.cache().on_stale(loc.desc.id, e);
                }
                false
            },
        )
        .await
    }

    /// One split attempt: at the leaseholder, or forwarded to it.
    pub(crate) async fn split_once(
        &self,
        key: Vec<u8>,
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        let loc = self.kv().cache().locate(&key).await?;
        if loc.desc.id == META_RANGE {
            return Err(KvError::Storage("the meta range cannot be split".into()));
        }
        if loc.desc.start_key == key {
            return Ok((loc.desc.clone(), loc.desc));
        }
        let replica = match self.replica(loc.desc.id) {
            Some(r) if r.is_leader() => r,
            _ => {
                return match self
                    .peers()
                    .call(
                        loc.leaseholder,
                        Request::from(AdminRequest::Split { key: key.clone() }),
                    )
                    .await
                {
                    Ok(Response::Done) => {
                        self.kv().cache().invalidate(loc.desc.id);
                        let left = self.kv().cache().locate(&loc.desc.start_key).await?;
                        let right = self.kv().cache().locate(&key).await?;
                        Ok((left.desc, right.desc))
                    }
                    Ok(other) => Err(KvError::Unavailable(format!(
                        "unexpected split answer {other:?}"
                    ))),
                    Err(e) => Err(e),
                };
            }
        };
        let new_range_id = self.meta().allocate_range_id().await?;
        let (left, right) = match replica
            .propose(RaftCommand::Split {
                split_key: key,
                new_range_id,
            })
            .await?
        {
            RaftResponse::Split(Ok(pair)) => pair,
            RaftResponse::Split(Err(e)) => return Err(replica.apply_error(e)),
            other => {
                return Err(KvError::Storage(format!(
                    "unexpected split result {other:?}"
                )));
            }
        };
        self.meta()
            .publish_descriptors(&[left.clone(), right.clone()])
            .await?;
        self.kv().cache().invalidate(left.id);
        tracing::info!(left = %left.id, right = %right.id, "split range");
        Ok((left, right))
    }

    /// Starts the right-hand replica of a split that applied here.
    pub(crate) async fn on_split(
        &self,
        left: &RangeDescriptor,
        right: &RangeDescriptor,
    ) -> Result<(), KvError> {
        let Some(replica) = self.registry().open_split(right).await? else {
            return Ok(());
        };
        tracing::info!(left = %left.id, right = %right.id, "range split applied");
        // The left range's leader campaigns for the right range right away,
        // so its clients see a short stale-route retry, not an election.
        if self.replica(left.id).is_some_and(|l| l.is_leader()) {
            let _ = replica.raft().trigger().elect().await;
        }
        Ok(())
    }

    /// Fails unless this node leads the range holding `key` (a split or
    /// merge forwarded here must run at the leaseholder).
    pub(crate) async fn lead_range_of(&self, key: &[u8]) -> Result<(), KvError> {
        let loc = self.kv().cache().locate(key).await?;
        match self.replica(loc.desc.id) {
            Some(r) if r.is_leader() => Ok(()),
            Some(r) => Err(KvError::NotLeader {
                range_id: r.id(),
                leader: r.leader(),
            }),
            None => Err(KvError::RangeNotFound {
                range_id: loc.desc.id,
                node_id: self.node_id(),
            }),
        }
    }
}
