//! KV integration tests: transactions over a real store, one and several
//! ranges.
#![allow(clippy::unwrap_used, missing_docs)]

mod txn;

use std::sync::Arc;

use holo_kv::client::RetryPolicy;
use holo_kv::service::{RangeDirectory, RangeService};
use holo_kv::{KvClient, LocalNode};
use holo_storage::EngineOptions;
use tempfile::TempDir;

pub struct Cluster {
    pub node: Arc<LocalNode>,
    pub client: Arc<KvClient>,
    _dir: TempDir,
}

pub fn cluster(splits: &[&[u8]]) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let splits: Vec<Vec<u8>> = splits.iter().map(|s| s.to_vec()).collect();
    let node = LocalNode::open_single_with_splits(
        dir.path(),
        EngineOptions {
            sync_writes: false,
            ..EngineOptions::default()
        },
        &splits,
    )
    .unwrap();
    let policy = RetryPolicy {
        lock_wait: std::time::Duration::from_millis(500),
        ..RetryPolicy::default()
    };
    let client = Arc::new(KvClient::new(
        node.clone() as Arc<dyn RangeDirectory>,
        vec![node.clone() as Arc<dyn RangeService>],
        node.tso(),
        policy,
    ));
    Cluster {
        node,
        client,
        _dir: dir,
    }
}

mod gc;
