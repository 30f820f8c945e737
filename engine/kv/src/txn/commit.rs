//! Committing a transaction's buffered writes: one-phase when they lie in
//! one range, otherwise Percolator two-phase commit in bounded batches
//! (prewrite the primary's batch, the others a few at a time, commit the
//! primary, then the secondaries), with lock waits, retries and the test
//! pauses used by the crash tests.

use std::time::{Duration, Instant};

use futures::StreamExt;
use holo_storage::WriteCommand;
use holo_txn_types::{KeyError, Mutation, Timestamp};

use super::{LARGE_PASS, Transaction};
use crate::lock_resolver::{Resolution, resolve_lock};
use crate::service::{KvWrite, RangeLocation};
use crate::{KvError, Result};

/// Cuts `items` (already in one range) into batches of at most `max_keys`
/// items and `max_bytes` bytes (an item larger than `max_bytes` goes alone).
fn cut<T>(
    items: Vec<T>,
    max_keys: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        if !batch.is_empty() && (batch.len() >= max_keys || bytes + n > max_bytes) {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += n;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// Failpoint: a two-phase commit pauses after its prewrites, before the
/// primary commit (`return(MILLISECONDS)`; crash tests kill the node then).
pub const AFTER_PREWRITE: &str = "txn::after_prewrite";
/// Failpoint: a two-phase commit pauses after the primary commit, before
/// the secondaries are committed.
pub const AFTER_PRIMARY_COMMIT: &str = "txn::after_primary_commit";

/// How long a prewrite waits for a range that has no quorum (from the
/// first refusal) before the transaction fails.
const PREWRITE_UNAVAILABLE_WAIT: Duration = Duration::from_secs(60);

/// How many times readers may push a commit's timestamp before it gives
/// up (and rolls back).
const MAX_COMMIT_PUSHES: usize = 64;

impl Transaction {
    /// A writer met `lock`: resolve it if its transaction is over, otherwise
    /// back off; give up with `LockWaitTimeout` at `deadline`.
    pub(super) async fn wait_for_lock(
        &self,
        lock: &holo_txn_types::LockInfo,
        deadline: Instant,
        attempt: usize,
    ) -> Result<()> {
        match resolve_lock(self.client.as_ref(), lock, Timestamp::ZERO).await? {
            Resolution::Resolved => Ok(()),
            Resolution::Pushed(_) | Resolution::Alive => {
                if Instant::now() >= deadline {
                    return Err(KvError::LockWaitTimeout {
                        start_ts: lock.start_ts,
                        key: lock.key.clone(),
                    });
                }
                tokio::time::sleep(self.client.retry_policy().backoff(attempt)).await;
                Ok(())
            }
        }
    }

    /// The TTL of the locks a commit writes now. A lock expires TTL after
    /// its transaction's start, so the time the transaction has been open
    /// counts in; large transactions take longer to commit: one extra
    /// second per MiB.
    fn lock_ttl(&self, bytes: usize) -> u64 {
        let open_ms = crate::tso::now_ms().saturating_sub(self.start_ts.physical_ms());
        let commit_ms = (self.options.lock_ttl_ms + (bytes as u64 >> 20) * 1_000).min(120_000);
        open_ms + commit_ms
    }

    /// Splits mutations into per-range batches within the command limits.
    async fn batches(
        &self,
        mutations: Vec<Mutation>,
    ) -> Result<Vec<(RangeLocation, Vec<Mutation>)>> {
        let groups = self
            .client
            .group_by_range(mutations, |m| m.key.as_slice())
            .await?;
        let mut out = Vec::new();
        for (loc, muts) in groups {
            for batch in cut(
                muts,
                self.options.max_batch_keys,
                self.options.max_batch_bytes,
                Mutation::size,
            ) {
                out.push((loc.clone(), batch));
            }
        }
        Ok(out)
    }

    /// Prewrites one batch, regrouping on stale routes and resolving locks.
    async fn prewrite_batch(
        &self,
        mutations: Vec<Mutation>,
        primary: &[u8],
        ttl: u64,
        txn_size: u64,
    ) -> Result<()> {
        let deadline = Instant::now() + self.client.retry_policy().lock_wait;
        let mut unavailable_since: Option<Instant> = None;
        let mut pending = vec![mutations];
        let mut attempt = 0;
        while let Some(muts) = pending.pop() {
            if attempt > self.client.retry_policy().max_route_attempts * 8 {
                return Err(KvError::RoutingExhausted {
                    attempts: attempt,
                    last: "prewrite kept meeting stale routes or locks".into(),
                });
            }
            let groups = self
                .client
                .group_by_range(muts, |m| m.key.as_slice())
                .await?;
            for (loc, group) in groups {
                let cmd = WriteCommand::Prewrite {
                    mutations: group.clone(),
                    primary: primary.to_vec(),
                    start_ts: self.start_ts,
                    lock_ttl_ms: ttl,
                    txn_size,
                };
                match self.client.write_at(&loc, KvWrite::Command(cmd)).await {
                    Ok(_) => {}
                    Err(e) if e.is_stale_route() => {
                        tokio::time::sleep(self.client.retry_policy().backoff(attempt)).await;
                        pending.push(group);
                    }
                    Err(KvError::Key(KeyError::Locked(lock))) => {
                        self.wait_for_lock(&lock, deadline, attempt).await?;
                        pending.push(group);
                    }
                    // A prewrite is idempotent: a range briefly without a
                    // quorum (a range just split off whose followers have
                    // not applied the split yet, an election) is waited for.
                    Err(KvError::Unavailable(m) | KvError::AmbiguousCommit(m))
                        if unavailable_since.get_or_insert_with(Instant::now).elapsed()
                            < PREWRITE_UNAVAILABLE_WAIT =>
                    {
                        tracing::debug!(start_ts = %self.start_ts, reason = %m, "prewrite retried");
                        tokio::time::sleep(self.client.retry_policy().backoff(attempt)).await;
                        pending.push(group);
                    }
                    Err(e) => return Err(e),
                }
                attempt += 1;
            }
        }
        Ok(())
    }

    /// Commits `keys` at `commit_ts`, regrouping on stale routes.
    async fn commit_keys(&self, keys: Vec<Vec<u8>>, commit_ts: Timestamp) -> Result<()> {
        self.keys_command(keys, |keys| WriteCommand::Commit {
            keys,
            start_ts: self.start_ts,
            commit_ts,
        })
        .await
    }

    /// Sends `make(keys)` for every batch of `keys` (cut per range and to
    /// the command limits, a bounded number in flight), regrouping and
    /// resending after stale routes.
    async fn keys_command(
        &self,
        keys: Vec<Vec<u8>>,
        make: impl Fn(Vec<Vec<u8>>) -> WriteCommand,
    ) -> Result<()> {
        let batches = if keys.len() > LARGE_PASS {
            holo_storage::blocking_future(self.key_batches(keys)).await?
        } else {
            self.key_batches(keys).await?
        };
        let make = &make;
        let mut sends = futures::stream::iter(
            batches
                .into_iter()
                .map(|keys| self.keys_batch_command(keys, make)),
        )
        .buffer_unordered(self.options.max_inflight_batches.max(1));
        while let Some(result) = sends.next().await {
            result?;
        }
        Ok(())
    }

    /// `keys` grouped by range and cut to the command limits.
    async fn key_batches(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Vec<Vec<u8>>>> {
        let mut out = Vec::new();
        for (_, group) in self.client.group_by_range(keys, |k| k.as_slice()).await? {
            out.extend(cut(
                group,
                self.options.max_batch_keys,
                self.options.max_batch_bytes,
                Vec::len,
            ));
        }
        Ok(out)
    }

    /// Sends `make(keys)` for one batch, regrouping after stale routes.
    async fn keys_batch_command(
        &self,
        keys: Vec<Vec<u8>>,
        make: &impl Fn(Vec<Vec<u8>>) -> WriteCommand,
    ) -> Result<()> {
        let mut pending = vec![keys];
        let mut attempt = 0;
        while let Some(keys) = pending.pop() {
            if attempt > self.client.retry_policy().max_route_attempts * 8 {
                return Err(KvError::RoutingExhausted {
                    attempts: attempt,
                    last: "kept meeting stale routes".into(),
                });
            }
            for (loc, group) in self.client.group_by_range(keys, |k| k.as_slice()).await? {
                match self
                    .client
                    .write_at(&loc, KvWrite::Command(make(group.clone())))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_stale_route() => {
                        tokio::time::sleep(self.client.retry_policy().backoff(attempt)).await;
                        pending.push(group);
                    }
                    Err(e) => return Err(e),
                }
                attempt += 1;
            }
        }
        Ok(())
    }

    /// Rolls back `keys` (best effort: a key left locked is resolved by the
    /// next reader through the primary once its TTL ran out).
    async fn rollback_keys(&self, keys: Vec<Vec<u8>>) {
        let result = self
            .keys_command(keys, |keys| WriteCommand::Rollback {
                keys,
                start_ts: self.start_ts,
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, start_ts = %self.start_ts, "rollback of prewritten keys failed");
        }
    }

    pub(super) async fn two_pc(&self, mutations: Vec<Mutation>, bytes: usize) -> Result<Timestamp> {
        let primary = mutations[0].key.clone();
        let ttl = self.lock_ttl(bytes);
        let txn_size = mutations.len() as u64;
        let cut = async {
            let all_keys: Vec<Vec<u8>> = mutations.iter().map(|m| m.key.clone()).collect();
            self.batches(mutations).await.map(|b| (all_keys, b))
        };
        // Walking a large write set takes a while: off the async workers.
        let (all_keys, mut batches) = if txn_size as usize > LARGE_PASS {
            holo_storage::blocking_future(cut).await?
        } else {
            cut.await?
        };
        // The batch holding the primary goes first: once a secondary lock
        // exists, its primary lock exists too.
        let first = batches.remove(0);
        let prewrite = async {
            self.prewrite_batch(first.1, &primary, ttl, txn_size)
                .await?;
            let mut rest = futures::stream::iter(
                batches
                    .into_iter()
                    .map(|(_, muts)| self.prewrite_batch(muts, &primary, ttl, txn_size)),
            )
            .buffer_unordered(self.options.max_inflight_batches.max(1));
            while let Some(res) = rest.next().await {
                res?;
            }
            Ok::<(), KvError>(())
        };
        if let Err(e) = prewrite.await {
            self.rollback_keys(all_keys).await;
            // The primary was never committed, and only this coordinator
            // commits it: the transaction did not happen, whatever the
            // prewrite's answer was.
            return Err(match e {
                KvError::AmbiguousCommit(m) => KvError::Unavailable(format!(
                    "prewrite did not complete ({m}); the transaction was rolled back"
                )),
                e => e,
            });
        }
        crate::failpoint::pause(AFTER_PREWRITE).await;
        // Commit the primary: its record is the commit point.
        let mut commit_ts = self.client.now().await?;
        let mut pushed = 0;
        loop {
            match self.commit_keys(vec![primary.clone()], commit_ts).await {
                Ok(()) => break,
                // Readers pushed the commit timestamp: take a newer one
                // (boundedly: a stream of readers must not hold us forever).
                Err(KvError::Key(KeyError::CommitTsExpired { min_commit_ts, .. }))
                    if pushed < MAX_COMMIT_PUSHES =>
                {
                    pushed += 1;
                    commit_ts = self.client.now().await?.max(min_commit_ts);
                }
                Err(e @ KvError::Key(_)) => {
                    // Refused for good (rolled back by a reader after the
                    // TTL, or pushed too often): nothing committed.
                    self.rollback_keys(all_keys).await;
                    return Err(e);
                }
                // The primary's commit may or may not have applied.
                Err(e @ KvError::AmbiguousCommit(_)) => return Err(e),
                Err(e) => {
                    return Err(KvError::AmbiguousCommit(format!(
                        "committing the primary key did not complete: {e}"
                    )));
                }
            }
        }
        crate::failpoint::pause(AFTER_PRIMARY_COMMIT).await;
        let secondaries: Vec<Vec<u8>> = all_keys.into_iter().filter(|k| *k != primary).collect();
        if !secondaries.is_empty()
            && let Err(e) = self.commit_keys(secondaries, commit_ts).await
        {
            // The transaction is committed; readers resolve what is left.
            tracing::warn!(error = %e, start_ts = %self.start_ts, "committing secondaries failed");
        }
        Ok(commit_ts)
    }
}
