//! [`GcWorker`]: garbage collection of old MVCC versions.
//!
//! Every round picks a safe point: `ttl` behind the oracle's clock, but never
//! above the oldest open transaction of this node. Locks below it are
//! resolved first (a secondary whose primary record was collected could not
//! be decided any more), then the safe point is persisted (reads below it
//! now fail with "snapshot too old"), then every range is swept and the
//! versions nobody can read are removed with `Gc` commands.

use std::sync::Arc;
use std::time::Duration;

use holo_storage::WriteCommand;
use holo_txn_types::Timestamp;

use crate::Result;
use crate::client::KvClient;
use crate::lock_resolver::{Resolution, resolve_lock};
use crate::node::LocalNode;
use crate::service::KvWrite;

/// GC knobs.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// How long old versions stay readable.
    pub ttl: Duration,
    /// Keys per `Gc` command.
    pub batch: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval: Duration::from_secs(600),
            ttl: Duration::from_secs(600),
            batch: 1024,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcRound {
    /// The safe point after the round.
    pub safe_point: Timestamp,
    /// Locks resolved below the safe point.
    pub locks_resolved: usize,
    /// Versions removed.
    pub versions_removed: usize,
}

/// Collects garbage on one node's ranges.
pub struct GcWorker {
    node: Arc<LocalNode>,
    client: Arc<KvClient>,
    config: GcConfig,
}

impl GcWorker {
    /// A worker for `node`, sending commands through `client`.
    pub fn new(node: Arc<LocalNode>, client: Arc<KvClient>, config: GcConfig) -> GcWorker {
        GcWorker {
            node,
            client,
            config,
        }
    }

    /// Runs rounds forever, every `interval`.
    pub async fn run(self) {
        loop {
            tokio::time::sleep(self.config.interval).await;
            match self.round().await {
                Ok(r) => {
                    tracing::info!(safe_point = %r.safe_point, locks = r.locks_resolved, removed = r.versions_removed, "gc round")
                }
                Err(e) => tracing::warn!(error = %e, "gc round failed"),
            }
        }
    }

    /// One round.
    pub async fn round(&self) -> Result<GcRound> {
        let store = self.node.store();
        let now = self.client.now().await?;
        let ttl_ms = self.config.ttl.as_millis() as u64;
        let mut bound = Timestamp::compose(now.physical_ms().saturating_sub(ttl_ms), 0);
        match self.client.active().oldest() {
            Err(()) => {
                return Ok(GcRound {
                    safe_point: store.gc_safe_point(),
                    ..GcRound::default()
                });
            }
            Ok(Some(oldest)) => bound = bound.min(oldest),
            Ok(None) => {}
        }
        let mut round = GcRound {
            safe_point: store.gc_safe_point(),
            ..GcRound::default()
        };
        if bound <= round.safe_point {
            return Ok(round);
        }
        let ranges = self.node.range_descriptors();
        for range in &ranges {
            let locks =
                store
                    .reader()
                    .scan_locks(&range.start_key, &range.end_key, bound, usize::MAX)?;
            for (key, lock) in locks {
                match resolve_lock(self.client.as_ref(), &lock.info(&key), Timestamp::ZERO).await? {
                    Resolution::Resolved => round.locks_resolved += 1,
                    // A live transaction older than the bound: stop below it.
                    Resolution::Alive | Resolution::Pushed(_) => bound = bound.min(lock.start_ts),
                }
            }
        }
        if bound <= round.safe_point {
            return Ok(round);
        }
        round.safe_point = store.advance_gc_safe_point(bound)?;
        for range in &ranges {
            let mut from = range.start_key.clone();
            loop {
                let (keys, next) = store.reader().gc_candidates(
                    &from,
                    &range.end_key,
                    round.safe_point,
                    self.config.batch,
                )?;
                if let Some(first) = keys.first().cloned() {
                    let cmd = WriteCommand::Gc {
                        keys,
                        safe_point: round.safe_point,
                    };
                    if let holo_storage::WriteResult::GcRemoved(n) = self
                        .client
                        .write_key(&first, KvWrite::Command(cmd))
                        .await?
                        .result
                    {
                        round.versions_removed += n;
                    }
                }
                match next {
                    Some(n) => from = n,
                    None => break,
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(round)
    }
}
