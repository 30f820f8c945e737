//! Schema leases: which catalog versions this node's statements and
//! transactions still use, published in the store so that a schema change
//! can wait until no node uses a version older than the one it needs.
//!
//! Every statement and transaction block holds a [`SchemaPin`] on the
//! catalog version the node had loaded when it started; descriptors it
//! reads are never older than that. A node's lease record says "nothing
//! here uses a version below V", valid for [`LEASE_TTL`] after it was
//! written. A schema change that moved the catalog to version V waits
//! until every live record says at least V, so at most two adjacent
//! versions of a descriptor are ever in use (the F1 invariant). A node
//! that could not renew its record in time refuses to commit writes
//! ([`SchemaLeases::check_fresh`]): others may already have stopped
//! waiting for it.
//!
//! ```text
//! 0x02 "schema_lease/" <instance: u64 BE>
//!     -> node id u64 BE | version u64 BE | written (ms since epoch) u64 BE
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holo_kv::Transaction;
use parking_lot::Mutex;

use super::keys::SYSTEM_PREFIX;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::Interrupt;

/// How long a lease record stays valid after it was written.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a record is renewed even when nothing changed.
pub const LEASE_RENEW: Duration = Duration::from_secs(2);
/// A node stops committing writes when its record is older than this.
const COMMIT_MARGIN: Duration = Duration::from_secs(7);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lease_prefix() -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(b"schema_lease/");
    k
}

fn lease_key(instance: u64) -> Vec<u8> {
    let mut k = lease_prefix();
    k.extend_from_slice(&instance.to_be_bytes());
    k
}

/// One node's published lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The node's id.
    pub node_id: u64,
    /// The oldest catalog version in use there.
    pub version: u64,
    /// When it was written (ms since epoch).
    pub written_ms: u64,
}

impl LeaseRecord {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&self.node_id.to_be_bytes());
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.written_ms.to_be_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<LeaseRecord> {
        let word = |i: usize| {
            v.get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        (v.len() == 24).then_some(())?;
        Some(LeaseRecord {
            node_id: word(0)?,
            version: word(1)?,
            written_ms: word(2)?,
        })
    }

    fn live(&self, now: u64) -> bool {
        now.saturating_sub(self.written_ms) < LEASE_TTL.as_millis() as u64
    }
}

/// This node's pins and lease publication.
#[derive(Debug)]
pub struct SchemaLeases {
    node_id: u64,
    instance: u64,
    pins: Mutex<BTreeMap<u64, usize>>,
    /// What the last written record said, and when it was written.
    published_version: AtomicU64,
    published_ms: AtomicU64,
}

/// A statement's or transaction's hold on a catalog version.
#[derive(Debug)]
pub struct SchemaPin {
    leases: Arc<SchemaLeases>,
    version: u64,
}

impl Drop for SchemaPin {
    fn drop(&mut self) {
        let mut pins = self.leases.pins.lock();
        if let Some(n) = pins.get_mut(&self.version) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.version);
            }
        }
    }
}

impl SchemaLeases {
    /// The leases of node `node_id` (a fresh instance per process).
    pub fn new(node_id: u64) -> Arc<SchemaLeases> {
        Arc::new(SchemaLeases {
            node_id,
            instance: rand::random(),
            pins: Mutex::new(BTreeMap::new()),
            published_version: AtomicU64::new(0),
            published_ms: AtomicU64::new(0),
        })
    }

    /// The node id the leases publish under.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Pins `version` (the catalog version loaded now).
    pub fn pin(self: &Arc<Self>, version: u64) -> SchemaPin {
        *self.pins.lock().entry(version).or_insert(0) += 1;
        SchemaPin {
            leases: self.clone(),
            version,
        }
    }

    /// The oldest version in use: the oldest pin, or `loaded` when nothing
    /// is pinned.
    fn oldest_in_use(&self, loaded: u64) -> u64 {
        self.pins
            .lock()
            .keys()
            .next()
            .map_or(loaded, |&v| v.min(loaded))
    }

    /// Writes this node's record when what it says changed or it is due
    /// for renewal. `loaded` is the catalog version the cache holds.
    pub async fn publish(&self, txn: Transaction, loaded: u64) -> SqlResult<()> {
        let version = self.oldest_in_use(loaded);
        let now = now_ms();
        let due = now.saturating_sub(self.published_ms.load(Ordering::Acquire))
            >= LEASE_RENEW.as_millis() as u64;
        if !due && version == self.published_version.load(Ordering::Acquire) {
            return Ok(());
        }
        let record = LeaseRecord {
            node_id: self.node_id,
            version,
            written_ms: now,
        };
        txn.put(lease_key(self.instance), record.encode())?;
        txn.commit().await?;
        self.published_version.store(version, Ordering::Release);
        self.published_ms.store(now, Ordering::Release);
        Ok(())
    }

    /// 40001 when this node's record is too old for its writes to be safe
    /// against a schema change that stopped waiting for it.
    pub fn check_fresh(&self) -> SqlResult<()> {
        let age = now_ms().saturating_sub(self.published_ms.load(Ordering::Acquire));
        if age < COMMIT_MARGIN.as_millis() as u64 {
            return Ok(());
        }
        Err(SqlError::new(
            sqlstate::SERIALIZATION_FAILURE,
            "could not commit: this node's schema lease has expired",
        )
        .with_hint(
            "the node could not reach the catalog for several seconds; retry the transaction",
        ))
    }
}

/// Every lease record in the store.
pub async fn lease_records(txn: &Transaction) -> SqlResult<Vec<(Vec<u8>, LeaseRecord)>> {
    Ok(super::scan_prefix(txn, lease_prefix())
        .await?
        .into_iter()
        .filter_map(|(k, v)| LeaseRecord::decode(&v).map(|r| (k, r)))
        .collect())
}

/// Waits until every live lease is at `version` or newer. `begin` opens a
/// fresh transaction per look; `interrupt` cancels the wait (57014).
/// Records dead for a minute are removed on the way.
pub async fn wait_for_version<F, Fut>(
    begin: F,
    version: u64,
    interrupt: &Interrupt,
) -> SqlResult<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SqlResult<Transaction>>,
{
    loop {
        interrupt.check()?;
        let txn = begin().await?;
        let now = now_ms();
        let records = lease_records(&txn).await?;
        let behind = records
            .iter()
            .any(|(_, r)| r.live(now) && r.version < version);
        let long_dead: Vec<Vec<u8>> = records
            .into_iter()
            .filter(|(_, r)| now.saturating_sub(r.written_ms) > 60_000)
            .map(|(k, _)| k)
            .collect();
        if !long_dead.is_empty() {
            for k in long_dead {
                txn.delete(k)?;
            }
            // A lost race with a renewal is harmless: the record lives on.
            if let Err(e) = txn.commit().await {
                tracing::debug!(error = %e, "removing dead schema leases failed");
            }
        }
        if !behind {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_expire() {
        let r = LeaseRecord {
            node_id: 3,
            version: 42,
            written_ms: 1_000,
        };
        assert_eq!(LeaseRecord::decode(&r.encode()), Some(r));
        assert_eq!(LeaseRecord::decode(&[0; 23]), None);
        assert!(r.live(1_000 + 9_999));
        assert!(!r.live(1_000 + 10_000));
    }

    #[test]
    fn the_oldest_pin_is_in_use_until_dropped() {
        let leases = SchemaLeases::new(1);
        assert_eq!(leases.oldest_in_use(7), 7);
        let old = leases.pin(5);
        let newer = leases.pin(6);
        let again = leases.pin(5);
        assert_eq!(leases.oldest_in_use(7), 5);
        drop(old);
        assert_eq!(leases.oldest_in_use(7), 5);
        drop(again);
        assert_eq!(leases.oldest_in_use(7), 6);
        drop(newer);
        assert_eq!(leases.oldest_in_use(7), 7);
    }
}
