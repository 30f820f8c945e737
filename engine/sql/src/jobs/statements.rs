//! Starting jobs, `SHOW JOBS`, `CANCEL JOB n`, and the adoption of jobs
//! whose coordinator died.
//!
//! The parser turns `SHOW JOBS` into `CALL holo_show_jobs()` and
//! `CANCEL JOB n` into `CALL holo_cancel_job(n)` (`parse::custom`).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};
use holo_kv::Transaction;

use super::{
    ADOPT_AFTER, JobKind, JobRecord, JobStatus, list_jobs, load_job, next_job_id, put_job,
};
use crate::catalog::Catalog;
use crate::catalog::lease::now_ms;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::Interrupt;
use crate::parse::custom::{CANCEL_JOB_FN, SHOW_JOBS_FN};
use crate::types::{SqlType, UTC};

/// Whether `f` is one of the job calls.
pub fn is_job_call(f: &Function) -> bool {
    let name = f.name.to_string().to_lowercase();
    name == SHOW_JOBS_FN || name == CANCEL_JOB_FN
}

/// Runs a job call: the rows of `SHOW JOBS`, or `None` for a `CANCEL JOB`.
pub async fn execute(catalog: &Catalog, f: &Function) -> SqlResult<Option<RecordBatch>> {
    let args: Vec<&Expr> = match &f.args {
        FunctionArguments::None => Vec::new(),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                _ => Err(SqlError::new(sqlstate::SYNTAX_ERROR, "unexpected argument")),
            })
            .collect::<SqlResult<_>>()?,
        FunctionArguments::Subquery(_) => {
            return Err(SqlError::new(sqlstate::SYNTAX_ERROR, "unexpected argument"));
        }
    };
    if f.name.to_string().eq_ignore_ascii_case(SHOW_JOBS_FN) {
        if !args.is_empty() {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "SHOW JOBS takes no arguments",
            ));
        }
        return show_jobs(catalog).await.map(Some);
    }
    let id = match args.as_slice() {
        [Expr::Value(v)] => match &v.value {
            Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| SqlError::new(sqlstate::SYNTAX_ERROR, "CANCEL JOB takes a job id"))?;
    cancel_job(catalog, id).await.map(|()| None)
}

/// Creates a job record of `kind` in `txn` (the transaction that makes the
/// schema change's first step), coordinated by this node. Returns its id
/// and claim.
pub async fn create_job(
    catalog: &Catalog,
    txn: &Transaction,
    kind: JobKind,
    description: &str,
    step: &str,
) -> SqlResult<(u64, u64)> {
    let id = next_job_id(txn).await?;
    let claim: u64 = rand::random();
    let now = now_ms();
    put_job(
        txn,
        &JobRecord {
            id,
            kind,
            description: description.to_string(),
            status: JobStatus::Running,
            step: step.to_string(),
            cancel_requested: false,
            resume_key: None,
            backfilled: false,
            rows_done: 0,
            error: None,
            coordinator: catalog.node_id(),
            claim,
            heartbeat_ms: now,
            created_ms: now,
            finished_ms: None,
        },
    )?;
    Ok((id, claim))
}

fn show_jobs_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Int64, false),
        Field::new("job_type", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("step", DataType::Utf8, false),
        Field::new("rows_done", DataType::Int64, false),
        Field::new("coordinator", DataType::Int64, false),
        Field::new("created", SqlType::TimestampTz.arrow_type(), false),
        Field::new("finished", SqlType::TimestampTz.arrow_type(), true),
        Field::new("error", DataType::Utf8, true),
    ]))
}

fn micros(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The rows of `SHOW JOBS`, newest first.
async fn show_jobs(catalog: &Catalog) -> SqlResult<RecordBatch> {
    let txn = catalog.begin().await?;
    let mut jobs = list_jobs(&txn).await?;
    jobs.reverse();
    let col = |f: &dyn Fn(&JobRecord) -> Option<String>| -> ArrayRef {
        Arc::new(jobs.iter().map(f).collect::<StringArray>())
    };
    let int = |f: &dyn Fn(&JobRecord) -> i64| -> ArrayRef {
        Arc::new(jobs.iter().map(f).collect::<Int64Array>())
    };
    let time = |f: &dyn Fn(&JobRecord) -> Option<u64>| -> ArrayRef {
        Arc::new(
            jobs.iter()
                .map(|j| f(j).map(micros))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone(UTC),
        )
    };
    let columns = vec![
        int(&|j| i64_of(j.id)),
        col(&|j| Some(j.kind.name().to_string())),
        col(&|j| Some(j.description.clone())),
        col(&|j| Some(j.status.name().to_string())),
        col(&|j| Some(j.step.clone())),
        int(&|j| i64_of(j.rows_done)),
        int(&|j| i64_of(j.coordinator)),
        time(&|j| Some(j.created_ms)),
        time(&|j| j.finished_ms),
        col(&|j| j.error.as_ref().map(|e| e.message.clone())),
    ];
    RecordBatch::try_new(show_jobs_schema(), columns)
        .map_err(|e| SqlError::internal(format!("SHOW JOBS: {e}")))
}

/// Asks job `id` to stop and undo its change.
async fn cancel_job(catalog: &Catalog, id: u64) -> SqlResult<()> {
    let mut attempt = 0u32;
    loop {
        let txn = catalog.begin().await?;
        let mut job = load_job(&txn, id)
            .await?
            .ok_or_else(|| super::no_such_job(id))?;
        if job.status.is_final() || job.status == JobStatus::Reverting {
            return Err(SqlError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("job {id} cannot be canceled: it is {}", job.status.name()),
            ));
        }
        if !job.kind.revertible() {
            return Err(SqlError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("job {id} cannot be canceled: its change cannot be undone"),
            ));
        }
        job.cancel_requested = true;
        put_job(&txn, &job)?;
        match txn.commit().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = SqlError::from(e);
                if e.code != sqlstate::SERIALIZATION_FAILURE || attempt >= 50 {
                    return Err(e);
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Adopts the jobs whose coordinator stopped renewing their heartbeat and
/// runs them here, forever (until the catalog is dropped).
pub fn spawn_adopter(catalog: &Arc<Catalog>) {
    let weak = Arc::downgrade(catalog);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let Some(catalog) = weak.upgrade() else {
                return;
            };
            if let Err(e) = adopt_orphans(&catalog).await {
                tracing::debug!(error = %e, "job adoption failed");
            }
        }
    });
}

async fn adopt_orphans(catalog: &Arc<Catalog>) -> SqlResult<()> {
    let txn = catalog.begin().await?;
    let stale = now_ms().saturating_sub(ADOPT_AFTER.as_millis() as u64);
    let orphans: Vec<u64> = list_jobs(&txn)
        .await?
        .into_iter()
        .filter(|j| !j.status.is_final() && j.heartbeat_ms < stale)
        .map(|j| j.id)
        .collect();
    drop(txn);
    for id in orphans {
        let txn = catalog.begin().await?;
        let Some(mut job) = load_job(&txn, id).await? else {
            continue;
        };
        if job.status.is_final() || job.heartbeat_ms >= stale {
            continue;
        }
        let claim: u64 = rand::random();
        job.claim = claim;
        job.coordinator = catalog.node_id();
        job.heartbeat_ms = now_ms();
        put_job(&txn, &job)?;
        if txn.commit().await.is_err() {
            // Another node adopted it first, or its coordinator woke up.
            continue;
        }
        tracing::info!(
            job = id,
            "adopted a schema-change job whose coordinator stopped"
        );
        let catalog = catalog.clone();
        tokio::spawn(async move {
            match super::runner::run(catalog, id, claim, Interrupt::none()).await {
                Ok(()) => tracing::info!(job = id, "adopted job finished"),
                Err(e) => tracing::info!(job = id, error = %e, "adopted job ended"),
            }
        });
    }
    Ok(())
}
