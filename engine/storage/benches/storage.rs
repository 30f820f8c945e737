//! Storage microbenchmarks: point put (1PC), point get, scans, key encoding.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use holo_storage::{
    Engine, EngineOptions, MvccStore, RangeDescriptor, RangeId, ReadOptions, WriteCommand,
};
use holo_txn_types::codec::encode_bytes;
use holo_txn_types::{Mutation, Timestamp};

fn open(sync_writes: bool) -> (tempfile::TempDir, MvccStore, RangeDescriptor) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        EngineOptions {
            sync_writes,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    (
        dir,
        MvccStore::new(Arc::new(engine)).unwrap(),
        RangeDescriptor::whole_keyspace(RangeId(1), 1),
    )
}

fn key(i: u64) -> Vec<u8> {
    let mut k = b"t\x00\x00\x00\x64".to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

fn load(store: &MvccStore, range: &RangeDescriptor, n: u64) -> u64 {
    let mut ts = 1;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mutations = chunk
            .iter()
            .map(|i| Mutation::put(key(*i), vec![7u8; 100]))
            .collect();
        store
            .apply(
                range,
                &WriteCommand::OnePc {
                    mutations,
                    start_ts: Timestamp::new(ts),
                    commit_ts: Timestamp::new(ts + 1),
                },
            )
            .unwrap();
        ts += 2;
    }
    ts
}

fn bench_storage(c: &mut Criterion) {
    let (_dir, store, range) = open(false);
    let mut ts = load(&store, &range, 100_000);
    let read_ts = Timestamp::new(ts);

    let mut g = c.benchmark_group("storage");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("point_get_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % 100_000;
            black_box(
                store
                    .get(&range, &key(i), &ReadOptions::at(read_ts))
                    .unwrap(),
            );
        })
    });
    g.bench_function("point_put_1pc_nosync", |b| {
        b.iter(|| {
            i = (i + 7919) % 100_000;
            ts += 2;
            store
                .apply(
                    &range,
                    &WriteCommand::OnePc {
                        mutations: vec![Mutation::put(key(i), vec![9u8; 100])],
                        start_ts: Timestamp::new(ts),
                        commit_ts: Timestamp::new(ts + 1),
                    },
                )
                .unwrap();
        })
    });
    g.throughput(Throughput::Elements(1000));
    let read_ts = Timestamp::new(ts + 10);
    g.bench_function("scan_1000_rows", |b| {
        b.iter(|| {
            i = (i + 7919) % 99_000;
            let r = store
                .scan(
                    &range,
                    &key(i),
                    &key(i + 1000),
                    &ReadOptions::at(read_ts),
                    2000,
                )
                .unwrap();
            assert_eq!(r.pairs.len(), 1000);
        })
    });
    g.finish();

    let (_dir2, sync_store, sync_range) = open(true);
    let mut g = c.benchmark_group("storage_sync");
    g.sample_size(20);
    let mut t = 1u64;
    g.bench_function("point_put_1pc_fsync", |b| {
        b.iter(|| {
            t += 2;
            sync_store
                .apply(
                    &sync_range,
                    &WriteCommand::OnePc {
                        mutations: vec![Mutation::put(key(t), vec![1u8; 100])],
                        start_ts: Timestamp::new(t),
                        commit_ts: Timestamp::new(t + 1),
                    },
                )
                .unwrap();
        })
    });
    g.finish();
}

fn bench_key_encoding(c: &mut Criterion) {
    let raw = key(123_456_789);
    c.bench_function("memcomparable_encode_13b", |b| {
        let mut out = Vec::with_capacity(32);
        b.iter(|| {
            out.clear();
            encode_bytes(black_box(&raw), &mut out);
            black_box(&out);
        })
    });
}

criterion_group!(benches, bench_storage, bench_key_encoding);
criterion_main!(benches);
