//! The validation pass of a constraint added to a table with rows: every
//! row is read, in bounded batches that move the job's resume key, and
//! checked. It starts once every node's writers enforce the constraint, so
//! the rows a batch reads at its snapshot are all the rows that could
//! break it: later writes are checked by their writers.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;

use super::JobStatus;
use super::claim::Claim;
use crate::catalog::TableEntry;
use crate::catalog::foreign_keys::FkLink;
use crate::codec::key::prefix_end;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::exec::foreign_keys::references_exist;
use crate::interrupt::Interrupt;
use holo_kv::Transaction;

/// Rows per validation transaction.
const BATCH_ROWS: usize = 1024;

/// What the rows are checked for.
pub(super) enum Validation {
    /// No NULL in column `id`.
    NotNull(u32),
    /// CHECK constraint `name` holds (NULL counts as holding), or the
    /// rows' references of FOREIGN KEY `name` lead to existing rows.
    Constraint(String),
}

/// The checker of one validation, for `entry`'s rows.
enum Checker {
    NotNull {
        slot: usize,
        column: String,
    },
    Check {
        name: String,
        expr: Arc<dyn PhysicalExpr>,
    },
    ForeignKey(Arc<FkLink>),
}

impl Checker {
    fn new(claim: &Claim, entry: &TableEntry, what: &Validation) -> SqlResult<Checker> {
        match what {
            Validation::NotNull(id) => {
                let slot = entry
                    .desc
                    .columns
                    .iter()
                    .position(|c| c.id == *id)
                    .ok_or_else(|| SqlError::internal(format!("column {id} is not visible")))?;
                Ok(Checker::NotNull {
                    slot,
                    column: entry.desc.columns[slot].name.clone(),
                })
            }
            Validation::Constraint(name) => {
                let Some(check) = entry.desc.checks.iter().find(|c| &c.name == name) else {
                    return entry
                        .links
                        .outbound
                        .iter()
                        .find(|l| &l.name == name)
                        .map(|l| Checker::ForeignKey(l.clone()))
                        .ok_or_else(|| SqlError::internal(format!("no constraint {name}")));
                };
                let ctx = claim.catalog.expr_context();
                let schema = DFSchema::try_from(entry.schema.as_ref().clone())?;
                let expr = ctx.parse_sql_expr(&check.expr, &schema)?;
                Ok(Checker::Check {
                    name: name.clone(),
                    expr: ctx.create_physical_expr(expr, &schema)?,
                })
            }
        }
    }

    /// The error for the first row of `batch` that breaks the constraint;
    /// references are read in `txn`.
    async fn check(&self, txn: &Transaction, table: &str, batch: &RecordBatch) -> SqlResult<()> {
        match self {
            Checker::NotNull { slot, column } => {
                if batch.column(*slot).null_count() > 0 {
                    return Err(contains_nulls(column, table));
                }
            }
            Checker::Check { name, expr } => {
                if crate::exec::dml::check_fails(expr.as_ref(), batch)? {
                    return Err(SqlError::new(
                        sqlstate::CHECK_VIOLATION,
                        format!(
                            "check constraint \"{name}\" of relation \"{table}\" is violated by some row"
                        ),
                    ));
                }
            }
            Checker::ForeignKey(link) => {
                let values: Vec<_> = link
                    .child_columns
                    .iter()
                    .map(|&p| batch.column(p).clone())
                    .collect();
                references_exist(txn, link, values).await?;
            }
        }
        Ok(())
    }
}

/// The table's entry as this node knows it now.
async fn current_entry(claim: &Claim, table_id: u32) -> SqlResult<Arc<TableEntry>> {
    claim.catalog.refresh_if_stale().await?;
    claim.catalog.table_by_id(table_id).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            "the table of the schema change was dropped",
        )
    })
}

/// Whether table `table_id` has no rows.
pub(super) async fn table_is_empty(claim: &Claim, table_id: u32) -> SqlResult<bool> {
    let entry = current_entry(claim, table_id).await?;
    let prefix = entry.codec.index_prefix().to_vec();
    let txn = claim.catalog.begin().await?;
    let (pairs, _) = txn.scan_chunk(&prefix, &prefix_end(&prefix), 1).await?;
    Ok(pairs.is_empty())
}

/// Checks every row of table `table_id` from the job's resume key on, then
/// marks the pass done; the first row that breaks the constraint fails it.
/// Returns early (`Ok`) when the job was canceled meanwhile.
pub(super) async fn validate(
    claim: &Claim,
    table_id: u32,
    what: &Validation,
    interrupt: &Interrupt,
) -> SqlResult<()> {
    let entry = current_entry(claim, table_id).await?;
    let checker = Checker::new(claim, &entry, what)?;
    let prefix = entry.codec.index_prefix().to_vec();
    let end = prefix_end(&prefix);
    let all: Vec<usize> = (0..entry.desc.columns.len()).collect();
    let mut attempt = 0u32;
    loop {
        interrupt.check()?;
        holo_kv::failpoint::pause("sql::backfill_batch").await;
        let txn = claim.catalog.begin().await?;
        let mut job = claim.job_in(&txn).await?;
        if job.backfilled || job.cancel_requested || job.status != JobStatus::Running {
            return Ok(());
        }
        let start = job.resume_key.clone().unwrap_or_else(|| prefix.clone());
        let (pairs, next) = txn.scan_chunk(&start, &end, BATCH_ROWS).await?;
        let mut decoder = entry
            .codec
            .decoder(all.clone(), entry.schema.clone(), pairs.len());
        for (k, v) in &pairs {
            decoder.push(k, v)?;
        }
        checker
            .check(&txn, &entry.desc.name, &decoder.finish()?)
            .await?;
        job.rows_done += pairs.len() as u64;
        job.resume_key = next.clone();
        job.backfilled = next.is_none();
        job.step = if job.backfilled {
            "validated".into()
        } else {
            "validating".into()
        };
        claim.put(&txn, &mut job)?;
        match txn.commit().await {
            Ok(_) if job.backfilled => return Ok(()),
            Ok(_) => attempt = 0,
            Err(e) => {
                // A CANCEL JOB or a heartbeat wrote the record meanwhile.
                let e = SqlError::from(e);
                attempt += 1;
                if e.code != sqlstate::SERIALIZATION_FAILURE || attempt > 50 {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt.min(20)))).await;
            }
        }
    }
}

/// PostgreSQL's error for a NOT NULL that existing rows violate.
pub(super) fn contains_nulls(column: &str, table: &str) -> SqlError {
    SqlError::new(
        sqlstate::NOT_NULL_VIOLATION,
        format!("column \"{column}\" of relation \"{table}\" contains null values"),
    )
}
