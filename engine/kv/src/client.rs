//! [`KvClient`]: routes reads and writes to the leaseholders of their ranges,
//! retrying stale routes and resolving locks met on the way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holo_storage::{ReadOptions, ScanResult};
use holo_txn_types::{KeyError, Timestamp};
use parking_lot::RwLock;
use rand::Rng;

use crate::lock_resolver::{LockRouter, Resolution, resolve_lock};
use crate::router::RangeCache;
use crate::service::{
    KvWrite, RangeDirectory, RangeHeader, RangeLocation, RangeService, WriteResponse,
};
use crate::tso::TimestampOracle;
use crate::{KvError, Result};

/// Retry limits of the client.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts for one request whose route keeps turning out stale.
    pub max_route_attempts: usize,
    /// First backoff; doubled per attempt up to `max_backoff`, with jitter.
    pub base_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// How long a request waits for a live transaction's lock.
    pub lock_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_route_attempts: 12,
            base_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(200),
            lock_wait: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The jittered backoff before attempt `attempt` (0-based).
    pub fn backoff(&self, attempt: usize) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let jitter = rand::rng().random_range(0.5..1.0);
        exp.mul_f64(jitter)
    }
}

/// The KV client of one node.
pub struct KvClient {
    active: Arc<crate::active::ActiveTxns>,
    cache: RangeCache,
    nodes: RwLock<HashMap<u64, Arc<dyn RangeService>>>,
    tso: Arc<dyn TimestampOracle>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for KvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvClient")
            .field("cache", &self.cache)
            .finish()
    }
}

impl KvClient {
    /// A client resolving ranges through `directory`, reaching nodes through
    /// `nodes`, and taking timestamps from `tso`.
    pub fn new(
        directory: Arc<dyn RangeDirectory>,
        nodes: Vec<Arc<dyn RangeService>>,
        tso: Arc<dyn TimestampOracle>,
        retry: RetryPolicy,
    ) -> KvClient {
        KvClient {
            active: crate::active::ActiveTxns::new(),
            cache: RangeCache::new(directory),
            nodes: RwLock::new(nodes.into_iter().map(|n| (n.node_id(), n)).collect()),
            tso,
            retry,
        }
    }

    /// Open transactions of this client (they bound garbage collection).
    pub fn active(&self) -> &Arc<crate::active::ActiveTxns> {
        &self.active
    }

    /// The timestamp oracle.
    pub fn tso(&self) -> &Arc<dyn TimestampOracle> {
        &self.tso
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The range cache.
    pub fn cache(&self) -> &RangeCache {
        &self.cache
    }

    fn node(&self, node_id: u64) -> Result<Arc<dyn RangeService>> {
        self.nodes
            .read()
            .get(&node_id)
            .cloned()
            .ok_or_else(|| KvError::NodeUnreachable {
                node_id,
                reason: "no connection to the node".into(),
            })
    }

    /// Adds (or replaces) the connection to a node.
    pub fn add_node(&self, node: Arc<dyn RangeService>) {
        self.nodes.write().insert(node.node_id(), node);
    }

    /// Runs `op` against the range holding `key`, refreshing the route and
    /// retrying with backoff while the answer says the route is stale.
    async fn routed<T, F, Fut>(&self, key: &[u8], mut op: F) -> Result<T>
    where
        F: FnMut(Arc<dyn RangeService>, RangeLocation) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut last = None;
        for attempt in 0..self.retry.max_route_attempts {
            let loc = self.cache.locate(key).await?;
            let range_id = loc.desc.id;
            let result = match self.node(loc.leaseholder) {
                Ok(node) => op(node, loc).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_stale_route() => {
                    tracing::debug!(%range_id, error = %e, attempt, "stale route, refreshing");
                    self.cache.on_stale(range_id, &e);
                    last = Some(e);
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                other => return other,
            }
        }
        Err(KvError::RoutingExhausted {
            attempts: self.retry.max_route_attempts,
            last: last.map(|e| e.to_string()).unwrap_or_default(),
        })
    }

    /// Handles a lock met by a read: resolves it, or records a push in
    /// `read.bypass_locks`, or backs off while the transaction lives.
    async fn handle_read_lock(
        &self,
        lock: &holo_txn_types::LockInfo,
        read: &mut ReadOptions,
        deadline: Instant,
        attempt: usize,
    ) -> Result<()> {
        match resolve_lock(self, lock, read.read_ts).await? {
            Resolution::Resolved => Ok(()),
            Resolution::Pushed(ts) => {
                read.bypass_locks.push(ts);
                Ok(())
            }
            Resolution::Alive => {
                if Instant::now() >= deadline {
                    return Err(KvError::LockWaitTimeout {
                        start_ts: lock.start_ts,
                        key: lock.key.clone(),
                    });
                }
                tokio::time::sleep(self.retry.backoff(attempt)).await;
                Ok(())
            }
        }
    }

    /// Reads `key` at `read.read_ts`. Locks met are resolved; pushes are
    /// recorded in `read` so later reads of the transaction bypass them.
    pub async fn get(&self, key: &[u8], read: &mut ReadOptions) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + self.retry.lock_wait;
        let mut attempt = 0;
        loop {
            let opts = read.clone();
            let res = self
                .routed(key, |node, loc| {
                    let opts = opts.clone();
                    async move {
                        node.get(RangeHeader::for_range(&loc.desc), key.to_vec(), opts)
                            .await
                    }
                })
                .await;
            match res {
                Err(KvError::Key(KeyError::Locked(lock))) => {
                    self.handle_read_lock(&lock, read, deadline, attempt)
                        .await?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Scans from `start` towards `end` (empty = unbounded) inside the range
    /// holding `start`, at most `limit` pairs. Returns the pairs and the key
    /// to continue from, or `None` when `[start, end)` is exhausted.
    pub async fn scan_chunk(
        &self,
        start: &[u8],
        end: &[u8],
        read: &mut ReadOptions,
        limit: usize,
    ) -> Result<(ScanResult, Option<Vec<u8>>)> {
        let deadline = Instant::now() + self.retry.lock_wait;
        let mut attempt = 0;
        loop {
            let opts = read.clone();
            let res = self
                .routed(start, |node, loc| {
                    let opts = opts.clone();
                    async move {
                        let header = RangeHeader::for_range(&loc.desc);
                        let result = node
                            .scan(header, start.to_vec(), end.to_vec(), opts, limit)
                            .await?;
                        Ok((result, loc))
                    }
                })
                .await;
            match res {
                Ok((result, loc)) => {
                    let next = match &result.resume_key {
                        Some(k) => Some(k.clone()),
                        None => {
                            let range_end = &loc.desc.end_key;
                            let more = !range_end.is_empty()
                                && (end.is_empty() || range_end.as_slice() < end);
                            more.then(|| range_end.clone())
                        }
                    };
                    return Ok((result, next));
                }
                Err(KvError::Key(KeyError::Locked(lock))) => {
                    self.handle_read_lock(&lock, read, deadline, attempt)
                        .await?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a write whose keys all live in the range holding `key`.
    pub async fn write_key(&self, key: &[u8], write: KvWrite) -> Result<WriteResponse> {
        self.routed(key, |node, loc| {
            let write = write.clone();
            async move { node.write(RangeHeader::for_range(&loc.desc), write).await }
        })
        .await
    }

    /// Splits `items` by the range holding `key_of(item)`, preserving order
    /// inside each group.
    pub async fn group_by_range<T>(
        &self,
        items: Vec<T>,
        key_of: impl Fn(&T) -> &[u8],
    ) -> Result<Vec<(RangeLocation, Vec<T>)>> {
        let mut groups: Vec<(RangeLocation, Vec<T>)> = Vec::new();
        let mut last: Option<usize> = None;
        for item in items {
            // Items usually come in key order: try the previous group first.
            if let Some(i) = last
                && groups[i].0.desc.contains(key_of(&item))
            {
                groups[i].1.push(item);
                continue;
            }
            let loc = self.cache.locate(key_of(&item)).await?;
            match groups.iter().position(|(l, _)| l.desc.id == loc.desc.id) {
                Some(i) => {
                    groups[i].1.push(item);
                    last = Some(i);
                }
                None => {
                    groups.push((loc, vec![item]));
                    last = Some(groups.len() - 1);
                }
            }
        }
        Ok(groups)
    }

    /// Sends `write` to the range at `loc` without routing retries; a
    /// stale-route error is returned to the caller, which regroups.
    pub async fn write_at(&self, loc: &RangeLocation, write: KvWrite) -> Result<WriteResponse> {
        let res = match self.node(loc.leaseholder) {
            Ok(node) => node.write(RangeHeader::for_range(&loc.desc), write).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &res
            && e.is_stale_route()
        {
            self.cache.on_stale(loc.desc.id, e);
        }
        res
    }

    /// Physically removes every version in `[start, end)` (non-empty `end`)
    /// on every range it overlaps. Only for data nobody reads again.
    pub async fn clear_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        let mut from = start.to_vec();
        for attempt in 0..self.retry.max_route_attempts {
            let mut stale = false;
            for loc in self.cache.ranges(&from, end).await? {
                let Some((s, e)) = loc.desc.clamp(&from, end) else {
                    continue;
                };
                let cmd = holo_storage::WriteCommand::ClearRange {
                    start: s,
                    end: e.clone(),
                };
                match self.write_at(&loc, KvWrite::Command(cmd)).await {
                    Ok(_) => from = e,
                    Err(err) if err.is_stale_route() => {
                        stale = true;
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
            if !stale {
                return Ok(());
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        }
        Err(KvError::RoutingExhausted {
            attempts: self.retry.max_route_attempts,
            last: "clear range kept meeting stale routes".into(),
        })
    }

    /// A fresh timestamp from the oracle.
    pub async fn now(&self) -> Result<Timestamp> {
        self.tso.get_ts().await
    }
}

#[async_trait::async_trait]
impl LockRouter for KvClient {
    async fn timestamp(&self) -> Result<Timestamp> {
        self.tso.get_ts().await
    }

    async fn route_write(&self, key: &[u8], write: KvWrite) -> Result<WriteResponse> {
        self.write_key(key, write).await
    }
}
