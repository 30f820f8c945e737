//! [`Timestamp`]: a hybrid physical/logical 64-bit timestamp.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Number of low bits holding the logical counter.
pub const LOGICAL_BITS: u32 = 18;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// A transaction timestamp: milliseconds since the Unix epoch in the high 46
/// bits and a logical counter in the low 18 bits, as handed out by the
/// timestamp oracle. Timestamps are totally ordered and unique per oracle.
///
/// The oracle hands out even timestamps only ([`Timestamp::ORACLE_STEP`]);
/// odd ones are the commit timestamps leaseholders give one-phase commits
/// ([`Timestamp::local_commit_above`]). So a local commit timestamp is
/// never also some transaction's start timestamp, and a commit record never
/// shares its key and timestamp with another transaction's rollback record.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The zero timestamp: before every transaction.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest timestamp: reads at it see every committed version.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// Distance between consecutive oracle timestamps.
    pub const ORACLE_STEP: u64 = 2;

    /// Whether the oracle could have issued this timestamp (it is even).
    pub const fn is_oracle(self) -> bool {
        self.0.is_multiple_of(Self::ORACLE_STEP)
    }

    /// The `i`-th oracle timestamp of a batch starting at this one.
    pub const fn oracle_nth(self, i: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(i.saturating_mul(Self::ORACLE_STEP)))
    }

    /// The smallest local commit timestamp (odd) above this one: one above
    /// an oracle timestamp, so at or below the oracle's next one.
    pub const fn local_commit_above(self) -> Timestamp {
        Timestamp(if self.is_oracle() {
            self.0.saturating_add(1)
        } else {
            self.0.saturating_add(2)
        })
    }

    /// Wraps a raw 64-bit timestamp.
    pub const fn new(raw: u64) -> Timestamp {
        Timestamp(raw)
    }

    /// Builds a timestamp from physical milliseconds and a logical counter.
    pub const fn compose(physical_ms: u64, logical: u64) -> Timestamp {
        Timestamp((physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK))
    }

    /// The raw 64-bit value.
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub const fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter.
    pub const fn logical(self) -> u64 {
        self.0 & LOGICAL_MASK
    }

    /// The next timestamp (saturating at [`Timestamp::MAX`]).
    pub const fn next(self) -> Timestamp {
        Timestamp(self.0.saturating_add(1))
    }

    /// The previous timestamp (saturating at [`Timestamp::ZERO`]).
    pub const fn prev(self) -> Timestamp {
        Timestamp(self.0.saturating_sub(1))
    }

    /// Whether `ttl_ms` milliseconds starting at this timestamp's physical
    /// time have passed at `now`.
    pub fn expired_at(self, ttl_ms: u64, now: Timestamp) -> bool {
        self.physical_ms().saturating_add(ttl_ms) < now.physical_ms()
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_split() {
        let ts = Timestamp::compose(1_700_000_000_000, 42);
        assert_eq!(ts.physical_ms(), 1_700_000_000_000);
        assert_eq!(ts.logical(), 42);
        assert!(Timestamp::compose(1, 0) > Timestamp::compose(0, LOGICAL_MASK));
    }

    #[test]
    fn oracle_and_local_commit_timestamps_never_meet() {
        let t = Timestamp::compose(1000, 4);
        assert!(t.is_oracle());
        assert_eq!(t.oracle_nth(3), Timestamp::compose(1000, 10));
        let c = t.local_commit_above();
        assert!(c > t && !c.is_oracle() && c < t.oracle_nth(1));
        let c2 = c.local_commit_above();
        assert!(c2 > c && !c2.is_oracle());
    }

    #[test]
    fn expiry_uses_physical_time() {
        let start = Timestamp::compose(1000, 5);
        assert!(!start.expired_at(100, Timestamp::compose(1100, 0)));
        assert!(start.expired_at(100, Timestamp::compose(1101, 0)));
    }
}
