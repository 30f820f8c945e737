//! Transaction control: BEGIN (with its isolation and access modes),
//! COMMIT, ROLLBACK, SET TRANSACTION, and the implicit transaction of a
//! multi-statement query.

use std::sync::Arc;
use std::time::Instant;

use datafusion::sql::sqlparser::ast::{
    TransactionAccessMode, TransactionIsolationLevel, TransactionMode,
};
use holo_kv::{KvError, Transaction};
use holo_txn_types::KeyError;

use crate::catalog::lease::SchemaPin;
use crate::codec::key::table_id_of;
use crate::error::{SqlError, SqlResult};
use crate::session::Session;
use crate::session::output::StatementOutput;

/// Where the session's transaction stands, as reported to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// No transaction block.
    Idle,
    /// Inside a transaction block.
    InBlock,
    /// Inside a failed transaction block (only ROLLBACK is accepted).
    Failed,
}

/// The session's transaction.
pub(crate) enum TxnState {
    Idle,
    Open {
        txn: Arc<Transaction>,
        read_only: bool,
        /// The catalog version the block started at, held until it ends.
        _pin: SchemaPin,
    },
    Aborted,
}

fn check_isolation(modes: &[TransactionMode]) -> SqlResult<Option<bool>> {
    let mut read_only = None;
    for mode in modes {
        match mode {
            TransactionMode::IsolationLevel(level) => match level {
                TransactionIsolationLevel::ReadUncommitted
                | TransactionIsolationLevel::ReadCommitted
                | TransactionIsolationLevel::RepeatableRead
                | TransactionIsolationLevel::Snapshot => {}
                TransactionIsolationLevel::Serializable => {
                    return Err(SqlError::unsupported(
                        "SERIALIZABLE isolation is not supported; HoloFusion runs transactions under \
                         snapshot isolation (REPEATABLE READ), which permits write skew",
                    )
                    .with_hint("use REPEATABLE READ, or guard invariants with explicit writes to shared rows"));
                }
            },
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => read_only = Some(true),
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {
                read_only = Some(false)
            }
        }
    }
    Ok(read_only)
}

impl Session {
    pub(crate) async fn begin(&self, modes: &[TransactionMode]) -> SqlResult<StatementOutput> {
        let read_only = match check_isolation(modes)? {
            Some(ro) => ro,
            None => self.inner.lock().settings.default_read_only(),
        };
        if !matches!(self.inner.lock().txn, TxnState::Idle) {
            tracing::debug!("BEGIN inside a transaction block: ignored, as PostgreSQL does");
            return Ok(StatementOutput::TxnStart("BEGIN".into()));
        }
        let pin = self.engine.catalog().pin();
        let txn =
            Transaction::begin(self.engine.kv().clone(), self.engine.options().txn.clone()).await?;
        {
            let mut inner = self.inner.lock();
            inner.txn = TxnState::Open {
                txn: Arc::new(txn),
                read_only,
                _pin: pin,
            };
            inner.settings.begin_block();
        }
        self.engine.txn_metrics().begin();
        Ok(StatementOutput::TxnStart("BEGIN".into()))
    }

    /// Opens the implicit transaction PostgreSQL wraps around the
    /// statements of one multi-statement simple query.
    pub async fn begin_implicit(&self) -> SqlResult<()> {
        self.begin(&[]).await.map(|_| ())
    }

    /// Ends the implicit transaction: commits it when every statement
    /// succeeded (`ok`), rolls it back otherwise.
    pub async fn end_implicit(&self, ok: bool) -> SqlResult<()> {
        if ok {
            self.commit().await.map(|_| ())
        } else {
            self.rollback();
            Ok(())
        }
    }

    pub(crate) async fn commit(&self) -> SqlResult<StatementOutput> {
        let state = std::mem::replace(&mut self.inner.lock().txn, TxnState::Idle);
        match state {
            TxnState::Idle => Ok(StatementOutput::TxnEnd("COMMIT".into())),
            TxnState::Aborted => {
                self.inner.lock().settings.end_block(false);
                self.engine.txn_metrics().rolled_back();
                Ok(StatementOutput::TxnEnd("ROLLBACK".into()))
            }
            TxnState::Open { txn, .. } => {
                let result = self.commit_txn(&txn).await;
                self.inner.lock().settings.end_block(result.is_ok());
                result.map(|()| StatementOutput::TxnEnd("COMMIT".into()))
            }
        }
    }

    /// Commits `txn`, counting the outcome and timing it in the node's
    /// transaction metrics; a failure is mapped to SQL naming the table.
    pub(crate) async fn commit_txn(&self, txn: &Transaction) -> SqlResult<()> {
        let started = Instant::now();
        let metrics = self.engine.txn_metrics();
        if txn.write_count() > 0
            && let Err(e) = self.engine.catalog().check_lease()
        {
            txn.rollback();
            return Err(e);
        }
        self.committing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let result = txn.commit().await;
        self.committing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        match result {
            Ok(info) => {
                metrics.committed(&info, started.elapsed());
                Ok(())
            }
            Err(e) => {
                metrics.commit_failed(&e);
                Err(self.kv_error(e))
            }
        }
    }

    pub(crate) fn rollback(&self) -> StatementOutput {
        let state = {
            let mut inner = self.inner.lock();
            inner.settings.end_block(false);
            std::mem::replace(&mut inner.txn, TxnState::Idle)
        };
        match state {
            TxnState::Open { txn, .. } => {
                txn.rollback();
                self.engine.txn_metrics().rolled_back();
            }
            TxnState::Aborted => self.engine.txn_metrics().rolled_back(),
            TxnState::Idle => {}
        }
        StatementOutput::TxnEnd("ROLLBACK".into())
    }

    /// SET TRANSACTION / SET SESSION CHARACTERISTICS AS TRANSACTION.
    pub(crate) fn set_transaction(
        &self,
        modes: &[TransactionMode],
        session: bool,
        snapshot: bool,
    ) -> SqlResult<StatementOutput> {
        if snapshot {
            return Err(SqlError::unsupported(
                "SET TRANSACTION SNAPSHOT is not supported",
            ));
        }
        let read_only = check_isolation(modes)?;
        let mut inner = self.inner.lock();
        if let (Some(ro), TxnState::Open { read_only, .. }) = (read_only, &mut inner.txn) {
            *read_only = ro;
        }
        if session && let Some(ro) = read_only {
            inner.settings.set_default_read_only(ro);
        }
        Ok(StatementOutput::done("SET"))
    }

    /// Maps a KV error to SQL, naming the table and key where possible.
    pub fn kv_error(&self, e: KvError) -> SqlError {
        let key = match &e {
            KvError::Key(KeyError::AlreadyExists { key }) => Some(key.clone()),
            KvError::Key(KeyError::Conflict(c)) => Some(c.key.clone()),
            KvError::Key(KeyError::Locked(l)) => Some(l.key.clone()),
            KvError::LockWaitTimeout { key, .. } => Some(key.clone()),
            _ => None,
        };
        let mut err = SqlError::from(e.clone());
        let Some(entry) = key
            .as_deref()
            .and_then(table_id_of)
            .and_then(|id| self.engine.catalog().table_by_id(id))
        else {
            return err;
        };
        let table = &entry.desc.name;
        match &e {
            KvError::Key(KeyError::AlreadyExists { key }) => {
                err = crate::exec::dml::duplicate_key_error(&entry, key);
            }
            _ => {
                err.message = format!(
                    "could not serialize access due to concurrent update of table \"{table}\""
                );
            }
        }
        err
    }
}
