//! [`Proposer`]: a range's replicated writes, grouped (group commit).
//!
//! openraft appends, syncs and replicates one entry at a time per group, so
//! a range proposing one entry per write serves at most one write per log
//! sync. The proposer keeps at most [`MAX_IN_FLIGHT`] entries in flight
//! (one in a one-voter range);
//! the writes that arrive meanwhile wait in its queue and go out together
//! as one [`RaftCommand::Writes`] entry: one append, one sync on each
//! replica and one replication round for all of them. A write that finds a
//! free slot is proposed at once, alone, so a lone client waits for nothing.
//!
//! A group holds commands on disjoint keys only (the state machine
//! evaluates them against the state before the entry); a command that
//! shares a key with the group, a span command (`Gc`, `ClearRange`) and a
//! command that would make the entry too large start the next group. Each
//! write's latches travel with it and are released only when its entry has
//! applied (or failed), even if the caller stopped waiting. A one-phase
//! commit carries the lease (Raft term, span version) its timestamp was
//! chosen under; if the lease changed while it waited, it is answered
//! `NotLeader` (the client retries at the new leaseholder) rather than
//! entering the log under a later lease, below reads that lease served.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holo_kv::KvError;
use holo_raft::state_machine::SharedState;
use holo_raft::types::ApplyError;
use holo_raft::{RaftCommand, RaftResponse, RangeRaft};
use holo_storage::{RangeId, WriteCommand, WriteResult};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::commit_clock::LeaseEpoch;
use crate::latch::LatchGuard;

/// Entries of grouped writes a replicated range keeps in flight at most:
/// one being replicated while the leader appends the next. A one-voter
/// range keeps one: there is no replication to overlap with, and the
/// writes that wait meanwhile make the next group larger (measured:
/// pgbench updates on one node 3 441 tps with one, 2 800 with two; on 3
/// nodes 507 with one, 776 with two).
pub const MAX_IN_FLIGHT: usize = 2;
/// Commands one entry carries at most.
const MAX_GROUP_COMMANDS: usize = 256;
/// Bytes of commands a group carries at most: one entry must fit one
/// AppendEntries message (a single larger command still goes alone).
const MAX_GROUP_BYTES: usize = holo_raft::MAX_APPEND_BYTES;
/// How long a proposal may wait for its commit before the answer becomes
/// "ambiguous".
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(8);

type Result<T> = std::result::Result<T, KvError>;
/// A write's outcome: the apply result, or why it may not have applied.
pub type WriteOutcome = Result<std::result::Result<WriteResult, ApplyError>>;

struct Pending {
    cmd: WriteCommand,
    /// The lease a one-phase commit took its timestamp under: it may only
    /// enter the log in that lease.
    epoch: Option<LeaseEpoch>,
    bytes: usize,
    reply: oneshot::Sender<WriteOutcome>,
    /// Held until the write's answer is sent.
    latch: LatchGuard,
}

/// How many entries and commands a range's proposer replicated.
#[derive(Debug, Default)]
pub struct ProposerStats {
    /// Entries proposed.
    pub entries: AtomicU64,
    /// Commands they carried.
    pub commands: AtomicU64,
}

/// The write queue of one range's Raft group.
#[derive(Debug)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<Pending>,
    stats: Arc<ProposerStats>,
    range: RangeId,
}

impl Proposer {
    /// Starts the queue of `range` (on the current Tokio runtime). It stops
    /// when the proposer is dropped and its queue has drained.
    pub fn start(raft: RangeRaft, range: RangeId, shared: Arc<SharedState>) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ProposerStats::default());
        let group = Group {
            raft,
            range,
            shared,
        };
        tokio::spawn(run(group, rx, stats.clone()));
        Proposer { tx, stats, range }
    }

    /// Replicates `cmd` (whose keys `latch` holds) and returns its result
    /// once applied here. A command timestamped under lease `epoch` is
    /// refused with `NotLeader` if the lease changed before it is proposed.
    pub async fn write(
        &self,
        cmd: WriteCommand,
        epoch: Option<LeaseEpoch>,
        latch: LatchGuard,
    ) -> WriteOutcome {
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            bytes: cmd.payload_bytes(),
            epoch,
            cmd,
            reply,
            latch,
        };
        self.tx
            .send(pending)
            .map_err(|_| KvError::Unavailable(format!("range {} is shutting down", self.range)))?;
        rx.await.map_err(|_| {
            KvError::AmbiguousCommit(format!(
                "range {} stopped before the write's outcome was known",
                self.range
            ))
        })?
    }

    /// Entries and commands replicated so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.stats.entries.load(Ordering::Relaxed),
            self.stats.commands.load(Ordering::Relaxed),
        )
    }
}

fn is_span_command(cmd: &WriteCommand) -> bool {
    matches!(
        cmd,
        WriteCommand::Gc { .. } | WriteCommand::ClearRange { .. }
    )
}

/// The Raft group a proposer writes to.
#[derive(Clone)]
struct Group {
    raft: RangeRaft,
    range: RangeId,
    shared: Arc<SharedState>,
}

impl Group {
    fn voters(&self) -> usize {
        voters(&self.raft).len()
    }

    fn lease_epoch(&self) -> LeaseEpoch {
        (
            self.raft.metrics().borrow().current_term,
            self.shared.desc.read().epoch.version,
        )
    }
}

async fn run(group: Group, mut rx: mpsc::UnboundedReceiver<Pending>, stats: Arc<ProposerStats>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        // A one-voter range takes every slot: one entry in flight.
        let want = if group.voters() == 1 {
            MAX_IN_FLIGHT as u32
        } else {
            1
        };
        let Ok(slot) = slots.clone().acquire_many_owned(want).await else {
            return;
        };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let pending = gather(first, &mut rx, &mut carry);
        stats.entries.fetch_add(1, Ordering::Relaxed);
        stats
            .commands
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        let group = group.clone();
        tokio::spawn(async move {
            replicate(&group, pending).await;
            drop(slot);
        });
    }
}

/// `first` and the queued writes that can share its entry; the first one
/// that cannot is left in `carry`.
fn gather(
    first: Pending,
    rx: &mut mpsc::UnboundedReceiver<Pending>,
    carry: &mut Option<Pending>,
) -> Vec<Pending> {
    if is_span_command(&first.cmd) {
        return vec![first];
    }
    let mut keys: HashSet<Vec<u8>> = first.cmd.keys().iter().map(|k| k.to_vec()).collect();
    let mut bytes = first.bytes;
    let mut group = vec![first];
    while group.len() < MAX_GROUP_COMMANDS {
        let Ok(next) = rx.try_recv() else { break };
        let fits = bytes + next.bytes <= MAX_GROUP_BYTES;
        let cmd_keys = next.cmd.keys();
        if !fits || is_span_command(&next.cmd) || cmd_keys.iter().any(|k| keys.contains(*k)) {
            *carry = Some(next);
            break;
        }
        keys.extend(cmd_keys.iter().map(|k| k.to_vec()));
        bytes += next.bytes;
        group.push(next);
    }
    group
}

/// Proposes one entry for `pending` and answers each of its writes.
async fn replicate(group: &Group, pending: Vec<Pending>) {
    let (raft, range) = (&group.raft, group.range);
    // A one-phase commit whose lease ended while it waited would enter the
    // log under a later lease, below reads that lease may have served.
    let epoch = group.lease_epoch();
    let (pending, stale): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .partition(|p| p.epoch.is_none_or(|e| e == epoch));
    for p in stale {
        let leader = raft.metrics().borrow().current_leader;
        let _ = p.reply.send(Err(KvError::NotLeader {
            range_id: range,
            leader,
        }));
    }
    let (mut cmds, waiters): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .map(|p| (p.cmd, (p.reply, p.latch)))
        .unzip();
    let n = cmds.len();
    let cmd = match cmds.pop() {
        Some(only) if cmds.is_empty() => RaftCommand::Write(only),
        Some(last) => {
            cmds.push(last);
            RaftCommand::Writes(cmds)
        }
        None => return,
    };
    let results = match propose(raft, range, cmd).await {
        Ok(RaftResponse::Write(r)) if n == 1 => Ok(vec![r]),
        Ok(RaftResponse::Writes(rs)) if rs.len() == n => Ok(rs),
        Ok(other) => Err(unexpected(range, &other)),
        Err(e) => Err(e),
    };
    // Each write's latches go when its answer has been sent.
    match results {
        Ok(results) => {
            for ((reply, _latch), r) in waiters.into_iter().zip(results) {
                let _ = reply.send(Ok(r));
            }
        }
        Err(e) => {
            for (reply, _latch) in waiters {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The voters of `raft`'s membership (both sides of a change in
/// progress).
pub fn voters(raft: &RangeRaft) -> std::collections::BTreeSet<u64> {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

fn unexpected(range: RangeId, resp: &RaftResponse) -> KvError {
    KvError::Storage(format!(
        "range {range}: unexpected apply result {resp:?} for a write"
    ))
}

/// Proposes `cmd` to `range`'s group and waits for its application here.
pub async fn propose(raft: &RangeRaft, range: RangeId, cmd: RaftCommand) -> Result<RaftResponse> {
    match tokio::time::timeout(PROPOSE_TIMEOUT, raft.client_write(cmd)).await {
        Ok(Ok(resp)) => Ok(resp.data),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(KvError::NotLeader {
                range_id: range,
                leader: f.leader_id,
            })
        }
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
            Err(KvError::Unavailable(format!("range {range}: {e}")))
        }
        Ok(Err(RaftError::Fatal(f))) => Err(KvError::AmbiguousCommit(format!(
            "range {range} stopped: {f}"
        ))),
        Err(_) => Err(KvError::AmbiguousCommit(format!(
            "range {range} did not commit the write within {PROPOSE_TIMEOUT:?} (quorum lost?)"
        ))),
    }
}
