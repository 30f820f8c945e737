use std::time::Duration;

use holo_kv::service::KvWrite;
use holo_kv::{KvError, Transaction, TxnOptions};
use holo_storage::WriteCommand;
use holo_txn_types::{KeyError, Mutation};

use holo_cluster::meta::META_END;

use crate::cluster;

fn opts() -> TxnOptions {
    TxnOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_and_atomic_commit() {
    let c = cluster(&[]).await;
    let t = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    t.put(b"a".to_vec(), b"1".to_vec()).unwrap();
    t.insert(b"b".to_vec(), b"2".to_vec()).unwrap();
    assert_eq!(t.get(b"a").await.unwrap(), Some(b"1".to_vec()));
    let (pairs, next) = t.scan_chunk(META_END, b"", 100).await.unwrap();
    assert_eq!(pairs.len(), 2);
    assert!(next.is_none());
    // Another transaction sees nothing yet.
    let other = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert_eq!(other.get(b"a").await.unwrap(), None);
    let info = t.commit().await.unwrap();
    assert!(info.one_pc);
    // The old snapshot still sees nothing; a new one sees both.
    assert_eq!(other.get(b"b").await.unwrap(), None);
    let later = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert_eq!(later.get(b"b").await.unwrap(), Some(b"2".to_vec()));
    // Inserting twice inside one transaction fails at once.
    later.insert(b"c".to_vec(), b"3".to_vec()).unwrap();
    assert!(matches!(
        later.insert(b"c".to_vec(), b"4".to_vec()),
        Err(KvError::Key(KeyError::AlreadyExists { .. }))
    ));
    // Inserting an existing key fails at commit and writes nothing.
    later.discard_writes();
    later.insert(b"z".to_vec(), b"new".to_vec()).unwrap();
    later.insert(b"a".to_vec(), b"dup".to_vec()).unwrap();
    assert!(matches!(
        later.commit().await,
        Err(KvError::Key(KeyError::AlreadyExists { .. }))
    ));
    let check = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert_eq!(check.get(b"z").await.unwrap(), None);
    assert_eq!(check.get(b"a").await.unwrap(), Some(b"1".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_committer_wins() {
    let c = cluster(&[]).await;
    let setup = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    setup.put(b"k".to_vec(), b"0".to_vec()).unwrap();
    setup.commit().await.unwrap();
    let t1 = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    let t2 = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    t1.put(b"k".to_vec(), b"1".to_vec()).unwrap();
    t2.put(b"k".to_vec(), b"2".to_vec()).unwrap();
    t2.commit().await.unwrap();
    let err = t1.commit().await.unwrap_err();
    assert!(
        matches!(err, KvError::Key(KeyError::Conflict(_))),
        "{err:?}"
    );
    let r = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert_eq!(r.get(b"k").await.unwrap(), Some(b"2".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_commit_across_ranges_is_all_or_nothing() {
    let c = cluster(&[b"m", b"t"]).await;
    // The meta range and three data ranges.
    assert_eq!(c.node.replicas().len(), 4);
    // Commit across three ranges.
    let t = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    for k in [b"a", b"n", b"x"] {
        t.put(k.to_vec(), b"v1".to_vec()).unwrap();
    }
    let info = t.commit().await.unwrap();
    assert!(!info.one_pc);
    let r = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    let (pairs, _) = scan_all(&r).await;
    assert_eq!(pairs.len(), 3);

    // A transaction that conflicts in one range leaves nothing anywhere.
    let loser = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    let winner = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    winner.put(b"x".to_vec(), b"winner".to_vec()).unwrap();
    winner.commit().await.unwrap();
    for k in [b"b", b"o", b"x"] {
        loser.put(k.to_vec(), b"loser".to_vec()).unwrap();
    }
    let err = loser.commit().await.unwrap_err();
    assert!(
        matches!(err, KvError::Key(KeyError::Conflict(_))),
        "{err:?}"
    );
    let r = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    let (pairs, _) = scan_all(&r).await;
    assert!(pairs.iter().all(|(_, v)| v != b"loser"), "{pairs:?}");
    assert_eq!(r.get(b"b").await.unwrap(), None);
    assert_eq!(r.get(b"o").await.unwrap(), None);
    // No lock is left behind.
    assert_no_locks(&c);
}

/// No lock is left anywhere in the store.
fn assert_no_locks(c: &crate::Cluster) {
    let locks = c
        .node
        .store()
        .reader()
        .scan_locks(b"", b"", holo_txn_types::Timestamp::MAX, 10)
        .unwrap();
    assert!(locks.is_empty(), "{locks:?}");
}

/// Every pair of the data ranges (the meta range's keys sort first).
async fn scan_all(t: &Transaction) -> (Vec<(Vec<u8>, Vec<u8>)>, usize) {
    let mut start = META_END.to_vec();
    let mut out = Vec::new();
    let mut calls = 0;
    loop {
        let (pairs, next) = t.scan_chunk(&start, b"", 2).await.unwrap();
        calls += 1;
        out.extend(pairs);
        match next {
            Some(n) => start = n,
            None => return (out, calls),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_transaction_is_rolled_back_after_ttl() {
    let c = cluster(&[b"m"]).await;
    let start = c.client.now().await.unwrap();
    // A coordinator prewrites in two ranges with a short TTL, then dies.
    for (key, primary) in [(b"a", b"a"), (b"q", b"a")] {
        c.client
            .write_key(
                key,
                KvWrite::Command(WriteCommand::Prewrite {
                    mutations: vec![Mutation::put(key.to_vec(), b"ghost".to_vec())],
                    primary: primary.to_vec(),
                    start_ts: start,
                    lock_ttl_ms: 50,
                    txn_size: 2,
                }),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    // A reader meets the secondary lock, finds the primary expired, rolls back.
    let r = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert_eq!(r.get(b"q").await.unwrap(), None);
    assert_eq!(r.get(b"a").await.unwrap(), None);
    assert_no_locks(&c);
    // A writer can now use the keys.
    let w = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    w.put(b"q".to_vec(), b"real".to_vec()).unwrap();
    w.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_is_not_blocked_by_a_live_transaction() {
    let c = cluster(&[b"m"]).await;
    let start = c.client.now().await.unwrap();
    c.client
        .write_key(
            b"a",
            KvWrite::Command(WriteCommand::Prewrite {
                mutations: vec![Mutation::put(b"a".to_vec(), b"pending".to_vec())],
                primary: b"a".to_vec(),
                start_ts: start,
                lock_ttl_ms: 60_000,
                txn_size: 1,
            }),
        )
        .await
        .unwrap();
    // The reader pushes the live transaction and reads the old state at once.
    let r = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(r.get(b"a").await.unwrap(), None);
    assert!(t0.elapsed() < Duration::from_millis(400));
    // A writer of the same key waits, then gives up with a lock-wait timeout.
    let w = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    w.put(b"a".to_vec(), b"other".to_vec()).unwrap();
    assert!(matches!(
        w.commit().await,
        Err(KvError::LockWaitTimeout { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_phase_commit_lands_above_reads_already_served() {
    let c = cluster(&[]).await;
    let writer = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    let reader = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert!(reader.start_ts() > writer.start_ts());
    assert_eq!(reader.get(b"x").await.unwrap(), None);
    writer.put(b"x".to_vec(), b"1".to_vec()).unwrap();
    let info = writer.commit().await.unwrap();
    assert!(info.one_pc);
    let commit_ts = info.commit_ts.unwrap();
    assert!(
        commit_ts > reader.start_ts(),
        "commit {commit_ts:?} must land above the read at {:?}",
        reader.start_ts()
    );
    // The reader's snapshot did not change under it.
    assert_eq!(reader.get(b"x").await.unwrap(), None);
    let later = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert!(
        later.start_ts() >= commit_ts,
        "the commit ran ahead of the oracle"
    );
    assert_eq!(later.get(b"x").await.unwrap(), Some(b"1".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_split_off_commits_above_reads_served_before_the_split() {
    let c = cluster(&[]).await;
    let writer = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    let reader = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    assert_eq!(reader.get(b"x").await.unwrap(), None);
    // `x` moves to a new range whose replica never served that read.
    c.node.admin_split(b"w".to_vec()).await.unwrap();
    writer.put(b"x".to_vec(), b"1".to_vec()).unwrap();
    let info = writer.commit().await.unwrap();
    assert!(info.one_pc);
    assert!(info.commit_ts.unwrap() > reader.start_ts());
    assert_eq!(reader.get(b"x").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autocommit_write_asks_the_oracle_once() {
    let c = cluster(&[]).await;
    // The first one-phase commit of the lease raises the commit clock.
    let warm = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    warm.put(b"k".to_vec(), b"0".to_vec()).unwrap();
    warm.commit().await.unwrap();
    let before = c.node.meta().timestamp_requests();
    const WRITES: u64 = 40;
    for i in 0..WRITES {
        let t = Transaction::begin(c.client.clone(), opts()).await.unwrap();
        t.put(b"k".to_vec(), i.to_string().into_bytes()).unwrap();
        assert!(t.commit().await.unwrap().one_pc);
    }
    let asked = c.node.meta().timestamp_requests() - before;
    // One each for the start timestamps; a handful of background requests
    // (directory refreshes) may fall in the window, two per write may not.
    assert!(
        (WRITES..WRITES + 5).contains(&asked),
        "{WRITES} autocommit writes asked the oracle {asked} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_range_share_raft_entries() {
    let c = cluster(&[]).await;
    let replica = c
        .node
        .replicas()
        .into_iter()
        .find(|r| r.descriptor().contains(b"g"))
        .unwrap();
    let (entries_before, commands_before) = replica.proposal_stats();
    const WRITERS: usize = 64;
    let writes: Vec<_> = (0..WRITERS)
        .map(|i| {
            let client = c.client.clone();
            tokio::spawn(async move {
                let t = Transaction::begin(client, opts()).await.unwrap();
                t.put(format!("g{i:03}").into_bytes(), vec![i as u8])
                    .unwrap();
                t.commit().await.unwrap()
            })
        })
        .collect();
    for w in writes {
        assert!(w.await.unwrap().one_pc);
    }
    let (entries, commands) = replica.proposal_stats();
    let (entries, commands) = (entries - entries_before, commands - commands_before);
    // (Background work may add a command or two.)
    assert!(commands >= WRITERS as u64, "{commands}");
    assert!(
        entries < commands,
        "{commands} concurrent writes went out as {entries} entries"
    );
    // Every write applied, each with its own value.
    let r = Transaction::begin(c.client.clone(), opts()).await.unwrap();
    for i in 0..WRITERS {
        let key = format!("g{i:03}").into_bytes();
        assert_eq!(r.get(&key).await.unwrap(), Some(vec![i as u8]));
    }
}
