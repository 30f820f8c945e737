//! [`ReplicaRegistry`]: the range replicas this node holds: opening them
//! (at start, for a peer's first message, after a split), looking them up,
//! and destroying them with their Raft state.
//!
//! One lock orders creation and destruction, so a replica being created
//! for a snapshot and a data deletion for a departed replica never race.

use std::collections::BTreeMap;
use std::sync::Arc;

use holo_kv::KvError;
use holo_raft::RangeRaft;
use holo_raft::log_store::RangeLogStore;
use holo_raft::network::{RaftTransport, RangeNetworkFactory};
use holo_raft::state_machine::{
    RangeStateMachine, SharedState, SmEvent, SmState, delete_range_state, load_state,
};
use holo_storage::{Engine, MvccStore, RangeDescriptor, RangeId};
use openraft::Config;
use parking_lot::RwLock;
use tokio::sync::mpsc::UnboundedSender;

use crate::replica::RangeReplica;

/// What every replica of this node is opened with.
pub struct ReplicaRegistry {
    me: u64,
    engine: Arc<Engine>,
    store: Arc<MvccStore>,
    raft_config: Arc<Config>,
    transport: Arc<dyn RaftTransport>,
    events: UnboundedSender<SmEvent>,
    lease_ms: u64,
    replicas: RwLock<BTreeMap<RangeId, Arc<RangeReplica>>>,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ReplicaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaRegistry")
            .field("me", &self.me)
            .field("ranges", &self.replicas.read().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How the registry opens replicas.
pub struct RegistryParts {
    /// This node's id.
    pub me: u64,
    /// The storage engine.
    pub engine: Arc<Engine>,
    /// The MVCC store over it.
    pub store: Arc<MvccStore>,
    /// Raft configuration of every group.
    pub raft_config: Arc<Config>,
    /// How Raft messages reach peers.
    pub transport: Arc<dyn RaftTransport>,
    /// Where state machines report splits, merges and membership.
    pub events: UnboundedSender<SmEvent>,
    /// The leader lease of a range, in milliseconds.
    pub lease_ms: u64,
}

impl ReplicaRegistry {
    /// An empty registry.
    pub fn new(parts: RegistryParts) -> ReplicaRegistry {
        ReplicaRegistry {
            me: parts.me,
            engine: parts.engine,
            store: parts.store,
            raft_config: parts.raft_config,
            transport: parts.transport,
            events: parts.events,
            lease_ms: parts.lease_ms,
            replicas: RwLock::new(BTreeMap::new()),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The local replica of `range`, if any.
    pub fn get(&self, range: RangeId) -> Option<Arc<RangeReplica>> {
        self.replicas.read().get(&range).cloned()
    }

    /// Every local replica.
    pub fn all(&self) -> Vec<Arc<RangeReplica>> {
        self.replicas.read().values().cloned().collect()
    }

    /// Whether the node holds no replica.
    pub fn is_empty(&self) -> bool {
        self.replicas.read().is_empty()
    }

    /// The local replica of `range`, or `RangeNotFound`.
    pub fn local(&self, range: RangeId) -> Result<Arc<RangeReplica>, KvError> {
        self.get(range).ok_or(KvError::RangeNotFound {
            range_id: range,
            node_id: self.me,
        })
    }

    /// Starts the Raft group of a replica from its persisted state.
    pub async fn open(&self, state: SmState) -> Result<Arc<RangeReplica>, KvError> {
        let id = state.desc.id;
        let shared = SharedState::new(&state);
        let sm = RangeStateMachine::open(
            self.engine.clone(),
            self.store.clone(),
            state,
            shared.clone(),
            self.events.clone(),
        );
        let log = RangeLogStore::new(self.engine.clone(), id);
        let network = RangeNetworkFactory::new(id, self.transport.clone());
        let raft = RangeRaft::new(self.me, self.raft_config.clone(), network, log, sm)
            .await
            .map_err(|e| KvError::Storage(format!("starting raft group of range {id}: {e}")))?;
        let replica = Arc::new(RangeReplica::new(
            self.me,
            raft,
            shared,
            self.store.clone(),
            self.lease_ms,
        ));
        self.replicas.write().insert(id, replica.clone());
        Ok(replica)
    }

    /// The replica a peer's Raft message is for; a replica being added to
    /// this node is created empty and fills from the leader's snapshot.
    pub async fn for_message(&self, range: RangeId) -> Result<Arc<RangeReplica>, KvError> {
        if let Some(r) = self.get(range) {
            return Ok(r);
        }
        let _guard = self.lock.lock().await;
        if let Some(r) = self.get(range) {
            return Ok(r);
        }
        // A range merged away here stays gone: a stale replica elsewhere
        // must not recreate it (and overwrite the merged range's data).
        if holo_raft::state_machine::is_tombstoned(&self.engine, range).map_err(storage)? {
            return Err(KvError::RangeNotFound {
                range_id: range,
                node_id: self.me,
            });
        }
        let state = load_state(&self.engine, range)
            .map_err(storage)?
            .unwrap_or_else(|| SmState::empty(range));
        tracing::info!(%range, "creating replica for a peer's message");
        self.open(state).await
    }

    /// Starts the right-hand replica of a split that applied here (a
    /// placeholder created by a faster peer's message is restarted from
    /// the split's state). `None` when it already runs.
    pub async fn open_split(
        &self,
        right: &RangeDescriptor,
    ) -> Result<Option<Arc<RangeReplica>>, KvError> {
        let _guard = self.lock.lock().await;
        if let Some(existing) = self.get(right.id) {
            if existing.initialized() {
                return Ok(None);
            }
            existing.shutdown().await;
            self.replicas.write().remove(&right.id);
        }
        let Some(state) = load_state(&self.engine, right.id).map_err(storage)? else {
            return Err(KvError::Storage(format!(
                "split state of range {} missing",
                right.id
            )));
        };
        self.open(state).await.map(Some)
    }

    /// Deletes the data of `desc`'s span (a replica of `range` that left
    /// this node) unless a local replica overlaps it. Replicas are not
    /// created meanwhile: an uninitialized one (it may be receiving a
    /// snapshot) counts as overlapping everything.
    pub async fn delete_span_data(&self, range: RangeId, desc: &RangeDescriptor) {
        let _guard = self.lock.lock().await;
        let overlapped = self.all().iter().any(|o| {
            !o.initialized()
                || o.descriptor()
                    .clamp(&desc.start_key, &desc.end_key)
                    .is_some()
        });
        if overlapped {
            return;
        }
        let mut batch = rocksdb::WriteBatch::default();
        let result = self
            .store
            .import_span(&mut batch, &desc.start_key, &desc.end_key, &[])
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.engine
                    .write_with_sync(batch, false)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::error!(%range, error = %e, "deleting a removed replica's data failed");
        }
    }

    /// Stops the local replica of `range` and deletes its Raft state (its
    /// data keys belong to the range that absorbed it).
    pub async fn destroy(&self, range: RangeId) {
        let _guard = self.lock.lock().await;
        let replica = self.replicas.write().remove(&range);
        if let Some(r) = replica {
            r.shutdown().await;
        }
        let mut batch = rocksdb::WriteBatch::default();
        let result = delete_range_state(&mut batch, &self.engine, range)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.engine
                    .write_with_sync(batch, true)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::error!(%range, error = %e, "deleting a merged range's raft state failed");
        }
    }

    /// Whether a snapshot of `range` spanning `desc` may be installed here.
    /// A local replica that overlaps the span without lying inside it is a
    /// range that has not applied the split creating `range` yet: the split
    /// will create the replica, and data installed now would be mixed with
    /// the older range's later applies. (Replicas inside the span are ranges
    /// the snapshot's merge absorbed; installing replaces them.)
    pub fn accept_snapshot(&self, range: RangeId, desc: &RangeDescriptor) -> Result<(), String> {
        for o in self.all() {
            let d = o.descriptor();
            if d.id == range || !o.initialized() || desc.covers(&d) {
                continue;
            }
            if d.clamp(&desc.start_key, &desc.end_key).is_some() {
                return Err(format!(
                    "range {range}'s span overlaps local range {} (its split has not applied here yet)",
                    d.id
                ));
            }
        }
        Ok(())
    }
}

fn storage(e: impl std::fmt::Display) -> KvError {
    KvError::Storage(e.to_string())
}
