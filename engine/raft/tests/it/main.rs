//! The range state machine on a real RocksDB: openraft's storage suite
//! (`suite`), and the merge commands: what a merge changes, and every rule
//! that refuses one; a group of writes in one entry.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod suite;

use std::collections::BTreeMap;
use std::sync::Arc;

use holo_raft::state_machine::{
    RangeStateMachine, SharedState, SmEvent, bootstrap_range, is_tombstoned, load_state,
};
use holo_raft::types::ApplyError;
use holo_raft::{NodeAddr, RaftCommand, RaftResponse, TypeConfig};
use holo_storage::{
    Engine, EngineOptions, MvccStore, RangeDescriptor, RangeEpoch, RangeId, ReplicaDescriptor,
    WriteCommand,
};
use holo_txn_types::Timestamp;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    left: RangeStateMachine,
    right: RangeStateMachine,
    next_index: u64,
    _events: UnboundedReceiver<SmEvent>,
}

fn desc(id: u64, start: &[u8], end: &[u8], version: u64) -> RangeDescriptor {
    RangeDescriptor {
        id: RangeId(id),
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        epoch: RangeEpoch {
            version,
            conf_ver: 1,
        },
        replicas: vec![ReplicaDescriptor { node_id: 1 }],
    }
}

impl Fixture {
    /// Ranges 2 = [b, d) (generation 3) and 3 = [d, f) (generation 5) on
    /// node 1.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
        let store = Arc::new(MvccStore::new(engine.clone()).unwrap());
        let members = BTreeMap::from([(1, NodeAddr::default())]);
        let (tx, rx) = unbounded_channel();
        let open = |d: RangeDescriptor| {
            bootstrap_range(&engine, &d, members.clone()).unwrap();
            let state = load_state(&engine, d.id).unwrap().unwrap();
            let shared = SharedState::new(&state);
            RangeStateMachine::open(engine.clone(), store.clone(), state, shared, tx.clone())
        };
        let left = open(desc(2, b"b", b"d", 3));
        let right = open(desc(3, b"d", b"f", 5));
        Fixture {
            _dir: dir,
            engine,
            left,
            right,
            next_index: 10,
            _events: rx,
        }
    }

    fn entry(&mut self, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        self.next_index += 1;
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.next_index),
            payload,
        }
    }

    async fn left(&mut self, cmd: RaftCommand) -> RaftResponse {
        let e = self.entry(EntryPayload::Normal(cmd));
        self.left.apply([e]).await.unwrap().remove(0)
    }

    async fn right(&mut self, cmd: RaftCommand) -> RaftResponse {
        let e = self.entry(EntryPayload::Normal(cmd));
        self.right.apply([e]).await.unwrap().remove(0)
    }

    fn merge(nonce: u64, left_version: u64) -> RaftCommand {
        RaftCommand::Merge {
            right: desc(3, b"d", b"f", 5),
            nonce,
            left_version,
        }
    }
}

fn gc_write(key: &[u8]) -> RaftCommand {
    RaftCommand::Write(WriteCommand::Gc {
        keys: vec![key.to_vec()],
        safe_point: Timestamp::new(1),
    })
}

#[tokio::test]
async fn a_frozen_range_refuses_writes_and_splits_and_the_merge_absorbs_it() {
    let mut f = Fixture::new();
    assert!(matches!(
        f.right(RaftCommand::Freeze { nonce: 7 }).await,
        RaftResponse::Freeze(Ok(_))
    ));
    // Idempotent for the same attempt, refused for another one.
    assert!(matches!(
        f.right(RaftCommand::Freeze { nonce: 7 }).await,
        RaftResponse::Freeze(Ok(_))
    ));
    assert_eq!(
        f.right(RaftCommand::Freeze { nonce: 8 }).await,
        RaftResponse::Freeze(Err(ApplyError::Frozen))
    );
    assert_eq!(
        f.right(gc_write(b"e")).await,
        RaftResponse::Write(Err(ApplyError::Frozen))
    );
    assert_eq!(
        f.right(RaftCommand::Split {
            split_key: b"e".to_vec(),
            new_range_id: RangeId(9),
        })
        .await,
        RaftResponse::Split(Err(ApplyError::Frozen))
    );

    let RaftResponse::Merge(Ok(merged)) = f.left(Fixture::merge(7, 3)).await else {
        panic!("merge refused");
    };
    assert_eq!(
        (merged.start_key.as_slice(), merged.end_key.as_slice()),
        (&b"b"[..], &b"f"[..])
    );
    assert_eq!(merged.epoch.version, 6, "max(3, 5) + 1");
    assert!(load_state(&f.engine, RangeId(3)).unwrap().is_none());
    assert!(is_tombstoned(&f.engine, RangeId(3)).unwrap());
    assert!(!is_tombstoned(&f.engine, RangeId(2)).unwrap());
    // The widened range takes writes in the absorbed span.
    assert!(matches!(
        f.left(gc_write(b"e")).await,
        RaftResponse::Write(Ok(_))
    ));
    // Re-applying the merge (a retried proposal) changes nothing.
    assert!(matches!(
        f.left(Fixture::merge(7, 6)).await,
        RaftResponse::Merge(Err(ApplyError::Invalid(_)))
    ));
}

#[tokio::test]
async fn a_fenced_attempt_cannot_merge_and_a_fence_after_the_merge_says_so() {
    let mut f = Fixture::new();
    assert_eq!(
        f.left(RaftCommand::MergeAbort {
            nonce: 9,
            right_start: b"d".to_vec(),
        })
        .await,
        RaftResponse::MergeAbort(Ok(true))
    );
    assert!(matches!(
        f.left(Fixture::merge(9, 3)).await,
        RaftResponse::Merge(Err(ApplyError::Invalid(_)))
    ));
    // The fenced range unfreezes and serves again.
    f.right(RaftCommand::Freeze { nonce: 9 }).await;
    f.right(RaftCommand::Unfreeze { nonce: 9 }).await;
    assert!(matches!(
        f.right(gc_write(b"e")).await,
        RaftResponse::Write(Ok(_))
    ));
    // Another attempt merges; fencing it afterwards reports the merge.
    assert!(matches!(
        f.left(Fixture::merge(10, 3)).await,
        RaftResponse::Merge(Ok(_))
    ));
    assert_eq!(
        f.left(RaftCommand::MergeAbort {
            nonce: 10,
            right_start: b"d".to_vec(),
        })
        .await,
        RaftResponse::MergeAbort(Ok(false))
    );
}

#[tokio::test]
async fn merges_against_a_changed_left_range_or_changing_replicas_are_refused() {
    let mut f = Fixture::new();
    // Planned against generation 2, the left range is at 3.
    assert!(matches!(
        f.left(Fixture::merge(5, 2)).await,
        RaftResponse::Merge(Err(ApplyError::Invalid(_)))
    ));
    // Not the right-hand neighbour.
    let far = RaftCommand::Merge {
        right: desc(4, b"x", b"z", 1),
        nonce: 5,
        left_version: 3,
    };
    assert!(matches!(
        f.left(far).await,
        RaftResponse::Merge(Err(ApplyError::Invalid(_)))
    ));
    // A learner joins both ranges: neither freezes nor merges.
    let with_learner = Membership::new(
        vec![std::collections::BTreeSet::from([1])],
        BTreeMap::from([(1, NodeAddr::default()), (2, NodeAddr::default())]),
    );
    let e = f.entry(EntryPayload::Membership(with_learner.clone()));
    f.left.apply([e]).await.unwrap();
    let e = f.entry(EntryPayload::Membership(with_learner));
    f.right.apply([e]).await.unwrap();
    assert!(matches!(
        f.right(RaftCommand::Freeze { nonce: 6 }).await,
        RaftResponse::Freeze(Err(ApplyError::Invalid(_)))
    ));
    let version = 3;
    assert!(matches!(
        f.left(Fixture::merge(6, version)).await,
        RaftResponse::Merge(Err(ApplyError::Invalid(_)))
    ));
}

fn one_pc(mutations: Vec<holo_txn_types::Mutation>, start: u64) -> WriteCommand {
    WriteCommand::OnePc {
        mutations,
        start_ts: Timestamp::new(start),
        commit_ts: Timestamp::new(start + 1),
    }
}

#[tokio::test]
async fn a_group_of_writes_applies_each_command_on_its_own() {
    use holo_storage::ReadOptions;
    use holo_txn_types::Mutation;
    let mut f = Fixture::new();
    assert!(matches!(
        f.left(RaftCommand::Write(one_pc(
            vec![Mutation::put(b"c1", b"old")],
            10
        )))
        .await,
        RaftResponse::Write(Ok(_))
    ));
    let group = vec![
        one_pc(vec![Mutation::put(b"b1", b"new")], 20),
        // Fails at its second key: its first key must not be locked.
        WriteCommand::Prewrite {
            mutations: vec![Mutation::put(b"b2", b"x"), Mutation::insert(b"c1", b"x")],
            primary: b"b2".to_vec(),
            start_ts: Timestamp::new(22),
            lock_ttl_ms: 3000,
            txn_size: 2,
        },
        one_pc(vec![Mutation::put(b"x", b"outside")], 24),
        one_pc(vec![Mutation::put(b"b1", b"again")], 26),
        WriteCommand::Gc {
            keys: vec![b"b3".to_vec()],
            safe_point: Timestamp::new(1),
        },
        one_pc(vec![Mutation::put(b"c2", b"new")], 28),
    ];
    let RaftResponse::Writes(results) = f.left(RaftCommand::Writes(group)).await else {
        panic!("not a group result");
    };
    assert_eq!(results.len(), 6);
    assert!(results[0].is_ok() && results[5].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(ApplyError::Key(_))), "{results:?}");
    assert_eq!(results[2], Err(ApplyError::KeyNotInRange));
    assert!(
        matches!(results[3], Err(ApplyError::Invalid(_))),
        "{results:?}"
    );
    assert!(
        matches!(results[4], Err(ApplyError::Invalid(_))),
        "{results:?}"
    );

    let store = MvccStore::new(f.engine.clone()).unwrap();
    let d = desc(2, b"b", b"d", 3);
    let read = |key: &[u8]| {
        store
            .get(&d, key, &ReadOptions::at(Timestamp::new(100)))
            .unwrap()
    };
    assert_eq!(read(b"b1"), Some(b"new".to_vec()));
    assert_eq!(read(b"c2"), Some(b"new".to_vec()));
    assert_eq!(read(b"c1"), Some(b"old".to_vec()));
    assert_eq!(read(b"b2"), None, "the failed prewrite left no lock");

    // A frozen range refuses every command of a group.
    f.left(RaftCommand::Freeze { nonce: 4 }).await;
    assert_eq!(
        f.left(RaftCommand::Writes(vec![
            one_pc(vec![Mutation::put(b"b4", b"x")], 30),
            one_pc(vec![Mutation::put(b"b5", b"x")], 32),
        ]))
        .await,
        RaftResponse::Writes(vec![Err(ApplyError::Frozen), Err(ApplyError::Frozen)])
    );
}
