//! Codec microbenchmarks: encoding and decoding rows and keys of a
//! three-column table.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use holo_sql::catalog::descriptor::{
    ColumnDescriptor, DESCRIPTOR_FORMAT, PrimaryKeyDescriptor, TableDescriptor,
};
use holo_sql::codec::row::RowCodec;
use holo_sql::types::SqlType;

fn table() -> TableDescriptor {
    let col = |id, name: &str, ty, nullable| ColumnDescriptor {
        id,
        name: name.into(),
        ty,
        nullable,
        default: None,
        missing: None,
        validating_not_null: false,
    };
    TableDescriptor {
        format: DESCRIPTOR_FORMAT,
        id: 100,
        name: "users".into(),
        parent_id: 2,
        version: 1,
        hidden_columns: vec![],
        columns: vec![
            col(1, "id", SqlType::BigInt, false),
            col(2, "name", SqlType::Text, false),
            col(3, "score", SqlType::Integer, true),
        ],
        primary_key: PrimaryKeyDescriptor {
            name: "users_pkey".into(),
            column_ids: vec![1],
        },
        checks: vec![],
        indexes: vec![],
        next_column_id: 4,
        foreign_keys: Vec::new(),
        next_index_id: 2,
    }
}

fn bench_rows(c: &mut Criterion) {
    const N: usize = 8192;
    let desc = table();
    let codec = Arc::new(RowCodec::new(&desc).unwrap());
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..N as i64));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..N).map(|i| format!("user-{i:08}")),
    ));
    let scores: ArrayRef = Arc::new(Int32Array::from_iter(
        (0..N as i32).map(|i| (i % 7 != 0).then_some(i)),
    ));
    let columns = vec![ids.clone(), names, scores];
    let mut g = c.benchmark_group("row_codec");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("encode_8192_rows", |b| {
        b.iter(|| black_box(codec.encode_rows(&columns).unwrap()))
    });
    let encoded = codec.encode_rows(&columns).unwrap();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new("id", SqlType::BigInt.arrow_type(), false),
        datafusion::arrow::datatypes::Field::new("name", SqlType::Text.arrow_type(), false),
        datafusion::arrow::datatypes::Field::new("score", SqlType::Integer.arrow_type(), true),
    ]));
    g.bench_function("decode_8192_rows", |b| {
        b.iter(|| {
            let mut d = codec.decoder(vec![0, 1, 2], schema.clone(), N);
            for (k, v) in &encoded {
                d.push(k, v).unwrap();
            }
            black_box(d.finish().unwrap())
        })
    });
    g.bench_function("encode_8192_keys", |b| {
        b.iter(|| black_box(codec.encode_keys(std::slice::from_ref(&ids)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench_rows);
criterion_main!(benches);
