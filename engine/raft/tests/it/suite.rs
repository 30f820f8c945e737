//! openraft's own storage test suite (`openraft::testing::Suite`) against
//! the range log store and state machine, on a real RocksDB: log reads,
//! appends, purges, truncation, vote, membership, applies and snapshot
//! transfer behave as openraft expects of any storage.

use std::sync::Arc;

use holo_raft::TypeConfig;
use holo_raft::log_store::RangeLogStore;
use holo_raft::state_machine::{RangeStateMachine, SharedState, SmEvent, SmState};
use holo_storage::{Engine, EngineOptions, MvccStore, RangeId};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Builds a fresh store for every case: a new RocksDB in a temporary
/// directory, range 7's empty log and state machine.
struct RangeStoreBuilder;

/// Kept alive while a case runs: the directory and the event channel.
struct Guard {
    _dir: tempfile::TempDir,
    _events: UnboundedReceiver<SmEvent>,
}

impl StoreBuilder<TypeConfig, RangeLogStore, RangeStateMachine, Guard> for RangeStoreBuilder {
    async fn build(&self) -> Result<(Guard, RangeLogStore, RangeStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let engine =
            Arc::new(Engine::open(dir.path(), EngineOptions::default()).expect("open rocksdb"));
        let store = Arc::new(MvccStore::new(engine.clone()).expect("mvcc store"));
        let range = RangeId(7);
        let state = SmState::empty(range);
        let shared = SharedState::new(&state);
        let (events, rx) = unbounded_channel();
        let sm = RangeStateMachine::open(engine.clone(), store, state, shared, events);
        let log = RangeLogStore::new(engine, range);
        Ok((
            Guard {
                _dir: dir,
                _events: rx,
            },
            log,
            sm,
        ))
    }
}

#[test]
fn range_storage_passes_openraft_suite() {
    Suite::test_all(RangeStoreBuilder).expect("openraft storage suite");
}
