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
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
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
    },
}

#[derive(Serialize, Deserialize)]
struct SnapshotBlob {
    desc: RangeDescriptor,
    tso_high_water_ms: u64,
    entries: Vec<holo_storage::SpanEntry>,
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
    desc: Arc<RwLock<RangeDescriptor>>,
    tso_high_water_ms: Arc<AtomicU64>,
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
    /// a split or an earlier run). `desc` and `tso_high_water_ms` are shared
    /// with the replica and kept current by applies.
    pub fn open(
        engine: Arc<Engine>,
        store: Arc<MvccStore>,
        state: SmState,
        desc: Arc<RwLock<RangeDescriptor>>,
        tso_high_water_ms: Arc<AtomicU64>,
        events: UnboundedSender<SmEvent>,
    ) -> RangeStateMachine {
        *desc.write() = state.desc.clone();
        tso_high_water_ms.store(state.tso_high_water_ms, Ordering::SeqCst);
        RangeStateMachine {
            engine,
            range: state.desc.id,
            store,
            desc,
            tso_high_water_ms,
            state,
            events,
        }
    }

    fn publish(&self) {
        *self.desc.write() = self.state.desc.clone();
        self.tso_high_water_ms
            .store(self.state.tso_high_water_ms, Ordering::SeqCst);
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
            RaftCommand::Write(cmd) => {
                let desc = self.state.desc.clone();
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
                    (RaftResponse::None, Some(SmEvent::Membership { desc }))
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

    fn snapshot_builder(&self) -> RangeSnapshotBuilder {
        match self.build() {
            Ok(s) => RangeSnapshotBuilder {
                snapshot: Some(s),
                error: None,
            },
            Err(e) => RangeSnapshotBuilder {
                snapshot: None,
                error: Some(e.to_string()),
            },
        }
    }

    fn build(&self) -> SResult<Snapshot<TypeConfig>> {
        let desc = self.state.desc.clone();
        let entries = self
            .store
            .export_span(&desc.start_key, &desc.end_key)
            .map_err(|e| StorageIOError::read_state_machine(any(e)))?;
        let blob = SnapshotBlob {
            desc,
            tso_high_water_ms: self.state.tso_high_water_ms,
            entries,
        };
        let data = encode(&blob).map_err(|e| StorageIOError::read_state_machine(any(e)))?;
        let index = self.state.applied.map_or(0, |l| l.index);
        let meta = SnapshotMeta {
            last_log_id: self.state.applied,
            last_membership: self.state.membership.clone(),
            snapshot_id: format!("r{}-{}-{}", self.range.0, index, data.len()),
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// Builds snapshots of a range (the data is taken when the builder is made,
/// in order with applies).
pub struct RangeSnapshotBuilder {
    snapshot: Option<Snapshot<TypeConfig>>,
    error: Option<String>,
}

impl RaftSnapshotBuilder<TypeConfig> for RangeSnapshotBuilder {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        match self.snapshot.take() {
            Some(s) => Ok(s),
            None => Err(StorageIOError::read_state_machine(AnyError::error(
                self.error
                    .take()
                    .unwrap_or_else(|| "snapshot already taken".into()),
            ))
            .into()),
        }
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
        crate::blocking(|| self.apply_entries(entries))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_builder()
    }
    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, NodeAddr>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> SResult<()> {
        let blob: SnapshotBlob = decode(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), any(e)))?;
        let mut batch = WriteBatch::default();
        self.store
            .import_span(
                &mut batch,
                &blob.desc.start_key,
                &blob.desc.end_key,
                &blob.entries,
            )
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
        self.state = SmState {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            desc: blob.desc.clone(),
            tso_high_water_ms: blob.tso_high_water_ms,
        };
        self.persist(&mut batch)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
        self.engine
            .write_with_sync(batch, true)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
        self.publish();
        let _ = self
            .events
            .send(SmEvent::SnapshotInstalled { desc: blob.desc });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        if self.state.applied.is_none() {
            return Ok(None);
        }
        self.build().map(Some)
    }
}
