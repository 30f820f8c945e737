//! A scan that meets a transaction's lock reports the transaction's next
//! locks in the span with it, so that a large transaction left behind is
//! resolved in batches.

use holo_storage::mvcc::reader::RESOLVE_BATCH_KEYS;
use holo_storage::{ReadOptions, StorageError, WriteCommand};
use holo_txn_types::{KeyError, LockInfo, Mutation, Timestamp};

use crate::TestStore;

fn key(i: usize) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn prewrite(s: &TestStore, keys: impl Iterator<Item = usize>, primary: usize, start: u64) {
    s.store
        .apply(
            &s.range,
            &WriteCommand::Prewrite {
                mutations: keys.map(|i| Mutation::put(key(i), b"v".to_vec())).collect(),
                primary: key(primary),
                start_ts: Timestamp::new(start),
                lock_ttl_ms: 3000,
                txn_size: 1,
            },
        )
        .unwrap();
}

fn lock_met(s: &TestStore) -> LockInfo {
    match s.store.scan(
        &s.range,
        b"k",
        b"l",
        &ReadOptions::at(Timestamp::new(100)),
        10,
    ) {
        Err(StorageError::Key(KeyError::Locked(info))) => info,
        other => panic!("expected a lock, got {other:?}"),
    }
}

#[test]
fn a_scan_reports_the_next_locks_of_the_same_transaction() {
    let s = TestStore::new();
    let n = 3 * RESOLVE_BATCH_KEYS;
    // Transaction 10 locks every key but every seventh, which transaction
    // 20 locks.
    prewrite(&s, (0..n).filter(|i| i % 7 != 3), 0, 10);
    prewrite(&s, (0..n).filter(|i| i % 7 == 3), 3, 20);

    let info = lock_met(&s);
    assert_eq!(info.key, key(0));
    assert_eq!(info.start_ts, Timestamp::new(10));
    assert_eq!(info.more_keys.len(), RESOLVE_BATCH_KEYS);
    let expected: Vec<Vec<u8>> = (1..n)
        .filter(|i| i % 7 != 3)
        .take(RESOLVE_BATCH_KEYS)
        .map(key)
        .collect();
    assert_eq!(info.more_keys, expected);

    // Rolling the batch back moves the next scan past it.
    let mut keys = vec![info.key.clone()];
    keys.extend(info.more_keys.iter().cloned());
    s.store
        .apply(
            &s.range,
            &WriteCommand::ResolveLocks {
                keys,
                start_ts: info.start_ts,
                commit_ts: None,
            },
        )
        .unwrap();
    let next = lock_met(&s);
    assert_eq!(
        next.key,
        key(3),
        "transaction 20's first lock comes first now"
    );
    assert_eq!(next.start_ts, Timestamp::new(20));
    assert!(next.more_keys.iter().all(|k| {
        let i: usize = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
        i % 7 == 3
    }));
}
