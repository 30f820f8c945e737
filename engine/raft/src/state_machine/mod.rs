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

mod snapshot;

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

/// The state of the right-hand range written in the same batch that applies
/// a split: applied and purged at [`SPLIT_INIT_INDEX`], same membership.
pub fn initial_split_state(
    batch: &mut WriteBatch,
    engine: &Engine,
    right: &RangeDescriptor,
    membership: &StoredMembership<u64, NodeAddr>,
) -> Result<(), AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    let log_id = LogId::new(openraft::CommittedLeaderId::new(0, 0), SPLIT_INIT_INDEX);
    let state = SmState {
        applied: Some(log_id),
        membership: StoredMembership::new(Some(log_id), membership.membership().clone()),
        desc: right.clone(),
        tso_high_water_ms: 0,
        frozen: 0,
        aborted_merges: Vec::new(),
    };
    batch.put_cf(cf, key(right.id, TAG_SM), encode(&state).map_err(any)?);
    batch.put_cf(cf, key(right.id, TAG_PURGED), encode(&log_id).map_err(any)?);
    Ok(())
}

/// Reads the persisted state machine state of `range`, if any.
pub fn load_state(engine: &Engine, range: RangeId) -> Result<Option<SmState>, AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    match engine.db().get_cf(cf, key(range, TAG_SM)).map_err(any)? {
        Some(bytes) => Ok(Some(decode(&bytes).map_err(any)?)),
        None => Ok(None),
    }
}

/// Writes the initial state of a range created when a cluster is
/// bootstrapped: voters `members`, log purged up to [`SPLIT_INIT_INDEX`] (as
/// for a split-created range), so a replica added later always starts from a
/// snapshot. A single-voter group elects itself when it starts.
pub fn bootstrap_range(
    engine: &Engine,
    desc: &RangeDescriptor,
    members: std::collections::BTreeMap<u64, NodeAddr>,
) -> Result<(), AnyError> {
    let voters: std::collections::BTreeSet<u64> = members.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], members);
    let mut batch = WriteBatch::default();
    initial_split_state(
        &mut batch,
        engine,
        desc,
        &StoredMembership::new(None, membership),
    )?;
    engine.write_with_sync(batch, true).map_err(any)
}

/// Deletes every piece of `range`'s Raft state (log, vote, applied state)
/// in `batch`; its data keys belong to whichever range covers them now.
pub fn delete_range_state(
    batch: &mut WriteBatch,
    engine: &Engine,
    range: RangeId,
) -> Result<(), AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    let start = range.0.to_be_bytes().to_vec();
    let end = match range.0.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xFF; 9],
    };
    batch.delete_range_cf(cf, start, end);
    Ok(())
}

/// Key marking a range id as merged away for good: no replica of it is
/// created or filled again on this node. Outside the `range id | tag`
/// keys, so deleting a range's state keeps it.
fn tombstone_key(range: RangeId) -> Vec<u8> {
    let mut k = vec![0xFF, b'T'];
    k.extend_from_slice(&range.0.to_be_bytes());
    k
}

/// Whether `range` was merged away on this node.
pub fn is_tombstoned(engine: &Engine, range: RangeId) -> Result<bool, AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    Ok(engine
        .db()
        .get_cf(cf, tombstone_key(range))
        .map_err(any)?
        .is_some())
}

/// Ids of every range with Raft state on the engine.
pub fn local_ranges(engine: &Engine) -> Result<Vec<SmState>, AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    let mut it = engine.db().raw_iterator_cf(cf);
    it.seek_to_first();
    let mut out = Vec::new();
    while let Some((k, v)) = it.item() {
        if k.len() == 9 && k[8] == TAG_SM {
            out.push(decode(v).map_err(any)?);
        }
        it.next();
    }
    it.status().map_err(any)?;
    Ok(out)
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
            RaftCommand::Write(_) | RaftCommand::Split { .. } if self.state.frozen != 0 => {
                match cmd {
                    RaftCommand::Write(_) => (RaftResponse::Write(Err(ApplyError::Frozen)), None),
                    _ => (RaftResponse::Split(Err(ApplyError::Frozen)), None),
                }
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
                    Err(HoloStorageError::Key(k)) => {
                        (RaftResponse::Write(Err(ApplyError::Key(k))), None)
                    }
                    Err(HoloStorageError::KeyOutOfRange { .. }) => {
                        (RaftResponse::Write(Err(ApplyError::KeyNotInRange)), None)
                    }
                    Err(HoloStorageError::InvalidCommand(m)) => {
                        (RaftResponse::Write(Err(ApplyError::Invalid(m))), None)
                    }
                    Err(e) => return Err(StorageIOError::write_state_machine(any(e)).into()),
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

    fn freeze(&mut self, nonce: u64) -> Result<RangeDescriptor, ApplyError> {
        if nonce == 0 {
            return Err(ApplyError::Invalid("merge nonce 0".into()));
        }
        if self.state.frozen != 0 && self.state.frozen != nonce {
            return Err(ApplyError::Frozen);
        }
        if self.state.desc.start_key.is_empty() {
            return Err(ApplyError::Invalid(
                "the first range cannot be merged away".into(),
            ));
        }
        if !self.settled_voters_only() {
            return Err(ApplyError::Invalid(
                "the range's replicas are changing".into(),
            ));
        }
        self.state.frozen = nonce;
        Ok(self.state.desc.clone())
    }

    /// Applies a merge: checks that `right` is this range's right-hand
    /// neighbour on the same replicas and that the attempt was not fenced,
    /// then widens the descriptor and drops the right range's Raft state
    /// (its data keys stay where they are: they now belong to this range).
    /// Whether the membership is one settled set of voters (no change in
    /// progress, no learners): a merge or freeze needs every replica of the
    /// range to hold the other range's data too.
    fn settled_voters_only(&self) -> bool {
        let m = self.state.membership.membership();
        m.get_joint_config().len() == 1 && m.learner_ids().next().is_none()
    }

    fn merge(
        &mut self,
        right: &RangeDescriptor,
        nonce: u64,
        left_version: u64,
        batch: &mut WriteBatch,
    ) -> SResult<Result<RangeDescriptor, ApplyError>> {
        let desc = &self.state.desc;
        if self.state.frozen != 0 {
            return Ok(Err(ApplyError::Frozen));
        }
        if desc.epoch.version != left_version {
            return Ok(Err(ApplyError::Invalid(format!(
                "range {} changed since the merge was planned",
                desc.id
            ))));
        }
        if !self.settled_voters_only() {
            return Ok(Err(ApplyError::Invalid(format!(
                "the replicas of range {} are changing",
                desc.id
            ))));
        }
        if self.state.aborted_merges.contains(&nonce) {
            return Ok(Err(ApplyError::Invalid(format!(
                "merge attempt {nonce} was aborted"
            ))));
        }
        if desc.end_key.is_empty() || desc.end_key != right.start_key || right.id == desc.id {
            return Ok(Err(ApplyError::Invalid(format!(
                "range {} is not the right-hand neighbour of range {}",
                right.id, desc.id
            ))));
        }
        let voters = |d: &RangeDescriptor| {
            d.replicas
                .iter()
                .map(|r| r.node_id)
                .collect::<std::collections::BTreeSet<_>>()
        };
        if voters(desc) != voters(right) {
            return Ok(Err(ApplyError::Invalid(format!(
                "ranges {} and {} have different replicas",
                desc.id, right.id
            ))));
        }
        let mut left = desc.clone();
        left.end_key = right.end_key.clone();
        left.epoch.version = desc.epoch.version.max(right.epoch.version) + 1;
        delete_range_state(batch, &self.engine, right.id)
            .map_err(StorageIOError::write_state_machine)?;
        let cf = self
            .engine
            .cf(CF_RAFT)
            .map_err(|e| StorageIOError::write_state_machine(any(e)))?;
        batch.put_cf(cf, tombstone_key(right.id), []);
        self.state.desc = left.clone();
        Ok(Ok(left))
    }

    fn merge_abort(&mut self, nonce: u64, right_start: &[u8]) -> Result<bool, ApplyError> {
        let desc = &self.state.desc;
        if desc.end_key.as_slice() == right_start {
            if !self.state.aborted_merges.contains(&nonce) {
                self.state.aborted_merges.push(nonce);
                let excess = self
                    .state
                    .aborted_merges
                    .len()
                    .saturating_sub(ABORTED_MERGES_KEPT);
                self.state.aborted_merges.drain(..excess);
            }
            return Ok(true);
        }
        if desc.contains(right_start) {
            return Ok(false);
        }
        Err(ApplyError::Invalid(format!(
            "range {} does not border {:?}",
            desc.id, right_start
        )))
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
