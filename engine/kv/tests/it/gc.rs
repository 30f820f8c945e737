use std::time::Duration;

use holo_kv::gc::{GcConfig, GcWorker};
use holo_kv::{KvError, Transaction, TxnOptions};
use holo_txn_types::{KeyError, Timestamp};

use crate::cluster;

#[tokio::test]
async fn gc_removes_unreadable_versions_and_keeps_open_snapshots() {
    let c = cluster(&[b"m"]);
    for round in 0..5u8 {
        let t = Transaction::begin(c.client.clone(), TxnOptions::default())
            .await
            .unwrap();
        for k in [b"a", b"z"] {
            t.put(k.to_vec(), vec![round]).unwrap();
        }
        if round == 4 {
            t.delete(b"z".to_vec()).unwrap();
        }
        t.commit().await.unwrap();
    }
    // An old snapshot stays open (a millisecond later than the commits
    // above, so the TTL bound also covers them): GC must not go past it.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let old = Transaction::begin(c.client.clone(), TxnOptions::default())
        .await
        .unwrap();
    let t = Transaction::begin(c.client.clone(), TxnOptions::default())
        .await
        .unwrap();
    t.put(b"a".to_vec(), vec![9]).unwrap();
    t.commit().await.unwrap();
    let worker = GcWorker::new(
        c.node.clone(),
        c.client.clone(),
        GcConfig {
            interval: Duration::from_secs(3600),
            ttl: Duration::ZERO,
            batch: 1,
        },
    );
    let r = worker.round().await.unwrap();
    assert!(r.safe_point <= old.start_ts());
    // a: 5 versions at or below the bound, keep the newest -> 4 removed;
    // z: tombstone newest -> all 5 removed.
    assert_eq!(r.versions_removed, 9);
    assert_eq!(old.get(b"a").await.unwrap(), Some(vec![4]));
    assert_eq!(old.get(b"z").await.unwrap(), None);
    drop(old);
    // Reads below the safe point are refused.
    let stale = Transaction::at(c.client.clone(), Timestamp::new(1), TxnOptions::default());
    assert!(matches!(
        stale.get(b"a").await,
        Err(KvError::Key(KeyError::SnapshotTooOld { .. }))
    ));
    drop(stale);
    // The bound is in milliseconds: let the clock pass the last commit.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let r = worker.round().await.unwrap();
    assert_eq!(r.versions_removed, 1);
    let now = Transaction::begin(c.client.clone(), TxnOptions::default())
        .await
        .unwrap();
    assert_eq!(now.get(b"a").await.unwrap(), Some(vec![9]));
}
