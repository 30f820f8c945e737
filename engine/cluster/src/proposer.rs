//! [`Proposer`]: a range's replicated writes, grouped (group commit).
//!
//! openraft appends, syncs and replicates one entry at a time per group, so
//! a range proposing one entry per write serves at most one write per log
//! sync. The proposer keeps at most [`MAX_IN_FLIGHT`] entries in flight;
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
//! applied (or failed), even if the caller stopped waiting.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holo_kv::KvError;
use holo_raft::types::ApplyError;
use holo_raft::{RaftCommand, RaftResponse, RangeRaft};
use holo_storage::{RangeId, WriteCommand, WriteResult};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::latch::LatchGuard;

/// Entries of grouped writes a range keeps in flight at most: one being
/// appended and replicated while the next one gathers.
pub const MAX_IN_FLIGHT: usize = 2;
/// Commands one entry carries at most.
const MAX_GROUP_COMMANDS: usize = 256;
/// How long a proposal may wait for its commit before the answer becomes
/// "ambiguous".
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(8);

type Result<T> = std::result::Result<T, KvError>;
/// A write's outcome: the apply result, or why it may not have applied.
pub type WriteOutcome = Result<std::result::Result<WriteResult, ApplyError>>;

struct Pending {
    cmd: WriteCommand,
    bytes: usize,
    reply: oneshot::Sender<WriteOutcome>,
    _latch: LatchGuard,
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
    pub fn start(raft: RangeRaft, range: RangeId) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ProposerStats::default());
        tokio::spawn(run(raft, range, rx, stats.clone()));
        Proposer { tx, stats, range }
    }

    /// Replicates `cmd` (whose keys `latch` holds) and returns its result
    /// once applied here.
    pub async fn write(&self, cmd: WriteCommand, latch: LatchGuard) -> WriteOutcome {
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            bytes: cmd.payload_bytes(),
            cmd,
            reply,
            _latch: latch,
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

async fn run(
    raft: RangeRaft,
    range: RangeId,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    stats: Arc<ProposerStats>,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let group = gather(first, &mut rx, &mut carry);
        stats.entries.fetch_add(1, Ordering::Relaxed);
        stats
            .commands
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let raft = raft.clone();
        tokio::spawn(async move {
            replicate(&raft, range, group).await;
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
        let fits = bytes + next.bytes <= holo_raft::MAX_COMMAND_BYTES;
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

/// Proposes one entry for `group` and answers each of its writes.
async fn replicate(raft: &RangeRaft, range: RangeId, mut group: Vec<Pending>) {
    if group.len() == 1 {
        let Some(p) = group.pop() else { return };
        let outcome = match propose(raft, range, RaftCommand::Write(p.cmd)).await {
            Ok(RaftResponse::Write(r)) => Ok(r),
            Ok(other) => Err(unexpected(range, &other)),
            Err(e) => Err(e),
        };
        let _ = p.reply.send(outcome);
        return;
    }
    let (cmds, waiters): (Vec<_>, Vec<_>) = group
        .into_iter()
        .map(|p| (p.cmd, (p.reply, p._latch)))
        .unzip();
    let n = cmds.len();
    match propose(raft, range, RaftCommand::Writes(cmds)).await {
        Ok(RaftResponse::Writes(results)) if results.len() == n => {
            for ((reply, _latch), r) in waiters.into_iter().zip(results) {
                let _ = reply.send(Ok(r));
            }
        }
        Ok(other) => {
            let e = unexpected(range, &other);
            for (reply, _latch) in waiters {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for (reply, _latch) in waiters {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
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
