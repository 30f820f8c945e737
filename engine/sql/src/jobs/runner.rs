//! Runs a schema-change job one durable step at a time: each step changes
//! the descriptor (and the job record) in one transaction, then waits until
//! every node's schema lease has caught up before the next. The steps of an
//! index follow F1: absent, delete-only, write-only, backfilled, public,
//! and back the same way for a drop or a revert.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use holo_kv::Transaction;

use super::alter;
use super::backfill::backfill;
use super::claim::Claim;
use super::{JobError, JobKind, JobRecord, JobStatus, TableChange};
use crate::catalog::Catalog;
use crate::catalog::descriptor::{IndexState, TableDescriptor};
use crate::catalog::keys::namespace_key;
use crate::catalog::lease::now_ms;
use crate::codec::key::{index_prefix, prefix_end};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::{Interrupt, canceled};

impl JobKind {
    /// The table the job changes.
    pub fn table_id(&self) -> u32 {
        match *self {
            JobKind::CreateIndex { table_id, .. }
            | JobKind::DropIndex { table_id, .. }
            | JobKind::AlterTable { table_id, .. } => table_id,
        }
    }

    /// Whether a failure or cancel undoes the job (a drop, and a change
    /// already made whole, always finish).
    pub(crate) fn revertible(&self) -> bool {
        match self {
            JobKind::CreateIndex { .. } => true,
            JobKind::DropIndex { .. } => false,
            JobKind::AlterTable { change, .. } => !matches!(
                change,
                TableChange::Metadata | TableChange::DropColumn { .. }
            ),
        }
    }
}

/// The state of the job's index in `desc`, `None` when it is absent.
fn index_state(desc: Option<&TableDescriptor>, index_id: u16) -> Option<IndexState> {
    desc?
        .indexes
        .iter()
        .find(|i| i.id == index_id)
        .map(|i| i.state)
}

/// Sets the job's index to `state` (`None` removes it and frees its name).
fn set_index(
    txn: &Transaction,
    desc: Option<&mut TableDescriptor>,
    index_id: u16,
    state: Option<IndexState>,
) -> SqlResult<bool> {
    let Some(desc) = desc else {
        return Ok(false);
    };
    let Some(pos) = desc.indexes.iter().position(|i| i.id == index_id) else {
        return Ok(false);
    };
    match state {
        Some(s) => {
            let index = &mut desc.indexes[pos];
            index.state = s;
            // Every backfill batch committed before this transaction began.
            index.readable_from = (s == IndexState::Public).then(|| txn.start_ts().into_inner());
        }
        None => {
            let index = desc.indexes.remove(pos);
            txn.delete(namespace_key(desc.parent_id, &index.name))?;
        }
    }
    Ok(true)
}

/// Runs job `id` under `claim` until it ends; the job's outcome is the
/// result (57014 when it was canceled). `interrupt` (the statement's, when
/// a client waits for the job) cancels it like `CANCEL JOB`.
pub async fn run(
    catalog: Arc<Catalog>,
    id: u64,
    claim: u64,
    interrupt: Arc<Interrupt>,
) -> SqlResult<()> {
    let claim = Claim {
        catalog,
        id,
        claim,
        last_beat: AtomicU64::new(now_ms()),
    };
    let mut last_error: Option<SqlError> = None;
    loop {
        let txn = claim.catalog.begin().await?;
        let job = claim.job_in(&txn).await?;
        drop(txn);
        match job.status {
            JobStatus::Succeeded => return Ok(()),
            JobStatus::Canceled => return Err(canceled()),
            JobStatus::Failed => return Err(last_error.unwrap_or_else(|| stored_error(&job))),
            JobStatus::Running => {
                let stop = if job.cancel_requested {
                    Some(canceled())
                } else {
                    interrupt.check().err()
                };
                if let Some(reason) = stop.filter(|_| job.kind.revertible()) {
                    revert(&claim, &reason).await?;
                    last_error = Some(reason);
                    continue;
                }
                match forward(&claim, &job, &interrupt).await {
                    Ok(()) => {}
                    Err(e) if e.code == sqlstate::QUERY_CANCELED => {}
                    Err(e) if is_transient(&e) => retry_pause(id, &e).await,
                    Err(e) if job.kind.revertible() => {
                        tracing::info!(job = id, error = %e, "schema change failed; reverting");
                        revert(&claim, &e).await?;
                        last_error = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            JobStatus::Reverting => match backward(&claim, &job).await {
                Err(e) if is_transient(&e) => retry_pause(id, &e).await,
                other => other?,
            },
        }
    }
}

/// A pause before a step that failed on a transient error is tried again.
async fn retry_pause(id: u64, e: &SqlError) {
    tracing::debug!(job = id, error = %e, "schema-change step failed; trying again");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// Errors after which a step is tried again rather than reverted.
fn is_transient(e: &SqlError) -> bool {
    matches!(
        e.code,
        sqlstate::SERIALIZATION_FAILURE | sqlstate::STATEMENT_COMPLETION_UNKNOWN
    ) || e.code.starts_with("08")
        || e.code.starts_with("57P")
        || e.code.starts_with("58")
}

/// The error a failed job recorded, for a client that did not see it.
fn stored_error(job: &JobRecord) -> SqlError {
    let Some(e) = &job.error else {
        return SqlError::internal(format!("job {} failed", job.id));
    };
    let code = match e.code.as_str() {
        sqlstate::UNIQUE_VIOLATION => sqlstate::UNIQUE_VIOLATION,
        sqlstate::NOT_NULL_VIOLATION => sqlstate::NOT_NULL_VIOLATION,
        sqlstate::CHECK_VIOLATION => sqlstate::CHECK_VIOLATION,
        sqlstate::UNDEFINED_TABLE => sqlstate::UNDEFINED_TABLE,
        sqlstate::PROGRAM_LIMIT_EXCEEDED => sqlstate::PROGRAM_LIMIT_EXCEEDED,
        _ => sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
    };
    let err = SqlError::new(code, e.message.clone());
    match &e.detail {
        Some(d) => err.with_detail(d.clone()),
        None => err,
    }
}

/// Marks the job as reverting because of `reason`.
async fn revert(claim: &Claim, reason: &SqlError) -> SqlResult<()> {
    let reason = JobError::from(reason);
    claim
        .transact(move |_, _, job| {
            job.status = JobStatus::Reverting;
            job.step = "reverting".into();
            job.error = Some(reason.clone());
            Ok(false)
        })
        .await
        .map(|_| ())
}

/// One step forward.
async fn forward(claim: &Claim, job: &JobRecord, interrupt: &Interrupt) -> SqlResult<()> {
    let index_id = match &job.kind {
        JobKind::CreateIndex { index_id, .. } | JobKind::DropIndex { index_id, .. } => *index_id,
        JobKind::AlterTable { table_id, change } => {
            return alter::forward(claim, job, *table_id, change, interrupt).await;
        }
    };
    let desc = claim.stored_table(job.kind.table_id()).await?;
    let state = index_state(desc.as_ref(), index_id);
    let (next, step): (Option<Option<IndexState>>, &str) = match (job.kind.clone(), state) {
        (JobKind::CreateIndex { .. }, None) => {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                "the table or index of the schema change was dropped",
            ));
        }
        (JobKind::CreateIndex { .. }, Some(IndexState::DeleteOnly)) => {
            claim
                .wait_for_leases(interrupt, job.kind.revertible())
                .await?;
            (Some(Some(IndexState::WriteOnly)), "backfilling")
        }
        (JobKind::CreateIndex { table_id, index_id }, Some(IndexState::WriteOnly)) => {
            claim
                .wait_for_leases(interrupt, job.kind.revertible())
                .await?;
            if !job.backfilled {
                backfill(claim, table_id, index_id, interrupt).await?;
                return Ok(());
            }
            (Some(Some(IndexState::Public)), "done")
        }
        (JobKind::CreateIndex { .. }, Some(IndexState::Public)) => (None, "done"),
        (JobKind::DropIndex { .. }, Some(IndexState::Public)) => {
            (Some(Some(IndexState::WriteOnly)), "write-only")
        }
        (JobKind::DropIndex { .. }, Some(IndexState::WriteOnly)) => {
            claim
                .wait_for_leases(interrupt, job.kind.revertible())
                .await?;
            (Some(Some(IndexState::DeleteOnly)), "delete-only")
        }
        (JobKind::DropIndex { .. }, Some(IndexState::DeleteOnly)) => {
            claim
                .wait_for_leases(interrupt, job.kind.revertible())
                .await?;
            (Some(None), "removing entries")
        }
        (JobKind::DropIndex { table_id, index_id }, None) => {
            claim.wait_for_leases(&Interrupt::none(), false).await?;
            clear_index(claim, table_id, index_id).await?;
            (None, "done")
        }
        (JobKind::AlterTable { .. }, _) => unreachable_kind(job)?,
    };
    let done = step == "done";
    claim
        .transact(move |txn, desc, job| {
            job.step = step.to_string();
            if done {
                job.succeed();
            }
            match next {
                Some(state) => set_index(txn, desc, index_id, state),
                None => Ok(false),
            }
        })
        .await
        .map(|_| ())
}

/// An index step asked of a job of another kind.
fn unreachable_kind<T>(job: &JobRecord) -> SqlResult<T> {
    Err(SqlError::internal(format!(
        "job {} is not an index job",
        job.id
    )))
}

/// One step back (a change that failed or was canceled).
async fn backward(claim: &Claim, job: &JobRecord) -> SqlResult<()> {
    let (table_id, index_id) = match &job.kind {
        JobKind::CreateIndex { table_id, index_id } => (*table_id, *index_id),
        JobKind::AlterTable { change, .. } if job.kind.revertible() => {
            return alter::backward(claim, change).await;
        }
        _ => {
            return Err(SqlError::internal(format!(
                "job {} cannot be reverted",
                job.id
            )));
        }
    };
    let desc = claim.stored_table(table_id).await?;
    let none = Interrupt::none();
    let next = match index_state(desc.as_ref(), index_id) {
        Some(IndexState::WriteOnly | IndexState::Public) => Some(Some(IndexState::DeleteOnly)),
        Some(IndexState::DeleteOnly) => {
            claim.wait_for_leases(&none, false).await?;
            Some(None)
        }
        None => {
            claim.wait_for_leases(&none, false).await?;
            clear_index(claim, table_id, index_id).await?;
            None
        }
    };
    claim
        .transact(move |txn, desc, job| match next {
            Some(state) => set_index(txn, desc, index_id, state),
            None => {
                job.reverted();
                Ok(false)
            }
        })
        .await
        .map(|_| ())
}

/// Removes every entry of an index no node reads or writes any more.
async fn clear_index(claim: &Claim, table_id: u32, index_id: u16) -> SqlResult<()> {
    let prefix = index_prefix(table_id, index_id);
    claim
        .catalog
        .kv()
        .clear_range(&prefix, &prefix_end(&prefix))
        .await?;
    Ok(())
}
