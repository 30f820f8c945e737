//! [`TxnMetrics`]: transaction counters and the commit latency of one node,
//! shared by all its sessions and kept for the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use holo_kv::{CommitInfo, KvError};
use holo_txn_types::KeyError;
use parking_lot::Mutex;
use serde::Serialize;

use crate::error::{SqlError, sqlstate};

/// Largest commit latency the histogram tells apart, in microseconds (ten
/// minutes); longer commits are recorded as this.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Transaction counters of a node. Counting is a relaxed atomic add; the
/// latency histogram takes a short lock once per commit that wrote.
#[derive(Debug)]
pub struct TxnMetrics {
    begins: AtomicU64,
    commits: AtomicU64,
    commits_one_pc: AtomicU64,
    commits_two_pc: AtomicU64,
    rollbacks: AtomicU64,
    conflicts: AtomicU64,
    ambiguous_commits: AtomicU64,
    serialization_failures: AtomicU64,
    commit_latency_us: Mutex<Histogram<u64>>,
}

/// Latency summary of the commits that wrote, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Commits recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// A copy of [`TxnMetrics`] at one moment, for the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TxnMetricsSnapshot {
    /// Transaction blocks opened by `BEGIN` / `START TRANSACTION`.
    pub begins: u64,
    /// Successful commits: `COMMIT` of a block (also a read-only one) and
    /// autocommit INSERT/UPDATE/DELETE.
    pub commits: u64,
    /// Successful commits with writes that took the one-phase path.
    pub commits_one_pc: u64,
    /// Successful commits with writes that took the two-phase path.
    pub commits_two_pc: u64,
    /// Blocks ended by `ROLLBACK`, or by `COMMIT` of a failed block.
    pub rollbacks: u64,
    /// Commits that failed on a write-write conflict, a lock that did not go
    /// away, or a rollback by another transaction (40001).
    pub conflicts: u64,
    /// Commits whose outcome is unknown (40003).
    pub ambiguous_commits: u64,
    /// Statements answered with 40001 for any reason (conflicts at commit,
    /// lock waits during reads, unavailable ranges).
    pub serialization_failures: u64,
    /// Latency of successful commits that wrote.
    pub commit_latency: LatencySummary,
}

impl Default for TxnMetrics {
    fn default() -> Self {
        TxnMetrics::new()
    }
}

impl TxnMetrics {
    /// All counters at zero.
    pub fn new() -> TxnMetrics {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid");
        TxnMetrics {
            begins: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commits_one_pc: AtomicU64::new(0),
            commits_two_pc: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            ambiguous_commits: AtomicU64::new(0),
            serialization_failures: AtomicU64::new(0),
            commit_latency_us: Mutex::new(histogram),
        }
    }

    /// A block was opened.
    pub fn begin(&self) {
        self.begins.fetch_add(1, Ordering::Relaxed);
    }

    /// A commit succeeded after `elapsed`.
    pub fn committed(&self, info: &CommitInfo, elapsed: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        if info.commit_ts.is_none() {
            return;
        }
        let path = if info.one_pc {
            &self.commits_one_pc
        } else {
            &self.commits_two_pc
        };
        path.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.commit_latency_us.lock().saturating_record(us.max(1));
    }

    /// A commit failed with `e`.
    pub fn commit_failed(&self, e: &KvError) {
        match e {
            KvError::Key(
                KeyError::Conflict(_)
                | KeyError::Locked(_)
                | KeyError::RolledBack { .. }
                | KeyError::CommitTsExpired { .. }
                | KeyError::TxnNotFound { .. },
            )
            | KvError::LockWaitTimeout { .. } => {
                self.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            KvError::AmbiguousCommit(_) => {
                self.ambiguous_commits.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// A block ended without committing.
    pub fn rolled_back(&self) {
        self.rollbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// A statement failed with `e` (counts 40001).
    pub fn statement_failed(&self, e: &SqlError) {
        if e.code == sqlstate::SERIALIZATION_FAILURE {
            self.serialization_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters and the latency summary now.
    pub fn snapshot(&self) -> TxnMetricsSnapshot {
        let commit_latency = {
            let h = self.commit_latency_us.lock();
            if h.is_empty() {
                LatencySummary::default()
            } else {
                LatencySummary {
                    count: h.len(),
                    mean_us: h.mean(),
                    p50_us: h.value_at_quantile(0.5),
                    p90_us: h.value_at_quantile(0.9),
                    p99_us: h.value_at_quantile(0.99),
                    p999_us: h.value_at_quantile(0.999),
                    max_us: h.max(),
                }
            }
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TxnMetricsSnapshot {
            begins: get(&self.begins),
            commits: get(&self.commits),
            commits_one_pc: get(&self.commits_one_pc),
            commits_two_pc: get(&self.commits_two_pc),
            rollbacks: get(&self.rollbacks),
            conflicts: get(&self.conflicts),
            ambiguous_commits: get(&self.ambiguous_commits),
            serialization_failures: get(&self.serialization_failures),
            commit_latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use holo_txn_types::Timestamp;

    use super::*;

    #[test]
    fn counts_and_summarizes() {
        let m = TxnMetrics::new();
        m.begin();
        let wrote = |one_pc| CommitInfo {
            commit_ts: Some(Timestamp::new(9)),
            keys: 2,
            one_pc,
        };
        m.committed(&wrote(true), Duration::from_millis(2));
        m.committed(&wrote(false), Duration::from_millis(20));
        let read_only = CommitInfo {
            commit_ts: None,
            keys: 0,
            one_pc: false,
        };
        m.committed(&read_only, Duration::from_micros(3));
        m.commit_failed(&KvError::LockWaitTimeout {
            start_ts: Timestamp::new(1),
            key: b"k".to_vec(),
        });
        m.commit_failed(&KvError::AmbiguousCommit("timeout".into()));
        m.commit_failed(&KvError::TxnTooLarge("big".into()));
        m.rolled_back();
        m.statement_failed(&SqlError::new(sqlstate::SERIALIZATION_FAILURE, "c"));
        m.statement_failed(&SqlError::new(sqlstate::UNIQUE_VIOLATION, "d"));
        let s = m.snapshot();
        assert_eq!(
            (s.begins, s.commits, s.commits_one_pc, s.commits_two_pc),
            (1, 3, 1, 1)
        );
        assert_eq!(
            (
                s.rollbacks,
                s.conflicts,
                s.ambiguous_commits,
                s.serialization_failures
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(s.commit_latency.count, 2);
        assert!(
            (19_000..=21_000).contains(&s.commit_latency.max_us),
            "{s:?}"
        );
        assert!((1_900..=2_100).contains(&s.commit_latency.p50_us), "{s:?}");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"commits\":3"), "{json}");
        assert_eq!(TxnMetrics::new().snapshot(), TxnMetricsSnapshot::default());
    }
}
