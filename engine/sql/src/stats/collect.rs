//! `ANALYZE`: reads every row of a table at one snapshot, in chunks,
//! counting rows and NULLs exactly and keeping a uniform sample (a
//! reservoir of [`SAMPLE_ROWS`] rows) of each column's key-encoded values.
//! From the sample come the most common values, the histogram and the
//! number of distinct values (Haas and Stokes' estimator, as PostgreSQL's
//! `analyze.c` uses).

use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{Array, ArrayRef};
use rand::{Rng, SeedableRng};

use super::{ColumnStats, HISTOGRAM_BUCKETS, MAX_MCV, SAMPLE_ROWS, TableStats};
use crate::catalog::relation_missing;
use crate::catalog::{Catalog, TableEntry};
use crate::codec::column::{ColumnReader, conform};
use crate::codec::key::prefix_end;
use crate::error::SqlResult;
use crate::interrupt::Interrupt;

/// Rows read per chunk.
const CHUNK_ROWS: usize = 1024;

/// One sampled row: each column's key-encoded value (`None` for NULL).
type SampleRow = Vec<Option<Vec<u8>>>;

/// The key encoding of each column of row `i` of `columns`.
fn encode_row(readers: &[ColumnReader<'_>], i: usize) -> SampleRow {
    readers
        .iter()
        .map(|r| {
            (!r.is_null(i)).then(|| {
                let mut out = Vec::with_capacity(16);
                r.write_key(i, &mut out);
                out
            })
        })
        .collect()
}

/// Collects the statistics of `entry`'s table in `txn` (a fresh
/// transaction: its snapshot is what is counted); `interrupt` stops it.
pub async fn analyze(
    txn: &holo_kv::Transaction,
    entry: &TableEntry,
    interrupt: &Interrupt,
) -> SqlResult<TableStats> {
    let ncols = entry.desc.columns.len();
    let prefix = entry.codec.index_prefix().to_vec();
    let end = prefix_end(&prefix);
    let all: Vec<usize> = (0..ncols).collect();
    let mut sample: Vec<SampleRow> = Vec::new();
    let mut nulls = vec![0u64; ncols];
    let mut rows: u64 = 0;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let mut start = prefix;
    loop {
        interrupt.check()?;
        let (pairs, next) = txn.scan_chunk(&start, &end, CHUNK_ROWS).await?;
        let mut decoder = entry
            .codec
            .decoder(all.clone(), entry.schema.clone(), pairs.len());
        for (k, v) in &pairs {
            decoder.push(k, v)?;
        }
        let batch = decoder.finish()?;
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(&entry.desc.columns)
            .map(|(a, c)| conform(a, c.ty))
            .collect::<SqlResult<_>>()?;
        for (n, a) in nulls.iter_mut().zip(&columns) {
            *n += a.null_count() as u64;
        }
        let readers = columns
            .iter()
            .zip(&entry.desc.columns)
            .map(|(a, c)| ColumnReader::new(a, c.ty))
            .collect::<SqlResult<Vec<_>>>()?;
        for i in 0..batch.num_rows() {
            rows += 1;
            if sample.len() < SAMPLE_ROWS {
                sample.push(encode_row(&readers, i));
            } else {
                let j = rng.random_range(0..rows) as usize;
                if j < SAMPLE_ROWS {
                    sample[j] = encode_row(&readers, i);
                }
            }
        }
        match next {
            Some(n) => start = n,
            None => break,
        }
        tokio::task::yield_now().await;
    }
    let columns = entry
        .desc
        .columns
        .iter()
        .enumerate()
        .map(|(c, col)| {
            let values: Vec<&[u8]> = sample.iter().filter_map(|r| r[c].as_deref()).collect();
            column_stats(col.id, values, sample.len(), rows, nulls[c])
        })
        .collect();
    Ok(TableStats {
        table_id: entry.desc.id,
        row_count: rows,
        analyzed_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        sampled: sample.len() as u64,
        columns,
    })
}

/// `ANALYZE [t]`: collects and stores the statistics of table `name`, or of
/// every table.
pub async fn run(catalog: &Catalog, name: Option<&str>, interrupt: &Interrupt) -> SqlResult<()> {
    catalog.refresh_if_stale().await?;
    let names = match name {
        Some(n) => {
            if catalog.table(n).is_none() {
                return Err(relation_missing(n));
            }
            vec![n.to_string()]
        }
        None => catalog.table_names(),
    };
    for n in names {
        // A table dropped meanwhile is skipped, as PostgreSQL does.
        let Some(entry) = catalog.table(&n) else {
            continue;
        };
        catalog.forget_writes(entry.desc.id);
        let txn = catalog.begin().await?;
        let stats = analyze(&txn, &entry, interrupt).await?;
        txn.rollback();
        catalog.put_stats(&stats).await?;
    }
    Ok(())
}

/// The statistics of one column from its non-NULL sampled `values` (out
/// of `sampled` rows), the table's `rows` and the column's `nulls`.
pub(crate) fn column_stats(
    column_id: u32,
    mut values: Vec<&[u8]>,
    sampled: usize,
    rows: u64,
    nulls: u64,
) -> ColumnStats {
    let null_frac = if rows == 0 {
        0.0
    } else {
        nulls as f64 / rows as f64
    };
    let n = values.len();
    if n == 0 {
        return ColumnStats {
            column_id,
            null_frac,
            distinct: 0.0,
            avg_width: 0.0,
            mcv: Vec::new(),
            histogram: Vec::new(),
        };
    }
    let avg_width = values.iter().map(|v| v.len()).sum::<usize>() as f64 / n as f64;
    values.sort_unstable();
    // Runs of equal values: (value, count).
    let mut groups: Vec<(&[u8], usize)> = Vec::new();
    for v in &values {
        match groups.last_mut() {
            Some((last, count)) if last == v => *count += 1,
            _ => groups.push((v, 1)),
        }
    }
    let d = groups.len() as f64;
    let f1 = groups.iter().filter(|(_, c)| *c == 1).count() as f64;
    let nonnull_rows = rows.saturating_sub(nulls) as f64;
    let nf = n as f64;
    let distinct = if sampled as u64 >= rows {
        d
    } else if f1 >= nf {
        // Every sampled value is unique: take the column as unique.
        nonnull_rows
    } else {
        // Haas and Stokes' Duj1: n d / (n - f1 + f1 n / N).
        let est = nf * d / (nf - f1 + f1 * nf / nonnull_rows.max(nf));
        est.clamp(d, nonnull_rows.max(d))
    };
    // Most common values: those clearly above the average frequency (or
    // every value, when all of them fit).
    let mut by_count = groups.clone();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let all_fit = groups.len() <= MAX_MCV && (sampled as u64 >= rows || f1 == 0.0);
    let avg = nf / d;
    let mcv: Vec<(Vec<u8>, f64)> = by_count
        .iter()
        .filter(|(_, c)| all_fit || (*c > 1 && *c as f64 >= 1.25 * avg))
        .take(MAX_MCV)
        .map(|(v, c)| (v.to_vec(), *c as f64 / sampled as f64))
        .collect();
    let in_mcv = |v: &[u8]| mcv.iter().any(|(m, _)| m.as_slice() == v);
    let rest: Vec<&[u8]> = values.iter().copied().filter(|v| !in_mcv(v)).collect();
    let histogram = if rest.len() < 2 {
        Vec::new()
    } else {
        let buckets = HISTOGRAM_BUCKETS.min(rest.len() - 1);
        (0..=buckets)
            .map(|i| rest[i * (rest.len() - 1) / buckets].to_vec())
            .collect()
    };
    ColumnStats {
        column_id,
        null_frac,
        distinct,
        avg_width,
        mcv,
        histogram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: u32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    #[test]
    fn a_skewed_column_has_its_common_values_and_a_histogram_of_the_rest() {
        // 1000 rows: value 7 in half of them, 500 distinct others.
        let mut owned = vec![key(7); 500];
        owned.extend((1000..1500).map(key));
        let values: Vec<&[u8]> = owned.iter().map(|v| v.as_slice()).collect();
        let s = column_stats(1, values, 1000, 1000, 0);
        assert_eq!(s.mcv.len(), 1);
        assert_eq!(s.mcv[0].0, key(7));
        assert!((s.mcv[0].1 - 0.5).abs() < 1e-9);
        assert_eq!(s.distinct, 501.0);
        assert_eq!(s.histogram.len(), HISTOGRAM_BUCKETS + 1);
        assert_eq!(s.histogram[0], key(1000));
        assert_eq!(s.histogram[HISTOGRAM_BUCKETS], key(1499));
    }

    #[test]
    fn a_sample_of_unique_values_scales_to_the_table() {
        let owned: Vec<Vec<u8>> = (0..100).map(key).collect();
        let values: Vec<&[u8]> = owned.iter().map(|v| v.as_slice()).collect();
        let s = column_stats(1, values, 100, 10_000, 100);
        assert_eq!(s.distinct, 9_900.0);
        assert!((s.null_frac - 0.01).abs() < 1e-9);
        assert!(s.mcv.is_empty());
    }

    #[test]
    fn few_values_are_all_common() {
        let mut owned = vec![key(1); 60];
        owned.extend(vec![key(2); 40]);
        let values: Vec<&[u8]> = owned.iter().map(|v| v.as_slice()).collect();
        let s = column_stats(1, values, 100, 100, 0);
        assert_eq!(s.mcv.len(), 2);
        assert!(s.histogram.is_empty());
        assert_eq!(s.distinct, 2.0);
    }
}
