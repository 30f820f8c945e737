//! Cluster integration tests: transactions through the KV client over an
//! in-process one-voter cluster (real Raft groups, real RocksDB), one and
//! several ranges.
#![allow(clippy::unwrap_used, missing_docs)]

mod startup;
mod txn;

use std::sync::Arc;
use std::time::Duration;

use holo_cluster::directory::NodeHandle;
use holo_cluster::{ClusterConfig, ClusterNode, RaftTuning};
use holo_kv::KvClient;
use holo_kv::client::RetryPolicy;
use holo_kv::service::RangeService;
use holo_storage::EngineOptions;
use tempfile::TempDir;

pub struct Cluster {
    pub node: Arc<ClusterNode>,
    pub client: Arc<KvClient>,
    _dir: TempDir,
}

/// A one-node cluster whose data range is split (and kept split) at
/// `splits`; its client gives up waiting for a live lock after 500 ms.
pub async fn cluster(splits: &[&[u8]]) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClusterConfig::single_node(
        dir.path().to_path_buf(),
        EngineOptions {
            sync_writes: false,
            ..EngineOptions::default()
        },
        String::new(),
    );
    config.raft = RaftTuning {
        heartbeat_ms: 50,
        election_min_ms: 300,
        election_max_ms: 600,
        ..RaftTuning::default()
    };
    config.gc_interval = Duration::from_secs(3600);
    let node = ClusterNode::start(config).await.unwrap();
    for s in splits {
        node.admin_split(s.to_vec()).await.unwrap();
    }
    let handle = || Arc::new(NodeHandle::new(&node));
    let client = Arc::new(KvClient::new(
        handle(),
        vec![handle() as Arc<dyn RangeService>],
        handle(),
        RetryPolicy {
            lock_wait: Duration::from_millis(500),
            max_route_attempts: 40,
            ..RetryPolicy::default()
        },
    ));
    Cluster {
        node,
        client,
        _dir: dir,
    }
}
