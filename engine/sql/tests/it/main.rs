//! SQL-layer integration tests over a real store.
#![allow(clippy::unwrap_used, missing_docs)]

mod storage_model;

use std::sync::Arc;

use holo_kv::client::RetryPolicy;
use holo_kv::service::{RangeDirectory, RangeService};
use holo_kv::{KvClient, LocalNode};
use holo_sql::{SqlEngine, SqlOptions};
use holo_storage::EngineOptions;
use tempfile::TempDir;

pub struct Fixture {
    pub engine: Arc<SqlEngine>,
    pub kv: Arc<KvClient>,
    _dir: TempDir,
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let node = LocalNode::open_single(
        dir.path(),
        EngineOptions {
            sync_writes: false,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let kv = Arc::new(KvClient::new(
        node.clone() as Arc<dyn RangeDirectory>,
        vec![node.clone() as Arc<dyn RangeService>],
        node.tso(),
        RetryPolicy::default(),
    ));
    let engine = SqlEngine::new(kv.clone(), SqlOptions::default())
        .await
        .unwrap();
    Fixture {
        engine,
        kv,
        _dir: dir,
    }
}
