//! [`CommitClock`]: the leaseholder-local source of one-phase commit
//! timestamps, so an autocommit write asks the timestamp oracle once (for
//! its start timestamp) and never while it holds latches.
//!
//! A one-phase commit at this replica must commit above every read the
//! range has served: a reader at `t` that found nothing must still find
//! nothing when it reads again at `t`. The clock keeps the highest read
//! timestamp the replica served (`observe_read`, called before the read
//! takes its latches), and hands out the first odd timestamp above
//! `max(max_read, start_ts)` (the oracle's are even, so the two never
//! coincide: see [`Timestamp::local_commit_above`]).
//!
//! Reads served by an earlier leaseholder, or by the ranges a merge folded
//! in, are unknown here. So before the first one-phase commit of every
//! (Raft term, span version) the clock is raised to a fresh oracle
//! timestamp, which is above every timestamp the oracle had handed out
//! when this lease began, and so above every read served under an earlier
//! lease (the same rule as TiKV's `max_ts` sync on leader change).
//!
//! The commit timestamp never runs ahead of the oracle by more than one:
//! it is one above a timestamp the oracle issued, and the oracle's later
//! timestamps are larger, so a transaction that starts after the commit was
//! acknowledged sees it.

use std::sync::atomic::{AtomicU64, Ordering};

use holo_txn_types::Timestamp;
use parking_lot::Mutex;

/// The (Raft term, span version) a clock was raised for.
pub type LeaseEpoch = (u64, u64);

/// One replica's commit clock.
#[derive(Debug, Default)]
pub struct CommitClock {
    max_read: AtomicU64,
    synced: Mutex<Option<LeaseEpoch>>,
}

impl CommitClock {
    /// A clock that has seen no read and must be raised before use.
    pub fn new() -> CommitClock {
        CommitClock::default()
    }

    /// Records a read at `read_ts` (before it takes its latches).
    pub fn observe_read(&self, read_ts: Timestamp) {
        // A read at MAX (internal "see everything" reads) is not a snapshot
        // anyone can repeat; counting it would push commits to overflow.
        if read_ts < Timestamp::MAX {
            self.max_read
                .fetch_max(read_ts.into_inner(), Ordering::SeqCst);
        }
    }

    /// Whether the clock was raised from the oracle during `epoch`.
    pub fn synced_for(&self, epoch: LeaseEpoch) -> bool {
        *self.synced.lock() == Some(epoch)
    }

    /// Raises the clock to `oracle_ts`, fetched from the oracle after
    /// `epoch` began.
    pub fn raise(&self, oracle_ts: Timestamp, epoch: LeaseEpoch) {
        self.max_read
            .fetch_max(oracle_ts.into_inner(), Ordering::SeqCst);
        *self.synced.lock() = Some(epoch);
    }

    /// The commit timestamp of a one-phase commit that started at
    /// `start_ts` (the caller holds the latches of its keys).
    pub fn commit_ts(&self, start_ts: Timestamp) -> Timestamp {
        let floor = self
            .max_read
            .load(Ordering::SeqCst)
            .max(start_ts.into_inner());
        Timestamp::new(floor).local_commit_above()
    }

    /// The highest read timestamp seen (or raised to).
    pub fn max_read(&self) -> Timestamp {
        Timestamp::new(self.max_read.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_above_reads_and_start() {
        let c = CommitClock::new();
        assert_eq!(c.commit_ts(Timestamp::new(10)), Timestamp::new(11));
        c.observe_read(Timestamp::new(50));
        assert_eq!(c.commit_ts(Timestamp::new(10)), Timestamp::new(51));
        c.observe_read(Timestamp::new(20));
        assert_eq!(c.max_read(), Timestamp::new(50));
        assert_eq!(c.commit_ts(Timestamp::new(80)), Timestamp::new(81));
        // Never an oracle (even) timestamp, even above an odd floor.
        c.observe_read(Timestamp::new(91));
        assert_eq!(c.commit_ts(Timestamp::new(80)), Timestamp::new(93));
    }

    #[test]
    fn ignores_see_everything_reads() {
        let c = CommitClock::new();
        c.observe_read(Timestamp::MAX);
        assert_eq!(c.commit_ts(Timestamp::new(6)), Timestamp::new(7));
    }

    #[test]
    fn raising_is_per_lease_epoch() {
        let c = CommitClock::new();
        assert!(!c.synced_for((1, 1)));
        c.raise(Timestamp::new(100), (1, 1));
        assert!(c.synced_for((1, 1)));
        assert!(!c.synced_for((2, 1)), "a new term needs a new raise");
        assert!(
            !c.synced_for((1, 2)),
            "a new span version needs a new raise"
        );
        assert_eq!(c.commit_ts(Timestamp::new(8)), Timestamp::new(101));
        c.raise(Timestamp::new(40), (2, 1));
        assert_eq!(c.max_read(), Timestamp::new(100), "raising never lowers");
    }
}
