//! Random interleavings of prewrite / commit / rollback / read, checked
//! against an in-memory model of Percolator semantics.

use std::collections::{BTreeMap, HashMap, HashSet};

use holo_storage::{ReadOptions, StorageError, WriteCommand};
use holo_txn_types::{KeyError, Mutation, MutationOp, Timestamp};
use proptest::prelude::*;

use crate::TestStore;

const KEYS: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
const TXNS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    /// Transaction `txn` prewrites `KEYS[key]` (op 0 put, 1 insert, 2 delete).
    Prewrite {
        txn: usize,
        key: usize,
        kind: u8,
        value: u8,
    },
    Commit {
        txn: usize,
    },
    Rollback {
        txn: usize,
    },
    /// Read a key at the current clock (or `back` ticks in the past).
    Read {
        key: usize,
        back: u64,
    },
    /// One-phase commit of a put by a fresh transaction.
    OnePc {
        key: usize,
        value: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TXNS, 0..KEYS.len(), 0u8..3, any::<u8>())
            .prop_map(|(txn, key, kind, value)| Op::Prewrite { txn, key, kind, value }),
        2 => (0..TXNS).prop_map(|txn| Op::Commit { txn }),
        1 => (0..TXNS).prop_map(|txn| Op::Rollback { txn }),
        3 => (0..KEYS.len(), 0u64..6).prop_map(|(key, back)| Op::Read { key, back }),
        1 => (0..KEYS.len(), any::<u8>()).prop_map(|(key, value)| Op::OnePc { key, value }),
    ]
}

/// commit_ts -> (start_ts, value or tombstone)
type Versions = BTreeMap<u64, (u64, Option<Vec<u8>>)>;

#[derive(Debug, Default)]
struct Model {
    /// key -> versions
    versions: BTreeMap<Vec<u8>, Versions>,
    /// key -> (start_ts, mutation)
    locks: HashMap<Vec<u8>, (u64, Mutation)>,
    /// (key, start_ts) rollback fences
    rollbacks: HashSet<(Vec<u8>, u64)>,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Locked,
    Conflict,
    Exists,
    RolledBack,
}

impl Model {
    fn value_at(&self, key: &[u8], ts: u64) -> Option<Vec<u8>> {
        self.versions
            .get(key)
            .and_then(|v| v.range(..=ts).next_back())
            .and_then(|(_, (_, value))| value.clone())
    }

    fn prewrite(&mut self, m: &Mutation, start: u64) -> Outcome {
        if let Some((lock_ts, _)) = self.locks.get(&m.key) {
            return if *lock_ts == start {
                Outcome::Ok
            } else {
                Outcome::Locked
            };
        }
        // Records at or after our start, newest first, as the store sees them.
        let mut records: Vec<(u64, u64, bool)> = self
            .versions
            .get(&m.key)
            .map(|v| {
                v.range(start..)
                    .map(|(c, (s, _))| (*c, *s, false))
                    .collect()
            })
            .unwrap_or_default();
        records.extend(
            self.rollbacks
                .iter()
                .filter(|(k, ts)| *k == m.key && *ts >= start)
                .map(|(_, ts)| (*ts, *ts, true)),
        );
        records.sort_by_key(|r| std::cmp::Reverse(r.0));
        for (_, s, is_rollback) in records {
            if s == start {
                return if is_rollback {
                    Outcome::RolledBack
                } else {
                    Outcome::Ok
                };
            }
            if !is_rollback {
                return Outcome::Conflict;
            }
        }
        if matches!(m.op, MutationOp::Insert(_)) && self.value_at(&m.key, start).is_some() {
            return Outcome::Exists;
        }
        self.locks.insert(m.key.clone(), (start, m.clone()));
        Outcome::Ok
    }
}

fn classify(r: Result<impl std::fmt::Debug, StorageError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(StorageError::Key(KeyError::Locked(_))) => Outcome::Locked,
        Err(StorageError::Key(KeyError::Conflict(_))) => Outcome::Conflict,
        Err(StorageError::Key(KeyError::AlreadyExists { .. })) => Outcome::Exists,
        Err(StorageError::Key(KeyError::RolledBack { .. })) => Outcome::RolledBack,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

struct Txn {
    start: u64,
    keys: Vec<Vec<u8>>,
    done: bool,
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let s = TestStore::new();
    let mut model = Model::default();
    let mut clock: u64 = 10;
    let mut tick = || {
        clock += 1;
        clock
    };
    let mut txns: Vec<Txn> = (0..TXNS)
        .map(|_| Txn {
            start: tick(),
            keys: vec![],
            done: false,
        })
        .collect();
    for op in ops {
        match op {
            Op::Prewrite {
                txn,
                key,
                kind,
                value,
            } => {
                if txns[txn].done {
                    txns[txn] = Txn {
                        start: tick(),
                        keys: vec![],
                        done: false,
                    };
                }
                let key = KEYS[key].to_vec();
                let m = match kind {
                    0 => Mutation::put(key.clone(), vec![value]),
                    1 => Mutation::insert(key.clone(), vec![value; 300]),
                    _ => Mutation::delete(key.clone()),
                };
                let t = &mut txns[txn];
                let primary = t.keys.first().cloned().unwrap_or_else(|| key.clone());
                let expected = model.prewrite(&m, t.start);
                let got = classify(s.store.apply(
                    &s.range,
                    &WriteCommand::Prewrite {
                        mutations: vec![m],
                        primary,
                        start_ts: Timestamp::new(t.start),
                        lock_ttl_ms: 10_000,
                        txn_size: 1,
                    },
                ));
                prop_assert_eq!(&got, &expected);
                if got == Outcome::Ok && !t.keys.contains(&key) {
                    t.keys.push(key);
                }
            }
            Op::Commit { txn } => {
                let commit_ts = tick();
                let t = &mut txns[txn];
                if t.done || t.keys.is_empty() {
                    continue;
                }
                let r = s.store.apply(
                    &s.range,
                    &WriteCommand::Commit {
                        keys: t.keys.clone(),
                        start_ts: Timestamp::new(t.start),
                        commit_ts: Timestamp::new(commit_ts),
                    },
                );
                prop_assert!(r.is_ok(), "commit failed: {:?}", r);
                for k in &t.keys {
                    if let Some((lock_ts, m)) = model.locks.get(k).cloned()
                        && lock_ts == t.start
                    {
                        model.locks.remove(k);
                        let value = m.value().map(<[u8]>::to_vec);
                        model
                            .versions
                            .entry(k.clone())
                            .or_default()
                            .insert(commit_ts, (t.start, value));
                    }
                }
                t.done = true;
            }
            Op::Rollback { txn } => {
                let t = &mut txns[txn];
                if t.done || t.keys.is_empty() {
                    continue;
                }
                let r = s.store.apply(
                    &s.range,
                    &WriteCommand::Rollback {
                        keys: t.keys.clone(),
                        start_ts: Timestamp::new(t.start),
                    },
                );
                prop_assert!(r.is_ok(), "rollback failed: {:?}", r);
                for k in &t.keys {
                    if model.locks.get(k).is_some_and(|(ts, _)| *ts == t.start) {
                        model.locks.remove(k);
                    }
                    model.rollbacks.insert((k.clone(), t.start));
                }
                t.done = true;
            }
            Op::Read { key, back } => {
                let now = tick();
                let at = now - back.min(now - 1);
                let key = KEYS[key];
                let got = s
                    .store
                    .get(&s.range, key, &ReadOptions::at(Timestamp::new(at)));
                let blocked = model.locks.get(key).is_some_and(|(ts, _)| *ts < at);
                if blocked {
                    prop_assert!(
                        matches!(got, Err(StorageError::Key(KeyError::Locked(_)))),
                        "expected lock at {:?}@{}: {:?}",
                        key,
                        at,
                        got
                    );
                } else {
                    prop_assert_eq!(got.unwrap(), model.value_at(key, at));
                }
            }
            Op::OnePc { key, value } => {
                let start = tick();
                let commit_ts = tick();
                let m = Mutation::put(KEYS[key].to_vec(), vec![value]);
                let expected = if model.locks.contains_key(&m.key) {
                    Outcome::Locked
                } else {
                    Outcome::Ok
                };
                let got = classify(s.store.apply(
                    &s.range,
                    &WriteCommand::OnePc {
                        mutations: vec![m.clone()],
                        start_ts: Timestamp::new(start),
                        commit_ts: Timestamp::new(commit_ts),
                    },
                ));
                prop_assert_eq!(&got, &expected);
                if got == Outcome::Ok {
                    model
                        .versions
                        .entry(m.key.clone())
                        .or_default()
                        .insert(commit_ts, (start, Some(vec![value])));
                }
            }
        }
    }
    // Final full scan agrees with the model for keys without live locks.
    let end = clock + 1;
    let scan = s.store.scan(
        &s.range,
        b"",
        b"",
        &ReadOptions {
            read_ts: Timestamp::new(end),
            bypass_locks: txns.iter().map(|t| Timestamp::new(t.start)).collect(),
        },
        100,
    );
    let scan = scan.unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = KEYS
        .iter()
        .filter_map(|k| model.value_at(k, end).map(|v| (k.to_vec(), v)))
        .collect();
    prop_assert_eq!(scan.pairs, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn percolator_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
