//! [`Claim`]: one coordinator's hold on a job, and the job-record writes
//! it makes (steps, heartbeats) and lease waits it does while it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holo_kv::Transaction;

use super::{JobRecord, load_job, no_such_job, put_job};
use crate::catalog::Catalog;
use crate::catalog::descriptor::TableDescriptor;
use crate::catalog::lease::now_ms;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::Interrupt;

/// How often a coordinator renews its job's heartbeat at least.
const HEARTBEAT: Duration = Duration::from_secs(3);

/// One coordinator's hold on a job.
pub(super) struct Claim {
    pub(super) catalog: Arc<Catalog>,
    pub(super) id: u64,
    pub(super) claim: u64,
    /// When this coordinator last wrote the job record (ms since epoch).
    pub(super) last_beat: AtomicU64,
}

impl Claim {
    /// Table `id`'s stored descriptor, read in a transaction of its own.
    pub(super) async fn stored_table(&self, id: u32) -> SqlResult<Option<TableDescriptor>> {
        let txn = self.catalog.begin().await?;
        self.catalog.stored_table(&txn, id).await
    }

    /// Reads the job in `txn`, checking it is still ours.
    pub(super) async fn job_in(&self, txn: &Transaction) -> SqlResult<JobRecord> {
        let job = load_job(txn, self.id)
            .await?
            .ok_or_else(|| no_such_job(self.id))?;
        if job.claim != self.claim {
            return Err(SqlError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("job {} is run by another node now", self.id),
            ));
        }
        Ok(job)
    }

    /// Writes `job` in `txn` with a fresh heartbeat.
    pub(super) fn put(&self, txn: &Transaction, job: &mut JobRecord) -> SqlResult<()> {
        let now = now_ms();
        job.heartbeat_ms = now;
        put_job(txn, job)?;
        self.last_beat.store(now, Ordering::Release);
        Ok(())
    }

    /// Changes the job and its table's stored descriptor in one
    /// transaction, retried on conflicts; `change` gets the descriptor
    /// (`None` once the table is gone) and returns whether it changed it.
    pub(super) async fn transact<F>(&self, change: F) -> SqlResult<JobRecord>
    where
        F: Fn(&Transaction, Option<&mut TableDescriptor>, &mut JobRecord) -> SqlResult<bool>,
    {
        let mut attempt = 0u32;
        loop {
            let result = async {
                let txn = self.catalog.begin().await?;
                let mut job = self.job_in(&txn).await?;
                let table_id = job.kind.table_id();
                let mut desc = self.catalog.stored_table(&txn, table_id).await?;
                let changed = change(&txn, desc.as_mut(), &mut job)?;
                if changed && let Some(desc) = desc {
                    self.catalog.write_table(&txn, desc).await?;
                }
                self.put(&txn, &mut job)?;
                txn.commit().await?;
                if changed {
                    self.catalog.reload().await?;
                }
                Ok::<JobRecord, SqlError>(job)
            }
            .await;
            match result {
                Err(e) if e.code == sqlstate::SERIALIZATION_FAILURE && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt.min(10))))
                        .await;
                }
                other => return other,
            }
        }
    }

    /// Renews the heartbeat when due (the job record is also written by
    /// every step and backfill batch).
    pub(super) async fn beat_if_due(&self) -> SqlResult<()> {
        let last = self.last_beat.load(Ordering::Acquire);
        if now_ms().saturating_sub(last) < HEARTBEAT.as_millis() as u64 {
            return Ok(());
        }
        self.transact(|_, _, _| Ok(false)).await.map(|_| ())
    }

    /// Waits until every node uses the catalog version now stored (or a
    /// newer one), renewing the heartbeat meanwhile. With `cancellable`, a
    /// `CANCEL JOB` seen at a renewal ends the wait (57014).
    pub(super) async fn wait_for_leases(
        &self,
        interrupt: &Interrupt,
        cancellable: bool,
    ) -> SqlResult<()> {
        self.catalog.refresh_if_stale().await?;
        let version = self.catalog.stored_version();
        let wait = self.catalog.wait_for_version(version, interrupt);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                r = &mut wait => return r,
                _ = tokio::time::sleep(HEARTBEAT) => {
                    let job = self.transact(|_, _, _| Ok(false)).await?;
                    if cancellable && job.cancel_requested {
                        return Err(crate::interrupt::canceled());
                    }
                }
            }
        }
    }
}
