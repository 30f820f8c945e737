//! Schema-change jobs: durable records of the online schema changes in
//! flight, which node runs each one, how far it got, and whether it was
//! asked to stop; `SHOW JOBS` and `CANCEL JOB` read and write them.
//!
//! ```text
//! 0x02 "job_id"              -> next job id (u64 BE)
//! 0x02 "job/" <id: u64 BE>   -> job record (JSON)
//! ```
//!
//! A job's coordinator renews the record's heartbeat while it works; a job
//! whose heartbeat is older than [`ADOPT_AFTER`] is adopted by another node
//! (its coordinator died), which goes on from the durable step: the
//! descriptor's index state and the record's backfill position.

mod alter;
mod backfill;
mod claim;
pub mod runner;
pub mod statements;
mod validate;

use std::time::Duration;

use holo_kv::Transaction;
use serde::{Deserialize, Serialize};

use crate::catalog::keys::SYSTEM_PREFIX;
use crate::error::{SqlError, SqlResult, sqlstate};

/// A job whose heartbeat is older than this is adopted by another node.
pub const ADOPT_AFTER: Duration = Duration::from_secs(15);

/// What a job changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// Builds index `index_id` of table `table_id`.
    CreateIndex {
        /// The table.
        table_id: u32,
        /// The index being built.
        index_id: u16,
    },
    /// Removes index `index_id` of table `table_id`.
    DropIndex {
        /// The table.
        table_id: u32,
        /// The index being removed.
        index_id: u16,
    },
    /// Changes table `table_id` by an ALTER TABLE.
    AlterTable {
        /// The table.
        table_id: u32,
        /// The change.
        change: TableChange,
    },
}

/// The change of an ALTER TABLE job; the step it is at is read off the
/// stored descriptor (see `docs/schema-changes.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum TableChange {
    /// Made whole by the statement's own transaction (renames, defaults,
    /// DROP NOT NULL, DROP CONSTRAINT ... CHECK): the job waits until every
    /// node uses it.
    Metadata,
    /// ADD COLUMN: write-only, then visible.
    AddColumn {
        /// The new column.
        column_id: u32,
    },
    /// DROP COLUMN: write-only, then gone.
    DropColumn {
        /// The column.
        column_id: u32,
    },
    /// SET NOT NULL: enforced by writers, rows checked, then declared.
    SetNotNull {
        /// The column.
        column_id: u32,
    },
    /// ADD CONSTRAINT ... CHECK or FOREIGN KEY: enforced by writers, rows
    /// checked, then validated (reverting removes it).
    AddConstraint {
        /// The constraint.
        name: String,
    },
    /// VALIDATE CONSTRAINT of a CHECK or FOREIGN KEY added `NOT VALID`
    /// (reverting leaves it not valid).
    ValidateConstraint {
        /// The constraint.
        name: String,
    },
}

impl JobKind {
    /// The `job_type` column of `SHOW JOBS`.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::CreateIndex { .. } => "CREATE INDEX",
            JobKind::DropIndex { .. } => "DROP INDEX",
            JobKind::AlterTable { .. } => "ALTER TABLE",
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Moving forward.
    Running,
    /// Undoing what it did, after a failure or a cancel.
    Reverting,
    /// Done.
    Succeeded,
    /// Undone after an error.
    Failed,
    /// Undone after a cancel.
    Canceled,
}

impl JobStatus {
    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled
        )
    }

    /// The `status` column of `SHOW JOBS`.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Reverting => "reverting",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
        }
    }
}

/// The error that ended a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// SQLSTATE.
    pub code: String,
    /// Message.
    pub message: String,
    /// Detail line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<&SqlError> for JobError {
    fn from(e: &SqlError) -> Self {
        JobError {
            code: e.code.to_string(),
            message: e.message.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job id.
    pub id: u64,
    /// What it changes.
    pub kind: JobKind,
    /// The statement that started it.
    pub description: String,
    /// Where it stands.
    pub status: JobStatus,
    /// The step it is at, for `SHOW JOBS`.
    #[serde(default)]
    pub step: String,
    /// Set by `CANCEL JOB`; the coordinator reverts at its next step.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Backfill or validation: the next primary key to read (absent before
    /// the pass starts and after it ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_key: Option<Vec<u8>>,
    /// Backfill: whether every row has its entry; validation: whether every
    /// row was checked.
    #[serde(default)]
    pub backfilled: bool,
    /// Rows backfilled or checked so far.
    #[serde(default)]
    pub rows_done: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// The node running it.
    pub coordinator: u64,
    /// The coordinator's claim (a fresh random number per adoption): a
    /// runner whose claim is gone stops.
    pub claim: u64,
    /// Last sign of life of the coordinator (ms since epoch).
    pub heartbeat_ms: u64,
    /// When it was created (ms since epoch).
    pub created_ms: u64,
    /// When it ended (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
}

impl JobRecord {
    /// Marks the job as done.
    pub(crate) fn succeed(&mut self) {
        self.status = JobStatus::Succeeded;
        self.step = "done".into();
        self.finished_ms = Some(crate::catalog::lease::now_ms());
    }

    /// Marks the job, reverted, as canceled or failed.
    pub(crate) fn reverted(&mut self) {
        let canceled = self.cancel_requested
            || self
                .error
                .as_ref()
                .is_some_and(|e| e.code == sqlstate::QUERY_CANCELED);
        self.status = if canceled {
            JobStatus::Canceled
        } else {
            JobStatus::Failed
        };
        self.step = "reverted".into();
        self.finished_ms = Some(crate::catalog::lease::now_ms());
    }
}

fn job_id_seq_key() -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"job_id");
    k
}

fn job_prefix() -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"job/");
    k
}

/// Key of job `id`.
pub fn job_key(id: u64) -> Vec<u8> {
    let mut k = job_prefix();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn encode(job: &JobRecord) -> SqlResult<Vec<u8>> {
    serde_json::to_vec(job).map_err(|e| SqlError::internal(format!("encode job: {e}")))
}

fn decode(bytes: &[u8]) -> SqlResult<JobRecord> {
    serde_json::from_slice(bytes).map_err(|e| SqlError::internal(format!("corrupt job: {e}")))
}

/// Allocates a job id in `txn`.
pub async fn next_job_id(txn: &Transaction) -> SqlResult<u64> {
    let id = match txn.get(&job_id_seq_key()).await? {
        None => 1,
        Some(b) => b
            .as_slice()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| SqlError::internal("corrupt job id sequence"))?,
    };
    txn.put(job_id_seq_key(), (id + 1).to_be_bytes().to_vec())?;
    Ok(id)
}

/// Writes `job` in `txn`.
pub fn put_job(txn: &Transaction, job: &JobRecord) -> SqlResult<()> {
    txn.put(job_key(job.id), encode(job)?)?;
    Ok(())
}

/// Job `id` as `txn` sees it.
pub async fn load_job(txn: &Transaction, id: u64) -> SqlResult<Option<JobRecord>> {
    txn.get(&job_key(id)).await?.map(|b| decode(&b)).transpose()
}

/// Every job, by id.
pub async fn list_jobs(txn: &Transaction) -> SqlResult<Vec<JobRecord>> {
    crate::catalog::scan_prefix(txn, job_prefix())
        .await?
        .iter()
        .map(|(_, v)| decode(v))
        .collect()
}

/// 42704 for a job id that does not exist.
pub fn no_such_job(id: u64) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("job {id} does not exist"),
    )
}
