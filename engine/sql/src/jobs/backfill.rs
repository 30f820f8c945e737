//! The backfill of a new index: every row that existed before its writers
//! started maintaining it gets its entry, in bounded batches while writes
//! go on.
//!
//! Each batch is one transaction that reads the next rows at its snapshot,
//! writes their entries and moves the job's resume key, so a coordinator
//! that dies loses at most a batch. A writer that changes or deletes one of
//! those rows meanwhile writes the same entry key (it maintains the
//! write-only index), so one of the two transactions sees a write-write
//! conflict: a stale entry can never commit. The batch is then read again.
//! For a unique index an entry that already exists is either this row's
//! (written by a writer: kept) or another row's: the index cannot be built
//! (23505).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use datafusion::arrow::array::ArrayRef;
use holo_kv::KvError;
use holo_txn_types::KeyError;

use super::claim::Claim;
use crate::catalog::TableEntry;
use crate::catalog::descriptor::IndexState;
use crate::codec::index::{IndexCodec, IndexEntry, pk_suffix_in};
use crate::codec::key::prefix_end;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::exec::row_writes::index_entries;
use crate::interrupt::Interrupt;

/// Rows per backfill transaction.
const BATCH_ROWS: usize = 512;
/// Conflicting attempts of one batch before the backfill gives up (the job
/// then fails, reverts, and can be run again).
const MAX_ATTEMPTS: u32 = 200;

/// Backfills index `index_id` of table `table_id` from the job's resume key
/// to the end of the table, then marks the job backfilled. Returns early
/// (`Ok`) when the job was canceled meanwhile.
pub(super) async fn backfill(
    claim: &Claim,
    table_id: u32,
    index_id: u16,
    interrupt: &Interrupt,
) -> SqlResult<()> {
    claim.catalog.refresh_if_stale().await?;
    let entry = claim.catalog.table_by_id(table_id).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            "the table of the schema change was dropped",
        )
    })?;
    let index = entry
        .indexes
        .iter()
        .find(|i| i.desc().id == index_id && i.desc().state == IndexState::WriteOnly)
        .ok_or_else(|| SqlError::internal(format!("index {index_id} is not write-only")))?;
    // Entries found already written for their own row: (key, pk suffix).
    let mut skip: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
    let mut attempt = 0u32;
    loop {
        interrupt.check()?;
        match batch(claim, &entry, index, &skip).await {
            Ok(true) => return Ok(()),
            Ok(false) => attempt = 0,
            Err(Retry::Skip(key, suffix)) => {
                skip.insert((key, suffix));
            }
            Err(Retry::Conflict(e)) => {
                claim.beat_if_due().await?;
                attempt += 1;
                if attempt >= MAX_ATTEMPTS {
                    return Err(SqlError::new(
                        sqlstate::SERIALIZATION_FAILURE,
                        format!(
                            "backfill of index \"{}\" kept conflicting with writes: {}",
                            index.desc().name,
                            e.message
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt.min(20)))).await;
            }
            Err(Retry::Fail(e)) => return Err(e),
        }
    }
}

enum Retry {
    /// The batch met an entry this row already has (key, pk suffix): leave
    /// it alone.
    Skip(Vec<u8>, Vec<u8>),
    /// A write-write conflict: read the batch again.
    Conflict(SqlError),
    /// Not retryable.
    Fail(SqlError),
}

impl From<SqlError> for Retry {
    fn from(e: SqlError) -> Self {
        if e.code == sqlstate::SERIALIZATION_FAILURE {
            Retry::Conflict(e)
        } else {
            Retry::Fail(e)
        }
    }
}

impl From<KvError> for Retry {
    fn from(e: KvError) -> Self {
        Retry::from(SqlError::from(e))
    }
}

/// One batch; `Ok(true)` when the backfill is complete (or the job is no
/// longer running forward).
async fn batch(
    claim: &Claim,
    entry: &TableEntry,
    index: &IndexCodec,
    skip: &HashSet<(Vec<u8>, Vec<u8>)>,
) -> Result<bool, Retry> {
    // Fault injection: `FAILPOINTS=sql::backfill_batch=return(MS)` slows
    // every batch down, so tests can act in the middle of a backfill.
    holo_kv::failpoint::pause("sql::backfill_batch").await;
    let txn = claim.catalog.begin().await?;
    let mut job = claim.job_in(&txn).await?;
    if job.backfilled || job.cancel_requested || job.status != super::JobStatus::Running {
        return Ok(true);
    }
    let prefix = entry.codec.index_prefix().to_vec();
    let end = prefix_end(&prefix);
    let start = job.resume_key.clone().unwrap_or(prefix);
    let (pairs, next) = txn.scan_chunk(&start, &end, BATCH_ROWS).await?;
    let rows = pairs.len();
    let entries = entries_of(entry, index, &pairs)?;
    let mut seen: HashMap<&[u8], &IndexEntry> = HashMap::new();
    for e in &entries {
        if e.unique {
            if let Some(prior) = seen.insert(&e.key, e)
                && pk_suffix_in(&prior.value) != pk_suffix_in(&e.value)
            {
                return Err(Retry::Fail(duplicated(index, &e.key)));
            }
            let suffix = pk_suffix_in(&e.value).unwrap_or_default().to_vec();
            if skip.contains(&(e.key.clone(), suffix)) {
                continue;
            }
            txn.insert(e.key.clone(), e.value.clone())?;
        } else {
            txn.put(e.key.clone(), e.value.clone())?;
        }
    }
    job.rows_done += rows as u64;
    job.resume_key = next.clone();
    job.backfilled = next.is_none();
    job.step = if job.backfilled {
        "backfilled".into()
    } else {
        "backfilling".into()
    };
    claim.put(&txn, &mut job)?;
    match txn.commit().await {
        Ok(_) => Ok(job.backfilled),
        Err(KvError::Key(KeyError::AlreadyExists { key })) => {
            // Someone wrote this entry first: this row's own (a writer
            // maintaining the index), or another row's (a duplicate).
            let check = claim.catalog.begin().await?;
            let existing = check.get(&key).await?;
            let ours = entries.iter().find(|e| e.key == key);
            match (existing, ours) {
                (Some(v), Some(e)) if pk_suffix_in(&v) == pk_suffix_in(&e.value) => {
                    let suffix = pk_suffix_in(&v).unwrap_or_default().to_vec();
                    Err(Retry::Skip(key, suffix))
                }
                (Some(_), _) => Err(Retry::Fail(duplicated(index, &key))),
                // Gone again: read the batch anew.
                (None, _) => Err(Retry::Conflict(SqlError::new(
                    sqlstate::SERIALIZATION_FAILURE,
                    "index entry changed during the backfill",
                ))),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn entries_of(
    entry: &TableEntry,
    index: &IndexCodec,
    pairs: &[(Vec<u8>, Vec<u8>)],
) -> SqlResult<Vec<IndexEntry>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<usize> = (0..entry.desc.columns.len()).collect();
    let mut decoder = entry.codec.decoder(all, entry.schema.clone(), pairs.len());
    for (k, v) in pairs {
        decoder.push(k, v)?;
    }
    let batch = decoder.finish()?;
    let columns: Vec<ArrayRef> = batch.columns().to_vec();
    index_entries(entry, index, &columns)
}

/// PostgreSQL's error for a unique index that existing rows violate.
fn duplicated(index: &IndexCodec, key: &[u8]) -> SqlError {
    let err = SqlError::new(
        sqlstate::UNIQUE_VIOLATION,
        format!("could not create unique index \"{}\"", index.desc().name),
    );
    match index.describe_key(key) {
        Some(k) => err.with_detail(format!("Key {k} is duplicated.")),
        None => err,
    }
}
