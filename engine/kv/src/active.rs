//! [`ActiveTxns`]: the start timestamps of this node's open transactions,
//! which bound how far garbage collection may go.

use std::collections::BTreeMap;
use std::sync::Arc;

use holo_txn_types::Timestamp;
use parking_lot::Mutex;

#[derive(Debug, Default)]
struct Inner {
    /// start_ts -> number of open transactions with it.
    open: BTreeMap<Timestamp, usize>,
    /// Transactions fetching their start timestamp right now.
    starting: usize,
}

/// Registry of open transactions.
#[derive(Debug, Default)]
pub struct ActiveTxns {
    inner: Mutex<Inner>,
}

/// Keeps a start timestamp registered while alive.
#[derive(Debug)]
pub struct ActiveGuard {
    registry: Arc<ActiveTxns>,
    start_ts: Option<Timestamp>,
}

impl ActiveTxns {
    /// An empty registry.
    pub fn new() -> Arc<ActiveTxns> {
        Arc::new(ActiveTxns::default())
    }

    /// Announces a transaction about to fetch its start timestamp. Until
    /// [`ActiveGuard::started`] the registry reports no safe bound.
    pub fn starting(self: &Arc<Self>) -> ActiveGuard {
        self.inner.lock().starting += 1;
        ActiveGuard {
            registry: self.clone(),
            start_ts: None,
        }
    }

    /// Registers an already known start timestamp.
    pub fn register(self: &Arc<Self>, start_ts: Timestamp) -> ActiveGuard {
        *self.inner.lock().open.entry(start_ts).or_default() += 1;
        ActiveGuard {
            registry: self.clone(),
            start_ts: Some(start_ts),
        }
    }

    /// The bound for garbage collection: `Ok(None)` when no transaction is
    /// open, `Ok(Some(ts))` the oldest open start timestamp, `Err(())` while
    /// a transaction is between announcing itself and learning its timestamp.
    #[allow(clippy::result_unit_err)]
    pub fn oldest(&self) -> Result<Option<Timestamp>, ()> {
        let inner = self.inner.lock();
        if inner.starting > 0 {
            return Err(());
        }
        Ok(inner.open.keys().next().copied())
    }
}

impl ActiveGuard {
    /// Records the start timestamp the transaction obtained.
    pub fn started(&mut self, start_ts: Timestamp) {
        let mut inner = self.registry.inner.lock();
        if self.start_ts.is_none() {
            inner.starting = inner.starting.saturating_sub(1);
        }
        *inner.open.entry(start_ts).or_default() += 1;
        self.start_ts = Some(start_ts);
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut inner = self.registry.inner.lock();
        match self.start_ts {
            None => inner.starting = inner.starting.saturating_sub(1),
            Some(ts) => {
                if let Some(n) = inner.open.get_mut(&ts) {
                    *n -= 1;
                    if *n == 0 {
                        inner.open.remove(&ts);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_tracks_open_transactions() {
        let reg = ActiveTxns::new();
        assert_eq!(reg.oldest(), Ok(None));
        let mut a = reg.starting();
        assert_eq!(reg.oldest(), Err(()));
        a.started(Timestamp::new(10));
        let b = reg.register(Timestamp::new(5));
        assert_eq!(reg.oldest(), Ok(Some(Timestamp::new(5))));
        drop(b);
        assert_eq!(reg.oldest(), Ok(Some(Timestamp::new(10))));
        drop(a);
        assert_eq!(reg.oldest(), Ok(None));
    }
}
