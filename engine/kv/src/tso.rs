//! [`TimestampOracle`]: strictly increasing transaction timestamps.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use holo_storage::Engine;
use holo_txn_types::Timestamp;
use holo_txn_types::timestamp::LOGICAL_BITS;
use parking_lot::Mutex;

use crate::{KvError, Result};

/// Hands out unique, strictly increasing timestamps.
#[async_trait]
pub trait TimestampOracle: Send + Sync + 'static {
    /// A timestamp greater than every one handed out before.
    async fn get_ts(&self) -> Result<Timestamp>;
}

const META_TSO_HWM: &[u8] = b"tso_high_water_ms";
/// How far ahead of the clock the persisted high-water mark is pushed.
pub const HWM_WINDOW_MS: u64 = 3_000;
const MAX_LOGICAL: u64 = (1 << LOGICAL_BITS) - 1;

#[derive(Debug)]
struct TsoState {
    last: Timestamp,
    high_water_ms: u64,
}

/// A timestamp oracle local to one node: physical milliseconds from the
/// system clock plus a logical counter. A high-water mark a few seconds ahead
/// of the clock is persisted before any timestamp beyond it is issued, so a
/// restarted oracle starts above everything it issued before, even when the
/// clock went backwards.
#[derive(Debug)]
pub struct LocalTso {
    engine: Arc<Engine>,
    state: Mutex<TsoState>,
}

/// The timestamp after `last` at wall-clock time `now` (milliseconds):
/// `now` with logical 0 when the clock moved past `last`, else `last` plus
/// one logical tick (rolling into the next millisecond when full).
pub fn next_timestamp(last: Timestamp, now: u64) -> Timestamp {
    let (mut physical, mut logical) = if now > last.physical_ms() {
        (now, 0)
    } else {
        (last.physical_ms(), last.logical() + 1)
    };
    if logical > MAX_LOGICAL {
        physical += 1;
        logical = 0;
    }
    Timestamp::compose(physical, logical)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LocalTso {
    /// Opens the oracle, resuming above the persisted high-water mark.
    pub fn open(engine: Arc<Engine>) -> Result<LocalTso> {
        let hwm = match engine.get_meta(META_TSO_HWM).map_err(KvError::from)? {
            Some(bytes) => {
                let arr: [u8; 8] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KvError::Storage("corrupt TSO high-water mark".into()))?;
                u64::from_be_bytes(arr)
            }
            None => 0,
        };
        Ok(LocalTso {
            engine,
            state: Mutex::new(TsoState {
                last: Timestamp::compose(hwm, 0),
                high_water_ms: hwm,
            }),
        })
    }

    /// Issues the next timestamp (synchronously).
    pub fn next_ts(&self) -> Result<Timestamp> {
        let mut st = self.state.lock();
        let ts = next_timestamp(st.last, now_ms());
        let physical = ts.physical_ms();
        if physical >= st.high_water_ms {
            let hwm = physical + HWM_WINDOW_MS;
            self.engine
                .put_meta(META_TSO_HWM, &hwm.to_be_bytes())
                .map_err(KvError::from)?;
            st.high_water_ms = hwm;
        }
        st.last = ts;
        Ok(ts)
    }
}

#[async_trait]
impl TimestampOracle for LocalTso {
    async fn get_ts(&self) -> Result<Timestamp> {
        self.next_ts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holo_storage::EngineOptions;

    #[test]
    fn strictly_increasing_across_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = Timestamp::ZERO;
        for _ in 0..2 {
            let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
            let tso = LocalTso::open(engine).unwrap();
            for _ in 0..10_000 {
                let ts = tso.next_ts().unwrap();
                assert!(ts > last);
                last = ts;
            }
        }
    }
}
