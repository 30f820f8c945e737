//! The cluster's timestamp oracle, served by the meta range's leader.
//!
//! Timestamps are physical milliseconds plus a logical counter. Before any
//! timestamp at or past the persisted high-water mark is issued, the leader
//! replicates a new mark a few seconds ahead through the meta range
//! ([`RaftCommand::TsoHighWater`]). A new leader starts above the mark its
//! predecessor persisted, so timestamps increase strictly across leader
//! changes; a leader only issues while its lease is valid, so a deposed
//! leader stops before a successor starts.

use holo_kv::KvError;
use holo_kv::tso::now_ms;
use holo_raft::{RaftCommand, RaftResponse};
use holo_txn_types::Timestamp;
use holo_txn_types::timestamp::LOGICAL_BITS;

use crate::replica::RangeReplica;

/// How far ahead of the clock the replicated high-water mark is pushed.
pub const HWM_WINDOW_MS: u64 = 3_000;
const MAX_LOGICAL: u64 = (1 << LOGICAL_BITS) - 1;

/// The oracle timestamp after `last` at wall-clock time `now`
/// (milliseconds): `now` with logical 0 when the clock moved past `last`,
/// else the next even logical tick after `last` (rolling into the next
/// millisecond when full). Oracle timestamps are even: odd ones are left to
/// leaseholders' one-phase commits ([`Timestamp::local_commit_above`]).
pub(crate) fn next_timestamp(last: Timestamp, now: u64) -> Timestamp {
    let (mut physical, mut logical) = if now > last.physical_ms() {
        (now, 0)
    } else {
        (last.physical_ms(), (last.logical() | 1) + 1)
    };
    if logical > MAX_LOGICAL {
        physical += 1;
        logical = 0;
    }
    Timestamp::compose(physical, logical)
}

#[derive(Debug, Default)]
struct State {
    term: u64,
    last: Timestamp,
    high_water_ms: u64,
}

/// The oracle's state on the node leading the meta range.
#[derive(Debug, Default)]
pub struct TsoState {
    state: tokio::sync::Mutex<State>,
}

impl TsoState {
    /// The next timestamp; `meta` must be this node's meta replica and lead.
    pub async fn next(&self, meta: &RangeReplica) -> Result<Timestamp, KvError> {
        self.next_batch(meta, 1).await
    }

    /// The first of `count` consecutive oracle timestamps
    /// ([`Timestamp::oracle_nth`]), all greater than any issued before.
    pub async fn next_batch(&self, meta: &RangeReplica, count: u32) -> Result<Timestamp, KvError> {
        let count = u64::from(count.max(1));
        meta.ensure_readable().await?;
        let term = meta.term();
        let mut st = self.state.lock().await;
        if st.term != term {
            // New leadership: everything the old leader persisted is applied
            // (ensure_readable waited for this term's first entry).
            let hwm = meta.tso_high_water_ms();
            *st = State {
                term,
                last: Timestamp::compose(hwm, 0),
                high_water_ms: hwm,
            };
        }
        let ts = next_timestamp(st.last, now_ms());
        let last = ts.oracle_nth(count - 1);
        if last.physical_ms() >= st.high_water_ms {
            let mark = last.physical_ms() + HWM_WINDOW_MS;
            match meta
                .propose(RaftCommand::TsoHighWater { physical_ms: mark })
                .await?
            {
                RaftResponse::TsoHighWater(persisted) => st.high_water_ms = persisted,
                other => {
                    return Err(KvError::Storage(format!(
                        "unexpected oracle apply result {other:?}"
                    )));
                }
            }
            if meta.term() != term {
                return Err(KvError::NotLeader {
                    range_id: meta.id(),
                    leader: meta.leader(),
                });
            }
        }
        st.last = last;
        Ok(ts)
    }
}

type Waiter = tokio::sync::oneshot::Sender<Result<Timestamp, KvError>>;

/// Coalesces a node's concurrent timestamp requests into one call to the
/// oracle: every request waiting when a call is sent gets one timestamp of
/// the batch the call returns (issued after each of them started waiting,
/// so the order of timestamps still follows real time).
#[derive(Default)]
pub struct TsoBatcher {
    queue: parking_lot::Mutex<Vec<Waiter>>,
    running: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for TsoBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsoBatcher").finish()
    }
}

impl TsoBatcher {
    /// Queues a request; `fetch(n)` returns the first of `n` timestamps.
    pub async fn get<F, Fut>(self: &std::sync::Arc<Self>, fetch: F) -> Result<Timestamp, KvError>
    where
        F: Fn(u32) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Timestamp, KvError>> + Send,
    {
        use std::sync::atomic::Ordering;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.lock().push(tx);
        if !self.running.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                loop {
                    let batch = std::mem::take(&mut *this.queue.lock());
                    if batch.is_empty() {
                        this.running.store(false, Ordering::Release);
                        // A request queued after the take but before the
                        // flag dropped would wait forever: pick it up.
                        if this.queue.lock().is_empty() || this.running.swap(true, Ordering::AcqRel)
                        {
                            return;
                        }
                        continue;
                    }
                    match fetch(batch.len() as u32).await {
                        Ok(first) => {
                            for (i, w) in batch.into_iter().enumerate() {
                                let _ = w.send(Ok(first.oracle_nth(i as u64)));
                            }
                        }
                        Err(e) => {
                            for w in batch {
                                let _ = w.send(Err(e.clone()));
                            }
                        }
                    }
                }
            });
        }
        rx.await
            .map_err(|_| KvError::Unavailable("timestamp request dropped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_timestamps_are_even_and_increase() {
        let mut last = Timestamp::compose(1000, 0);
        for now in [999, 1000, 1000, 1001, 1001] {
            let next = next_timestamp(last, now);
            assert!(next > last && next.is_oracle(), "{last:?} -> {next:?}");
            last = next;
        }
        // From an odd (older) timestamp too, and across a full millisecond.
        let odd = Timestamp::compose(5, 7);
        assert_eq!(next_timestamp(odd, 5), Timestamp::compose(5, 8));
        let full = Timestamp::compose(5, MAX_LOGICAL);
        assert_eq!(next_timestamp(full, 5), Timestamp::compose(6, 0));
    }
}
