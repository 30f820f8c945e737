use holo_storage::{
    RangeDescriptor, RangeEpoch, RangeId, ReadOptions, StorageError, WriteCommand, WriteResult,
};
use holo_txn_types::{KeyError, Mutation, Timestamp, TxnStatus};

use crate::TestStore;

fn ts(v: u64) -> Timestamp {
    Timestamp::new(v)
}

fn prewrite(
    s: &TestStore,
    muts: Vec<Mutation>,
    primary: &[u8],
    start: u64,
) -> Result<WriteResult, StorageError> {
    s.store.apply(
        &s.range,
        &WriteCommand::Prewrite {
            mutations: muts,
            primary: primary.to_vec(),
            start_ts: ts(start),
            lock_ttl_ms: 3000,
            txn_size: 1,
        },
    )
}

fn commit(
    s: &TestStore,
    keys: &[&[u8]],
    start: u64,
    commit: u64,
) -> Result<WriteResult, StorageError> {
    s.store.apply(
        &s.range,
        &WriteCommand::Commit {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            start_ts: ts(start),
            commit_ts: ts(commit),
        },
    )
}

fn get(s: &TestStore, key: &[u8], at: u64) -> Result<Option<Vec<u8>>, StorageError> {
    s.store.get(&s.range, key, &ReadOptions::at(ts(at)))
}

fn key_err(r: Result<impl std::fmt::Debug, StorageError>) -> KeyError {
    match r {
        Err(StorageError::Key(e)) => e,
        other => panic!("expected a key error, got {other:?}"),
    }
}

#[test]
fn two_phase_commit_makes_value_visible_at_commit_ts() {
    let s = TestStore::new();
    prewrite(
        &s,
        vec![Mutation::put(b"a".to_vec(), b"1".to_vec())],
        b"a",
        10,
    )
    .unwrap();
    // Before commit a reader above start_ts meets the lock.
    assert!(matches!(key_err(get(&s, b"a", 15)), KeyError::Locked(l) if l.start_ts == ts(10)));
    // A reader below start_ts ignores it.
    assert_eq!(get(&s, b"a", 5).unwrap(), None);
    commit(&s, &[b"a"], 10, 20).unwrap();
    assert_eq!(get(&s, b"a", 19).unwrap(), None);
    assert_eq!(get(&s, b"a", 20).unwrap(), Some(b"1".to_vec()));
    // Committing again is idempotent.
    commit(&s, &[b"a"], 10, 20).unwrap();
}

#[test]
fn newer_commit_is_a_write_conflict() {
    let s = TestStore::new();
    prewrite(
        &s,
        vec![Mutation::put(b"k".to_vec(), b"x".to_vec())],
        b"k",
        10,
    )
    .unwrap();
    commit(&s, &[b"k"], 10, 30).unwrap();
    let err = key_err(prewrite(
        &s,
        vec![Mutation::put(b"k".to_vec(), b"y".to_vec())],
        b"k",
        20,
    ));
    match err {
        KeyError::Conflict(c) => {
            assert_eq!(c.conflict_commit_ts, ts(30));
            assert_eq!(c.start_ts, ts(20));
        }
        other => panic!("{other:?}"),
    }
    // Nothing of the failed prewrite is visible.
    assert_eq!(s.store.reader().load_lock(b"k").unwrap(), None);
}

#[test]
fn foreign_lock_blocks_prewrite_and_failed_command_writes_nothing() {
    let s = TestStore::new();
    prewrite(
        &s,
        vec![Mutation::put(b"b".to_vec(), b"1".to_vec())],
        b"b",
        10,
    )
    .unwrap();
    let err = key_err(prewrite(
        &s,
        vec![
            Mutation::put(b"a".to_vec(), b"2".to_vec()),
            Mutation::put(b"b".to_vec(), b"2".to_vec()),
        ],
        b"a",
        11,
    ));
    assert!(matches!(err, KeyError::Locked(l) if l.key == b"b"));
    // "a" was checked before "b" failed, yet no lock was left on it.
    assert_eq!(s.store.reader().load_lock(b"a").unwrap(), None);
}

#[test]
fn insert_of_existing_key_fails_but_after_delete_succeeds() {
    let s = TestStore::new();
    let one_pc = |muts: Vec<Mutation>, start: u64, commit: u64| {
        s.store.apply(
            &s.range,
            &WriteCommand::OnePc {
                mutations: muts,
                start_ts: ts(start),
                commit_ts: ts(commit),
            },
        )
    };
    one_pc(vec![Mutation::insert(b"r".to_vec(), b"v1".to_vec())], 1, 2).unwrap();
    assert!(matches!(
        key_err(one_pc(
            vec![Mutation::insert(b"r".to_vec(), b"v2".to_vec())],
            3,
            4
        )),
        KeyError::AlreadyExists { .. }
    ));
    one_pc(vec![Mutation::delete(b"r".to_vec())], 5, 6).unwrap();
    one_pc(vec![Mutation::insert(b"r".to_vec(), b"v3".to_vec())], 7, 8).unwrap();
    assert_eq!(get(&s, b"r", 2).unwrap(), Some(b"v1".to_vec()));
    assert_eq!(get(&s, b"r", 6).unwrap(), None);
    assert_eq!(get(&s, b"r", 9).unwrap(), Some(b"v3".to_vec()));
    // 1PC rejects a commit timestamp not above the start timestamp.
    assert!(matches!(
        one_pc(vec![Mutation::put(b"z".to_vec(), b"v".to_vec())], 9, 9),
        Err(StorageError::InvalidCommand(_))
    ));
}

#[test]
fn rollback_fences_late_prewrite_and_is_idempotent() {
    let s = TestStore::new();
    prewrite(
        &s,
        vec![Mutation::put(b"a".to_vec(), vec![7u8; 1000])],
        b"a",
        10,
    )
    .unwrap();
    s.store
        .apply(
            &s.range,
            &WriteCommand::Rollback {
                keys: vec![b"a".to_vec()],
                start_ts: ts(10),
            },
        )
        .unwrap();
    s.store
        .apply(
            &s.range,
            &WriteCommand::Rollback {
                keys: vec![b"a".to_vec()],
                start_ts: ts(10),
            },
        )
        .unwrap();
    assert_eq!(get(&s, b"a", 100).unwrap(), None);
    assert!(matches!(
        key_err(prewrite(
            &s,
            vec![Mutation::put(b"a".to_vec(), b"x".to_vec())],
            b"a",
            10
        )),
        KeyError::RolledBack { .. }
    ));
    assert!(matches!(
        key_err(commit(&s, &[b"a"], 10, 11)),
        KeyError::RolledBack { .. }
    ));
    // Rolling back a transaction that never reached the key also fences it.
    s.store
        .apply(
            &s.range,
            &WriteCommand::Rollback {
                keys: vec![b"b".to_vec()],
                start_ts: ts(12),
            },
        )
        .unwrap();
    assert!(matches!(
        key_err(prewrite(
            &s,
            vec![Mutation::put(b"b".to_vec(), b"x".to_vec())],
            b"b",
            12
        )),
        KeyError::RolledBack { .. }
    ));
}

#[test]
fn rollback_after_commit_is_refused() {
    let s = TestStore::new();
    prewrite(
        &s,
        vec![Mutation::put(b"a".to_vec(), b"1".to_vec())],
        b"a",
        10,
    )
    .unwrap();
    commit(&s, &[b"a"], 10, 11).unwrap();
    let err = key_err(s.store.apply(
        &s.range,
        &WriteCommand::Rollback {
            keys: vec![b"a".to_vec()],
            start_ts: ts(10),
        },
    ));
    assert!(matches!(err, KeyError::Committed { commit_ts, .. } if commit_ts == ts(11)));
}

fn check_status(
    s: &TestStore,
    primary: &[u8],
    lock_ts: u64,
    caller: u64,
    now: Timestamp,
) -> TxnStatus {
    match s
        .store
        .apply(
            &s.range,
            &WriteCommand::CheckTxnStatus {
                primary: primary.to_vec(),
                lock_ts: ts(lock_ts),
                caller_start_ts: ts(caller),
                current_ts: now,
                rollback_if_not_exist: true,
            },
        )
        .unwrap()
    {
        WriteResult::TxnStatus(st) => st,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reader_pushes_live_transaction_and_commit_must_follow() {
    let s = TestStore::new();
    let start = Timestamp::compose(1_000, 0).into_inner();
    prewrite(
        &s,
        vec![Mutation::put(b"p".to_vec(), b"1".to_vec())],
        b"p",
        start,
    )
    .unwrap();
    let reader_ts = start + 50;
    let st = check_status(&s, b"p", start, reader_ts, Timestamp::compose(1_001, 0));
    assert_eq!(
        st,
        TxnStatus::Locked {
            ttl_ms: 3000,
            min_commit_ts: ts(reader_ts + 1)
        }
    );
    // The pushed lock no longer hides anything from the reader; a later
    // reader is still blocked unless it bypasses the transaction.
    assert_eq!(get(&s, b"p", reader_ts).unwrap(), None);
    assert!(get(&s, b"p", reader_ts + 5).is_err());
    let mut opts = ReadOptions::at(ts(reader_ts + 5));
    opts.bypass_locks.push(ts(start));
    assert_eq!(s.store.get(&s.range, b"p", &opts).unwrap(), None);
    // A commit below the pushed minimum is refused, above it accepted.
    assert!(matches!(
        key_err(commit(&s, &[b"p"], start, reader_ts)),
        KeyError::CommitTsExpired { .. }
    ));
    commit(&s, &[b"p"], start, reader_ts + 2).unwrap();
    assert_eq!(
        check_status(&s, b"p", start, 0, Timestamp::compose(1_002, 0)),
        TxnStatus::Committed {
            commit_ts: ts(reader_ts + 2)
        }
    );
}

#[test]
fn expired_primary_is_rolled_back_and_secondaries_resolved() {
    let s = TestStore::new();
    let start = Timestamp::compose(1_000, 0).into_inner();
    prewrite(
        &s,
        vec![
            Mutation::put(b"p".to_vec(), b"1".to_vec()),
            Mutation::put(b"s".to_vec(), b"2".to_vec()),
        ],
        b"p",
        start,
    )
    .unwrap();
    // Still alive inside its TTL.
    assert!(matches!(
        check_status(&s, b"p", start, 0, Timestamp::compose(2_000, 0)),
        TxnStatus::Locked { .. }
    ));
    // Expired: rolled back through the primary.
    assert_eq!(
        check_status(&s, b"p", start, 0, Timestamp::compose(10_000, 0)),
        TxnStatus::RolledBack
    );
    // The secondary still has its lock until resolved.
    assert!(s.store.reader().load_lock(b"s").unwrap().is_some());
    s.store
        .apply(
            &s.range,
            &WriteCommand::ResolveLocks {
                keys: vec![b"s".to_vec()],
                start_ts: ts(start),
                commit_ts: None,
            },
        )
        .unwrap();
    assert!(s.store.reader().load_lock(b"s").unwrap().is_none());
    assert_eq!(get(&s, b"s", u64::MAX - 1).unwrap(), None);
    // The coordinator waking up late cannot commit any more.
    assert!(matches!(
        key_err(commit(&s, &[b"p"], start, start + 10)),
        KeyError::RolledBack { .. }
    ));
}

#[test]
fn committed_primary_lets_secondary_resolve_to_commit() {
    let s = TestStore::new();
    prewrite(
        &s,
        vec![
            Mutation::put(b"p".to_vec(), b"1".to_vec()),
            Mutation::put(b"s".to_vec(), b"2".to_vec()),
        ],
        b"p",
        10,
    )
    .unwrap();
    commit(&s, &[b"p"], 10, 20).unwrap();
    // A reader meets the secondary lock, checks the primary, resolves.
    let lock = match key_err(get(&s, b"s", 25)) {
        KeyError::Locked(l) => l,
        other => panic!("{other:?}"),
    };
    assert_eq!(lock.primary, b"p");
    let st = check_status(&s, b"p", 10, 25, Timestamp::compose(1, 0));
    assert_eq!(st, TxnStatus::Committed { commit_ts: ts(20) });
    s.store
        .apply(
            &s.range,
            &WriteCommand::ResolveLocks {
                keys: vec![b"s".to_vec()],
                start_ts: ts(10),
                commit_ts: Some(ts(20)),
            },
        )
        .unwrap();
    assert_eq!(get(&s, b"s", 25).unwrap(), Some(b"2".to_vec()));
    assert_eq!(get(&s, b"s", 19).unwrap(), None);
}

#[test]
fn scans_see_snapshot_and_report_locks_in_span() {
    let s = TestStore::new();
    let mut start = 1;
    for i in 0..50u32 {
        let key = format!("k{i:03}").into_bytes();
        let value = if i % 10 == 0 {
            vec![i as u8; 400]
        } else {
            i.to_be_bytes().to_vec()
        };
        s.store
            .apply(
                &s.range,
                &WriteCommand::OnePc {
                    mutations: vec![Mutation::put(key, value)],
                    start_ts: ts(start),
                    commit_ts: ts(start + 1),
                },
            )
            .unwrap();
        start += 2;
    }
    // Delete one, overwrite one.
    s.store
        .apply(
            &s.range,
            &WriteCommand::OnePc {
                mutations: vec![
                    Mutation::delete(b"k005".to_vec()),
                    Mutation::put(b"k006".to_vec(), b"new".to_vec()),
                ],
                start_ts: ts(200),
                commit_ts: ts(201),
            },
        )
        .unwrap();
    let all = s
        .store
        .scan(&s.range, b"k", b"l", &ReadOptions::at(ts(300)), 1000)
        .unwrap();
    assert_eq!(all.pairs.len(), 49);
    assert!(all.resume_key.is_none());
    assert_eq!(all.pairs[0].1, vec![0u8; 400]);
    assert!(all.pairs.iter().all(|(k, _)| k != b"k005"));
    assert_eq!(
        all.pairs.iter().find(|(k, _)| k == b"k006").unwrap().1,
        b"new"
    );
    // The old snapshot still sees the old state.
    let old = s
        .store
        .scan(&s.range, b"k", b"l", &ReadOptions::at(ts(150)), 1000)
        .unwrap();
    assert_eq!(old.pairs.len(), 50);
    assert_eq!(old.pairs[6].1, 6u32.to_be_bytes().to_vec());
    // Paging with a limit.
    let page = s
        .store
        .scan(&s.range, b"k", b"l", &ReadOptions::at(ts(300)), 10)
        .unwrap();
    assert_eq!(page.pairs.len(), 10);
    let resume = page.resume_key.unwrap();
    let rest = s
        .store
        .scan(&s.range, &resume, b"l", &ReadOptions::at(ts(300)), 1000)
        .unwrap();
    assert_eq!(rest.pairs.len(), 39);
    // A lock beyond the scanned page does not fail the page; inside it does.
    prewrite(
        &s,
        vec![Mutation::put(b"k040".to_vec(), b"x".to_vec())],
        b"k040",
        400,
    )
    .unwrap();
    assert!(
        s.store
            .scan(&s.range, b"k", b"l", &ReadOptions::at(ts(500)), 10)
            .is_ok()
    );
    assert!(matches!(
        s.store
            .scan(&s.range, b"k", b"l", &ReadOptions::at(ts(500)), 1000),
        Err(StorageError::Key(KeyError::Locked(_)))
    ));
}

#[test]
fn commands_outside_the_range_are_rejected() {
    let mut s = TestStore::new();
    s.range = RangeDescriptor {
        id: RangeId(7),
        start_key: b"m".to_vec(),
        end_key: b"t".to_vec(),
        epoch: RangeEpoch::default(),
        replicas: vec![],
    };
    let err = prewrite(
        &s,
        vec![Mutation::put(b"z".to_vec(), b"1".to_vec())],
        b"z",
        1,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        StorageError::KeyOutOfRange {
            range_id: RangeId(7),
            ..
        }
    ));
    assert!(get(&s, b"a", 5).is_err());
    // Scans are clamped to the span.
    s.store
        .apply(
            &s.range,
            &WriteCommand::OnePc {
                mutations: vec![Mutation::put(b"n".to_vec(), b"1".to_vec())],
                start_ts: ts(1),
                commit_ts: ts(2),
            },
        )
        .unwrap();
    let r = s
        .store
        .scan(&s.range, b"", b"", &ReadOptions::at(ts(3)), 10)
        .unwrap();
    assert_eq!(r.pairs, vec![(b"n".to_vec(), b"1".to_vec())]);
}

#[test]
fn gc_keeps_visible_versions_and_drops_the_rest() {
    let s = TestStore::new();
    let put = |v: &[u8], start: u64| {
        s.store
            .apply(
                &s.range,
                &WriteCommand::OnePc {
                    mutations: vec![Mutation::put(b"g".to_vec(), v.to_vec())],
                    start_ts: ts(start),
                    commit_ts: ts(start + 1),
                },
            )
            .unwrap();
    };
    put(&[1u8; 300], 10);
    put(b"2", 20);
    put(b"3", 30);
    let removed = s
        .store
        .apply(
            &s.range,
            &WriteCommand::Gc {
                keys: vec![b"g".to_vec()],
                safe_point: ts(25),
            },
        )
        .unwrap();
    assert_eq!(removed, WriteResult::GcRemoved(1));
    assert_eq!(get(&s, b"g", 25).unwrap(), Some(b"2".to_vec()));
    assert_eq!(get(&s, b"g", 40).unwrap(), Some(b"3".to_vec()));
    // A deletion below the safe point goes away with everything older.
    s.store
        .apply(
            &s.range,
            &WriteCommand::OnePc {
                mutations: vec![Mutation::delete(b"g".to_vec())],
                start_ts: ts(40),
                commit_ts: ts(41),
            },
        )
        .unwrap();
    s.store.advance_gc_safe_point(ts(50)).unwrap();
    let removed = s
        .store
        .apply(
            &s.range,
            &WriteCommand::Gc {
                keys: vec![b"g".to_vec()],
                safe_point: ts(50),
            },
        )
        .unwrap();
    assert_eq!(removed, WriteResult::GcRemoved(3));
    assert!(
        s.store
            .reader()
            .writes_since(b"g", Timestamp::ZERO)
            .unwrap()
            .is_empty()
    );
    // Reads below the safe point are refused.
    assert!(matches!(
        key_err(get(&s, b"g", 49)),
        KeyError::SnapshotTooOld { .. }
    ));
    assert_eq!(get(&s, b"g", 60).unwrap(), None);
}
