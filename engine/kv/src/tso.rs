//! [`TimestampOracle`]: strictly increasing transaction timestamps (the
//! cluster's oracle at the meta range's leader implements it).

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use holo_txn_types::Timestamp;

use crate::Result;

/// Hands out unique, strictly increasing timestamps.
#[async_trait]
pub trait TimestampOracle: Send + Sync + 'static {
    /// A timestamp greater than every one handed out before.
    async fn get_ts(&self) -> Result<Timestamp>;
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
