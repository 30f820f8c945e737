//! SQL-layer integration tests over a real store (a one-voter cluster).
#![allow(clippy::unwrap_used, missing_docs)]

mod storage_model;

use std::sync::Arc;

use holo_cluster::{ClusterConfig, ClusterNode};
use holo_kv::KvClient;
use holo_sql::{SqlEngine, SqlOptions};
use holo_storage::EngineOptions;
use tempfile::TempDir;

pub struct Fixture {
    pub engine: Arc<SqlEngine>,
    pub kv: Arc<KvClient>,
    _node: Arc<ClusterNode>,
    _dir: TempDir,
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let node = ClusterNode::start(ClusterConfig::single_node(
        dir.path().to_path_buf(),
        EngineOptions {
            sync_writes: false,
            ..EngineOptions::default()
        },
        String::new(),
    ))
    .await
    .unwrap();
    let kv = node.kv();
    let engine = SqlEngine::new(kv.clone(), SqlOptions::default())
        .await
        .unwrap();
    Fixture {
        engine,
        kv,
        _node: node,
        _dir: dir,
    }
}
