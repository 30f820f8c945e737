//! [`RangeReplica`]: one range's Raft group on this node, and the
//! leaseholder's read and write paths.
//!
//! The leaseholder is the Raft leader. Reads are served locally while the
//! leader's quorum acknowledgement is fresher than the lease (shorter than
//! the election timeout, so no other leader can exist), otherwise after a
//! read-index round (`ensure_linearizable`). Writes take latches on their
//! keys, are proposed, and are acknowledged once applied after a quorum
//! commit; latches are held until then, so readers of those keys wait.
//! A one-phase commit takes its commit timestamp from the replica's
//! [`CommitClock`], not from the oracle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holo_kv::KvError;
use holo_kv::service::{KvWrite, RangeHeader, WriteResponse};
use holo_kv::tso::TimestampOracle;
use holo_raft::state_machine::SharedState;
use holo_raft::types::ApplyError;
use holo_raft::{RaftCommand, RaftResponse, RangeRaft};
use holo_storage::{MvccStore, RangeDescriptor, RangeId, ReadOptions, ScanResult, WriteCommand};
use openraft::ServerState;
use openraft::error::{CheckIsLeaderError, RaftError};

use crate::commit_clock::{CommitClock, LeaseEpoch};
use crate::latch::{LatchKind, Latches, Span};
use crate::proposer::{self, Proposer};
use crate::status::ReplicaStatus;

/// How long a read-index round may take.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before confirming leadership again after a round without quorum.
const READ_RECONFIRM_PAUSE: Duration = Duration::from_millis(50);

/// One range on this node.
pub struct RangeReplica {
    id: RangeId,
    node_id: u64,
    raft: RangeRaft,
    shared: Arc<SharedState>,
    latches: Arc<Latches>,
    store: Arc<MvccStore>,
    lease_ms: u64,
    /// The node the lease is being handed to (0: none).
    transferring_to: AtomicU64,
    /// Requests served as leaseholder (for load-based splitting).
    requests: AtomicU64,
    /// One-phase commit timestamps above every read served.
    clock: CommitClock,
    /// The write queue that groups concurrent writes into one entry.
    proposer: Proposer,
}

impl std::fmt::Debug for RangeReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeReplica")
            .field("range", &self.id)
            .finish()
    }
}

type Result<T> = std::result::Result<T, KvError>;

impl RangeReplica {
    /// Wraps a started Raft group.
    pub fn new(
        node_id: u64,
        raft: RangeRaft,
        shared: Arc<SharedState>,
        store: Arc<MvccStore>,
        lease_ms: u64,
    ) -> RangeReplica {
        let id = shared.desc.read().id;
        let proposer = Proposer::start(raft.clone(), id, shared.clone());
        RangeReplica {
            id,
            node_id,
            shared,
            latches: Latches::new(),
            store,
            lease_ms,
            transferring_to: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            clock: CommitClock::new(),
            proposer,
            raft,
        }
    }

    /// The range id.
    pub fn id(&self) -> RangeId {
        self.id
    }

    /// The Raft handle.
    pub fn raft(&self) -> &RangeRaft {
        &self.raft
    }

    /// The current descriptor.
    pub fn descriptor(&self) -> RangeDescriptor {
        self.shared.desc.read().clone()
    }

    /// The timestamp oracle's persisted high-water mark (meta range).
    pub fn tso_high_water_ms(&self) -> u64 {
        self.shared.tso_high_water_ms.load(Ordering::SeqCst)
    }

    /// The merge attempt that froze the range (0: not frozen).
    pub fn frozen(&self) -> u64 {
        self.shared.frozen.load(Ordering::SeqCst)
    }

    /// The last applied log index.
    pub fn applied_index(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index)
    }

    /// Whether the replica has received its data (a replica created by a
    /// peer's message waits for a snapshot).
    pub fn initialized(&self) -> bool {
        !self.shared.desc.read().replicas.is_empty()
    }

    /// The leader this replica knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this replica leads its group.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// The voters of the range's membership (both sides of a change in
    /// progress).
    pub fn voters(&self) -> std::collections::BTreeSet<u64> {
        proposer::voters(&self.raft)
    }

    /// The voters, or `None` while a membership change is in progress.
    pub fn settled_voters(&self) -> Option<std::collections::BTreeSet<u64>> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        (m.membership().get_joint_config().len() == 1).then(|| m.membership().voter_ids().collect())
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The lease the commit clock is raised for: the Raft term and the span
    /// version (a merge brings in keys read under another lease).
    fn lease_epoch(&self) -> LeaseEpoch {
        (self.term(), self.shared.desc.read().epoch.version)
    }

    /// The highest read timestamp this replica served (or its commit clock
    /// was raised to).
    pub fn max_read_ts(&self) -> holo_txn_types::Timestamp {
        self.clock.max_read()
    }

    /// The replica's status for `holoctl` and `SHOW RANGES`.
    pub fn status(&self) -> ReplicaStatus {
        let desc = self.descriptor();
        let m = self.raft.metrics().borrow().clone();
        let approximate_bytes = self
            .store
            .approximate_size(&desc.start_key, &desc.end_key)
            .unwrap_or(0);
        ReplicaStatus {
            initialized: !desc.replicas.is_empty(),
            desc,
            leader: m.current_leader,
            term: m.current_term,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            approximate_bytes,
        }
    }

    fn check(&self, header: &RangeHeader) -> Result<RangeDescriptor> {
        let desc = self.shared.desc.read();
        if desc.id != header.range_id || desc.replicas.is_empty() {
            return Err(KvError::RangeNotFound {
                range_id: header.range_id,
                node_id: self.node_id,
            });
        }
        // A frozen range is being merged into its left neighbour: the
        // request looks its range up again and finds the merged one.
        if self.frozen() != 0 {
            return Err(KvError::EpochNotMatch {
                range_id: header.range_id,
                current: None,
            });
        }
        // Only the span generation matters for routing; replica changes
        // (conf_ver) do not move keys.
        if desc.epoch.version != header.epoch.version {
            return Err(KvError::EpochNotMatch {
                range_id: header.range_id,
                current: Some(Box::new(desc.clone())),
            });
        }
        Ok(desc.clone())
    }

    /// Requests served as leaseholder so far.
    pub fn requests_served(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops serving while the lease moves to `to`.
    pub fn begin_transfer(&self, to: u64) {
        self.transferring_to.store(to, Ordering::SeqCst);
    }

    /// Serves again (the transfer ended, one way or the other).
    pub fn end_transfer(&self) {
        self.transferring_to.store(0, Ordering::SeqCst);
    }

    fn not_leader(&self) -> KvError {
        let to = self.transferring_to.load(Ordering::SeqCst);
        if to != 0 {
            return KvError::NotLeader {
                range_id: self.id,
                leader: Some(to),
            };
        }
        KvError::NotLeader {
            range_id: self.id,
            leader: self.leader().filter(|l| *l != self.node_id),
        }
    }

    /// Fails unless this replica leads the group and holds a valid lease:
    /// a quorum acknowledged it within the lease and it applied an entry of
    /// its own term (so everything committed before it is applied).
    fn has_lease(&self) -> Result<bool> {
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Leader
            || m.current_leader != Some(self.node_id)
            || self.transferring_to.load(Ordering::SeqCst) != 0
        {
            return Err(self.not_leader());
        }
        let fresh = m
            .millis_since_quorum_ack
            .is_some_and(|ms| ms < self.lease_ms);
        let own_term_applied = m
            .last_applied
            .is_some_and(|l| l.leader_id.term == m.current_term);
        Ok(fresh && own_term_applied)
    }

    /// Makes a read at this replica linearizable.
    pub async fn ensure_readable(&self) -> Result<()> {
        if self.has_lease()? {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + READ_INDEX_TIMEOUT;
        // One heartbeat round that a busy follower answered late is not a
        // lost quorum: confirm again until the timeout.
        let confirm = async {
            loop {
                match self.raft.ensure_linearizable().await {
                    Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))
                        if tokio::time::Instant::now() + READ_RECONFIRM_PAUSE < deadline =>
                    {
                        tokio::time::sleep(READ_RECONFIRM_PAUSE).await;
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(KvError::NotLeader {
                    range_id: self.id,
                    leader: f.leader_id,
                })
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)))) => Err(
                KvError::Unavailable(format!("range {} cannot reach a quorum: {q}", self.id)),
            ),
            Ok(Err(RaftError::Fatal(f))) => Err(KvError::Unavailable(format!(
                "range {} stopped: {f}",
                self.id
            ))),
            Err(_) => Err(KvError::Unavailable(format!(
                "range {} cannot reach a quorum (no answer within {READ_INDEX_TIMEOUT:?})",
                self.id
            ))),
        }
    }

    /// Reads one key at `read.read_ts`.
    pub async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>> {
        let desc = self.check(&header)?;
        self.ensure_readable().await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.clock.observe_read(read.read_ts);
        let _latch = self
            .latches
            .acquire(vec![Span::point(&key)], LatchKind::Read)
            .await;
        Ok(self.store.get(&desc, &key, &read)?)
    }

    /// Scans `[start, end)` clamped to the range.
    pub async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult> {
        let desc = self.check(&header)?;
        self.ensure_readable().await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.clock.observe_read(read.read_ts);
        let span = Span {
            start: start.clone(),
            end: end.clone(),
        };
        let _latch = self.latches.acquire(vec![span], LatchKind::Read).await;
        Ok(self.store.scan(&desc, &start, &end, &read, limit)?)
    }

    /// Replicates a write and returns its result once applied here. A
    /// one-phase commit takes its commit timestamp from the replica's
    /// commit clock inside the latches of its keys; `tso` is asked (before
    /// any latch) only when the clock has not been raised during the
    /// current lease.
    pub async fn write(
        &self,
        header: RangeHeader,
        write: KvWrite,
        tso: &dyn TimestampOracle,
    ) -> Result<WriteResponse> {
        self.check(&header)?;
        self.require_quorum().await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        if matches!(write, KvWrite::OnePc { .. }) {
            let epoch = self.lease_epoch();
            if !self.clock.synced_for(epoch) {
                let now = tso.get_ts().await?;
                self.clock.raise(now, epoch);
            }
        }
        let latch = self.latches.acquire_for(&write).await;
        let epoch = self.lease_epoch();
        let (cmd, commit_ts) = match write {
            KvWrite::Command(cmd) => (cmd, None),
            KvWrite::OnePc {
                mutations,
                start_ts,
            } => {
                // The lease may have moved between the raise and the
                // latches: commit only on a clock raised for this lease.
                if !self.clock.synced_for(epoch) {
                    return Err(self.not_leader());
                }
                let commit_ts = self.clock.commit_ts(start_ts);
                (
                    WriteCommand::OnePc {
                        mutations,
                        start_ts,
                        commit_ts,
                    },
                    Some(commit_ts),
                )
            }
        };
        let bytes = cmd.payload_bytes();
        if bytes > holo_raft::MAX_COMMAND_BYTES {
            return Err(KvError::TxnTooLarge(format!(
                "one write of {bytes} bytes exceeds the limit of {} bytes for a replicated \
                 entry (a single row cannot be larger)",
                holo_raft::MAX_COMMAND_BYTES
            )));
        }
        self.store.check_write_safe_point(&cmd)?;
        let epoch = commit_ts.map(|_| epoch);
        match self.proposer.write(cmd, epoch, latch).await? {
            Ok(result) => Ok(WriteResponse { result, commit_ts }),
            Err(e) => Err(self.apply_error(e)),
        }
    }

    /// Refuses a write up front when the leader has not heard from a quorum
    /// for longer than an election timeout: it would not commit.
    async fn require_quorum(&self) -> Result<()> {
        // A leader just elected (or a range just split off) has heard from
        // no one yet: wait for its first acknowledgements instead of
        // refusing the write.
        let mut rx = self.raft.metrics();
        if rx.borrow().millis_since_quorum_ack.is_none() {
            let first_ack = rx.wait_for(|m| {
                m.millis_since_quorum_ack.is_some() || m.state != ServerState::Leader
            });
            let _ = tokio::time::timeout(Duration::from_millis(8 * self.lease_ms), first_ack).await;
        }
        let m = rx.borrow();
        if m.state != ServerState::Leader
            || m.current_leader != Some(self.node_id)
            || self.transferring_to.load(Ordering::SeqCst) != 0
        {
            return Err(self.not_leader());
        }
        let voters = m.membership_config.membership().voter_ids().count();
        if voters > 1
            && m.millis_since_quorum_ack
                .is_none_or(|ms| ms > 4 * self.lease_ms)
        {
            return Err(KvError::Unavailable(format!(
                "range {} has lost its quorum ({} ms since the last acknowledgement)",
                self.id,
                m.millis_since_quorum_ack
                    .map_or("no".to_string(), |ms| ms.to_string())
            )));
        }
        Ok(())
    }

    pub(crate) fn apply_error(&self, e: ApplyError) -> KvError {
        match e {
            ApplyError::Key(k) => KvError::Key(k),
            ApplyError::KeyNotInRange => KvError::KeyNotInRange { range_id: self.id },
            ApplyError::Frozen => KvError::EpochNotMatch {
                range_id: self.id,
                current: None,
            },
            ApplyError::Invalid(m) => {
                KvError::Storage(format!("invalid command for range {}: {m}", self.id))
            }
        }
    }

    /// Proposes `cmd` alone and waits for its application here.
    pub async fn propose(&self, cmd: RaftCommand) -> Result<RaftResponse> {
        proposer::propose(&self.raft, self.id, cmd).await
    }

    /// Entries and commands the write queue has replicated (see
    /// [`Proposer`]).
    pub fn proposal_stats(&self) -> (u64, u64) {
        self.proposer.stats()
    }

    /// Stops the group.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(range = %self.id, error = %e, "raft shutdown failed");
        }
    }
}
