//! Resolving a lock met by a reader or writer through its primary key.

use holo_storage::{WriteCommand, WriteResult};
use holo_txn_types::{KeyError, LockInfo, LockType, Timestamp, TxnStatus};

use crate::service::{KvWrite, WriteResponse};
use crate::{KvError, Result};

/// What resolving a lock needs of a client: the time, and writes routed
/// to the range holding a key. (The KV client is one.)
#[async_trait::async_trait]
pub trait LockRouter: Send + Sync {
    /// A timestamp from the oracle.
    async fn timestamp(&self) -> Result<Timestamp>;
    /// Sends `write` to the range holding `key`.
    async fn route_write(&self, key: &[u8], write: KvWrite) -> Result<WriteResponse>;
}

/// What happened to a lock after an attempt to resolve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The lock is gone (committed or rolled back): retry the request.
    Resolved,
    /// The lock's transaction was pushed past the reader: the reader may
    /// bypass locks of this start timestamp.
    Pushed(Timestamp),
    /// The transaction is alive and could not be pushed: back off and retry.
    Alive,
}

/// Resolves `lock` for a caller reading at `caller_ts` (`Timestamp::ZERO` for
/// writers, which never push). Checks the transaction's primary, rolls back
/// an expired transaction, then commits or rolls back the lock itself.
pub async fn resolve_lock(
    client: &(impl LockRouter + ?Sized),
    lock: &LockInfo,
    caller_ts: Timestamp,
) -> Result<Resolution> {
    let current_ts = client.timestamp().await?;
    let expired = lock.start_ts.expired_at(lock.ttl_ms, current_ts);
    let check = WriteCommand::CheckTxnStatus {
        primary: lock.primary.clone(),
        lock_ts: lock.start_ts,
        caller_start_ts: if lock.lock_type == LockType::Lock {
            Timestamp::ZERO
        } else {
            caller_ts
        },
        current_ts,
        rollback_if_not_exist: expired,
    };
    let status = match client
        .route_write(&lock.primary, KvWrite::Command(check))
        .await
    {
        Ok(resp) => match resp.result {
            WriteResult::TxnStatus(st) => st,
            other => {
                return Err(KvError::Storage(format!(
                    "unexpected status answer {other:?}"
                )));
            }
        },
        // The primary's prewrite may still be on its way.
        Err(KvError::Key(KeyError::TxnNotFound { .. })) => return Ok(Resolution::Alive),
        Err(e) => return Err(e),
    };
    let commit_ts = match status {
        TxnStatus::Locked { min_commit_ts, .. } => {
            return Ok(
                if caller_ts > Timestamp::ZERO && min_commit_ts > caller_ts {
                    Resolution::Pushed(lock.start_ts)
                } else {
                    Resolution::Alive
                },
            );
        }
        TxnStatus::Committed { commit_ts } => Some(commit_ts),
        TxnStatus::RolledBack => None,
    };
    let resolve = |keys: Vec<Vec<u8>>| {
        KvWrite::Command(WriteCommand::ResolveLocks {
            keys,
            start_ts: lock.start_ts,
            commit_ts,
        })
    };
    if !lock.more_keys.is_empty() {
        let keys = std::iter::once(&lock.key)
            .chain(&lock.more_keys)
            .cloned()
            .collect();
        // The keys were in one range when the scan met them; if that
        // changed meanwhile, the lock met is resolved alone.
        match client.route_write(&lock.key, resolve(keys)).await {
            Ok(_) => return Ok(Resolution::Resolved),
            Err(e) => {
                tracing::debug!(error = %e, "batched lock resolution failed; resolving one key")
            }
        }
    }
    client
        .route_write(&lock.key, resolve(vec![lock.key.clone()]))
        .await?;
    Ok(Resolution::Resolved)
}
