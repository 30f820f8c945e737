//! Start-up of a one-voter cluster: a store of the removed unreplicated
//! single-node server is refused with a message saying how to migrate.
//! (Restarts with data are tested on the real binary, `holo-node`'s
//! durability tests.)

use holo_cluster::{ClusterConfig, ClusterNode, StartError};
use holo_storage::{Engine, EngineOptions};

fn config(dir: &std::path::Path) -> ClusterConfig {
    ClusterConfig::single_node(dir.to_path_buf(), EngineOptions::default(), String::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_old_single_node_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        engine
            .put_meta(b"store_ident", br#"{"cluster_id":"holo-1","node_id":1}"#)
            .unwrap();
    }
    let err = ClusterNode::start(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, StartError::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("pg_dump"), "{text}");
    assert_eq!(err.code(), "START_CONFIG");
}
