//! Storage integration tests: Percolator scenarios on a real RocksDB and a
//! property test against an in-memory model.
#![allow(clippy::unwrap_used, missing_docs)]

mod model;
mod percolator;
mod resolve_batches;

use std::sync::Arc;

use holo_storage::{Engine, EngineOptions, MvccStore, RangeDescriptor, RangeId};
use tempfile::TempDir;

/// A store in a temporary directory covering the whole keyspace.
pub struct TestStore {
    pub store: MvccStore,
    pub range: RangeDescriptor,
    _dir: TempDir,
}

impl Default for TestStore {
    fn default() -> Self {
        TestStore::new()
    }
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(
            dir.path(),
            EngineOptions {
                sync_writes: false,
                ..EngineOptions::default()
            },
        )
        .unwrap();
        TestStore {
            store: MvccStore::new(Arc::new(engine)).unwrap(),
            range: RangeDescriptor::whole_keyspace(RangeId(1), 1),
            _dir: dir,
        }
    }
}
