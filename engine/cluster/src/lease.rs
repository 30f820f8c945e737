//! Moving a range's lease (its Raft leadership) to another voter.

use std::time::{Duration, Instant};

use holo_kv::KvError;
use holo_storage::RangeId;

use crate::node::ClusterNode;
use crate::rpc::{AdminRequest, Request, Response};

impl ClusterNode {
    /// Moves the lease (Raft leadership) of `range` to node `to`. Runs at
    /// the current leaseholder (other nodes forward once): it stops
    /// serving and heartbeating the range, so followers' leader leases run
    /// out, and has `to` campaign until it leads or the attempt times out.
    pub async fn transfer_lease(&self, range: RangeId, to: u64) -> Result<(), KvError> {
        let replica = self.replica(range);
        let Some(replica) = replica.filter(|r| r.is_leader()) else {
            let leader = self.replica(range).and_then(|r| r.leader());
            return match leader {
                Some(l) if l != self.node_id() => match self
                    .peers()
                    .call(l, Request::from(AdminRequest::TransferLease { range, to }))
                    .await?
                {
                    Response::Done => Ok(()),
                    other => Err(KvError::Unavailable(format!("unexpected answer {other:?}"))),
                },
                _ => Err(KvError::NotLeader {
                    range_id: range,
                    leader,
                }),
            };
        };
        if to == self.node_id() {
            return Ok(());
        }
        if !replica.voters().contains(&to) {
            return Err(KvError::Storage(format!(
                "node {to} holds no voting replica of range {range}"
            )));
        }
        tracing::info!(%range, to, "transferring lease");
        replica.begin_transfer(to);
        replica.raft().runtime_config().heartbeat(false);
        let deadline =
            Instant::now() + Duration::from_millis(self.config.raft.election_max_ms * 3 + 2_000);
        let mut result = Err(KvError::Unavailable(format!(
            "node {to} did not take the lease of range {range} in time"
        )));
        while Instant::now() < deadline {
            let _ = self
                .peers()
                .call(to, Request::from(AdminRequest::Campaign { range }))
                .await;
            tokio::time::sleep(Duration::from_millis(self.config.raft.heartbeat_ms * 2)).await;
            if replica.leader() == Some(to) {
                result = Ok(());
                break;
            }
        }
        replica.raft().runtime_config().heartbeat(true);
        replica.end_transfer();
        result
    }
}
