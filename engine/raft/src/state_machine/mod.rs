//! [`RangeStateMachine`]: applies a range's committed commands to the MVCC
//! store.
//!
//! Every entry's writes and the new applied state go in one RocksDB batch,
//! written without a WAL sync (the Raft log is synced; after a crash the
//! entries after the persisted applied index are applied again). Apply is
//! deterministic: commands carry all their inputs.

// openraft's storage traits return its (large) `StorageError`; the helpers
// feeding them use the same type.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use holo_storage::keys::CF_RAFT;
use holo_storage::{Engine, MvccStore, RangeDescriptor, RangeId, StorageError as HoloStorageError};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::RwLock;
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::TypeConfig;
use crate::codec::{decode, encode};
use crate::log_store::{TAG_PURGED, TAG_SM, key};
use crate::types::{ApplyError, NodeAddr, RaftCommand, RaftResponse};

/// Log index at which a range created by a split starts (its log before it
/// is "purged": replicas that missed the split catch up by snapshot).
pub const SPLIT_INIT_INDEX: u64 = 5;

type SResult<T> = Result<T, StorageError<u64>>;

mod merge;
mod persist;
mod snapshot;

pub use persist::{
    bootstrap_range, delete_range_state, initial_split_state, is_tombstoned, load_state,
    local_ranges,
};
pub use snapshot::{RangeSnapshotBuilder, snapshot_descriptor};

/// The persisted state of a range's state machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmState {
    /// Last applied log id.
    pub applied: Option<LogId<u64>>,
    /// Last applied membership.
    pub membership: StoredMembership<u64, NodeAddr>,
    /// The range's descriptor.
    pub desc: RangeDescriptor,
    /// The timestamp oracle's high-water mark (meta range).
    pub tso_high_water_ms: u64,
    /// The merge attempt that froze the range (0: not frozen).
    pub frozen: u64,
    /// Merge attempts fenced by [`RaftCommand::MergeAbort`] (most recent
    /// last, a few kept).
    pub aborted_merges: Vec<u64>,
}

/// How many fenced merge attempts a range remembers.
const ABORTED_MERGES_KEPT: usize = 16;

impl SmState {
    /// The state of a replica that has no data yet (it waits for a
    /// snapshot).
    pub fn empty(range: RangeId) -> SmState {
        SmState {
            applied: None,
            membership: StoredMembership::default(),
            desc: RangeDescriptor {
                id: range,
                start_key: Vec::new(),
                end_key: Vec::new(),
                epoch: Default::default(),
                replicas: Vec::new(),
            },
            tso_high_water_ms: 0,
            frozen: 0,
            aborted_merges: Vec::new(),
        }
    }
}

/// What a range's state machine shares with its replica; applies keep it
/// current.
#[derive(Debug)]
pub struct SharedState {
    /// The range's descriptor.
    pub desc: RwLock<RangeDescriptor>,
    /// The timestamp oracle's persisted high-water mark (meta range).
    pub tso_high_water_ms: AtomicU64,
    /// The merge attempt that froze the range (0: not frozen).
    pub frozen: AtomicU64,
}

impl SharedState {
    /// Shared state starting from `state`.
    pub fn new(state: &SmState) -> Arc<SharedState> {
        Arc::new(SharedState {
            desc: RwLock::new(state.desc.clone()),
            tso_high_water_ms: AtomicU64::new(state.tso_high_water_ms),
            frozen: AtomicU64::new(state.frozen),
        })
    }
}

/// What the state machine tells its node about.
#[derive(Debug, Clone)]
pub enum SmEvent {
    /// A split applied: start the right-hand range's group.
    Split {
        /// The shrunk range.
        left: RangeDescriptor,
        /// The new range.
        right: RangeDescriptor,
    },
    /// A snapshot replaced the range's data and descriptor.
    SnapshotInstalled {
        /// The descriptor after the snapshot.
        desc: RangeDescriptor,
    },
    /// The membership changed.
    Membership {
        /// The range after the change.
        desc: RangeDescriptor,
        /// Every member, voters and learners.
        members: std::collections::BTreeSet<u64>,
    },
    /// A merge applied: the left range absorbed `right`, whose replica on
    /// this node must stop.
    Merged {
        /// The left range after the merge.
        left: RangeDescriptor,
        /// The absorbed range.
        right: RangeId,
    },
}

fn any(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

/// The deterministic outcome of a command that failed (`Ok`), or the
/// engine's own failure, which stops the state machine (`Err`).
fn apply_error(e: HoloStorageError) -> Result<ApplyError, HoloStorageError> {
    match e {
        HoloStorageError::Key(k) => Ok(ApplyError::Key(k)),
        HoloStorageError::KeyOutOfRange { .. } => Ok(ApplyError::KeyNotInRange),
        HoloStorageError::InvalidCommand(m) => Ok(ApplyError::Invalid(m)),
        e => Err(e),
    }
}

/// A range's state machine.
pub struct RangeStateMachine {
    engine: Arc<Engine>,
    store: Arc<MvccStore>,
    range: RangeId,
    shared: Arc<SharedState>,
    state: SmState,
    events: UnboundedSender<SmEvent>,
}

impl std::fmt::Debug for RangeStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeStateMachine")
            .field("range", &self.range)
            .finish()
    }
}

impl RangeStateMachine {
    /// The state machine of a range whose state was persisted (by bootstrap,
    /// a split or an earlier run). `shared` is shared with the replica and
    /// kept current by applies.
    pub fn open(
        engine: Arc<Engine>,
        store: Arc<MvccStore>,
        state: SmState,
        shared: Arc<SharedState>,
        events: UnboundedSender<SmEvent>,
    ) -> RangeStateMachine {
        let sm = RangeStateMachine {
            engine,
            range: state.desc.id,
            store,
            shared,
            state,
            events,
        };
        sm.publish();
        sm
    }

    fn publish(&self) {
        *self.shared.desc.write() = self.state.desc.clone();
        self.shared
            .tso_high_water_ms
            .store(self.state.tso_high_water_ms, Ordering::SeqCst);
        self.shared
            .frozen
            .store(self.state.frozen, Ordering::SeqCst);
    }

    fn persist(&self, batch: &mut WriteBatch) -> Result<(), AnyError> {
        let cf = self.engine.cf(CF_RAFT).map_err(any)?;
        batch.put_cf(
            cf,
            key(self.range, TAG_SM),
            encode(&self.state).map_err(any)?,
        );
        Ok(())
    }

    fn apply_command(
        &mut self,
        cmd: RaftCommand,
        batch: &mut WriteBatch,
    ) -> SResult<(RaftResponse, Option<SmEvent>)> {
        Ok(match cmd {
            RaftCommand::Write(_) | RaftCommand::Writes(_) | RaftCommand::Split { .. }
                if self.state.frozen != 0 =>
            {
                match cmd {
                    RaftCommand::Write(_) => (RaftResponse::Write(Err(ApplyError::Frozen)), None),
                    RaftCommand::Writes(cmds) => (
                        RaftResponse::Writes(vec![Err(ApplyError::Frozen); cmds.len()]),
                        None,
                    ),
                    _ => (RaftResponse::Split(Err(ApplyError::Frozen)), None),
                }
            }
            RaftCommand::Writes(cmds) => {
                let desc = self.state.desc.clone();
                let (b, results) = self
                    .store
                    .evaluate_group(&desc, &cmds)
                    .map_err(|e| StorageIOError::write_state_machine(any(e)))?;
                *batch = b;
                let results = results
                    .into_iter()
                    .map(|r| match r {
                        Ok(v) => Ok(Ok(v)),
                        Err(e) => apply_error(e).map(Err),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| StorageIOError::write_state_machine(any(e)))?;
                (RaftResponse::Writes(results), None)
            }
            RaftCommand::Write(cmd) => {
                let desc = self.state.desc.clone();
                // A GC command raises this replica's safe point before any
                // version below it goes: reads below it now fail here.
                if let holo_storage::WriteCommand::Gc { safe_point, .. } = &cmd {
                    self.store
                        .advance_gc_safe_point(*safe_point)
                        .map_err(|e| StorageIOError::write_state_machine(any(e)))?;
                }
                match self.store.evaluate_unchecked(&desc, &cmd) {
                    Ok((b, result)) => {
                        *batch = b;
                        (RaftResponse::Write(Ok(result)), None)
                    }
                    Err(e) => match apply_error(e) {
                        Ok(e) => (RaftResponse::Write(Err(e)), None),
                        Err(e) => return Err(StorageIOError::write_state_machine(any(e)).into()),
                    },
                }
            }
            RaftCommand::Split {
                split_key,
                new_range_id,
            } => {
                let desc = self.state.desc.clone();
                let inside = split_key > desc.start_key
                    && (desc.end_key.is_empty() || split_key < desc.end_key);
                if !inside || new_range_id == desc.id {
                    return Ok((
                        RaftResponse::Split(Err(ApplyError::Invalid(format!(
                            "split key outside range {} or bad new id",
                            desc.id
                        )))),
                        None,
                    ));
                }
                let mut left = desc.clone();
                left.end_key = split_key.clone();
                left.epoch.version += 1;
                let right = RangeDescriptor {
                    id: new_range_id,
                    start_key: split_key,
                    end_key: desc.end_key.clone(),
                    epoch: left.epoch,
                    replicas: desc.replicas.clone(),
                };
                // A replica of the right-hand range may already have caught
                // up by snapshot (it was created by a faster peer's messages):
                // its state is newer than the split's initial state.
                let existing = load_state(&self.engine, new_range_id)
                    .map_err(StorageIOError::write_state_machine)?;
                if existing.is_none_or(|s| s.applied.is_none_or(|a| a.index <= SPLIT_INIT_INDEX)) {
                    initial_split_state(batch, &self.engine, &right, &self.state.membership)
                        .map_err(StorageIOError::write_state_machine)?;
                }
                self.state.desc = left.clone();
                (
                    RaftResponse::Split(Ok((left.clone(), right.clone()))),
                    Some(SmEvent::Split { left, right }),
                )
            }
            RaftCommand::TsoHighWater { physical_ms } => {
                self.state.tso_high_water_ms = self.state.tso_high_water_ms.max(physical_ms);
                (
                    RaftResponse::TsoHighWater(self.state.tso_high_water_ms),
                    None,
                )
            }
            RaftCommand::Freeze { nonce } => (RaftResponse::Freeze(self.freeze(nonce)), None),
            RaftCommand::Unfreeze { nonce } => {
                if self.state.frozen == nonce {
                    self.state.frozen = 0;
                }
                (RaftResponse::Freeze(Ok(self.state.desc.clone())), None)
            }
            RaftCommand::Merge {
                right,
                nonce,
                left_version,
            } => match self.merge(&right, nonce, left_version, batch)? {
                Ok(left) => (
                    RaftResponse::Merge(Ok(left.clone())),
                    Some(SmEvent::Merged {
                        left,
                        right: right.id,
                    }),
                ),
                Err(e) => (RaftResponse::Merge(Err(e)), None),
            },
            RaftCommand::MergeAbort { nonce, right_start } => (
                RaftResponse::MergeAbort(self.merge_abort(nonce, &right_start)),
                None,
            ),
        })
    }

    fn apply_entries<I>(&mut self, entries: I) -> SResult<Vec<RaftResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>>,
    {
        let mut out = Vec::new();
        for entry in entries {
            let mut batch = WriteBatch::default();
            let (response, event) = match entry.payload {
                EntryPayload::Blank => (RaftResponse::None, None),
                EntryPayload::Normal(cmd) => self.apply_command(cmd, &mut batch)?,
                EntryPayload::Membership(m) => {
                    self.state.membership = StoredMembership::new(Some(entry.log_id), m);
                    let mut desc = self.state.desc.clone();
                    desc.replicas = self
                        .state
                        .membership
                        .voter_ids()
                        .map(|node_id| holo_storage::ReplicaDescriptor { node_id })
                        .collect();
                    desc.epoch.conf_ver += 1;
                    self.state.desc = desc.clone();
                    let members = self
                        .state
                        .membership
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id)
                        .collect();
                    (
                        RaftResponse::None,
                        Some(SmEvent::Membership { desc, members }),
                    )
                }
            };
            self.state.applied = Some(entry.log_id);
            self.persist(&mut batch)
                .map_err(StorageIOError::write_state_machine)?;
            self.engine
                .write_with_sync(batch, false)
                .map_err(|e| StorageIOError::write_state_machine(any(e)))?;
            self.publish();
            if let Some(ev) = event {
                let _ = self.events.send(ev);
            }
            out.push(response);
        }
        Ok(out)
    }
}

impl RaftStateMachine<TypeConfig> for RangeStateMachine {
    type SnapshotBuilder = RangeSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<u64>>, StoredMembership<u64, NodeAddr>)> {
        Ok((self.state.applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<RaftResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        holo_storage::blocking(|| self.apply_entries(entries))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Exporting and encoding a range is long CPU and disk work.
        holo_storage::blocking(|| self.snapshot_builder())
    }
    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, NodeAddr>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> SResult<()> {
        holo_storage::blocking(|| self.install(meta, snapshot.get_ref()))
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        if self.state.applied.is_none() {
            return Ok(None);
        }
        holo_storage::blocking(|| self.build()).map(Some)
    }
}
