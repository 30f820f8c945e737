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
use holo_kv::tso::{HWM_WINDOW_MS, next_timestamp, now_ms};
use holo_raft::{RaftCommand, RaftResponse};
use holo_txn_types::Timestamp;

use crate::replica::RangeReplica;

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
        if ts.physical_ms() >= st.high_water_ms {
            let mark = ts.physical_ms() + HWM_WINDOW_MS;
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
        st.last = ts;
        Ok(ts)
    }
}
