//! [`Transaction`]: snapshot reads with read-your-writes and an atomic commit
//! of buffered writes: one-phase on one range, Percolator two-phase across
//! ranges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use holo_storage::{ReadOptions, WriteCommand};
use holo_txn_types::{KeyError, Mutation, MutationOp, Timestamp};
use parking_lot::Mutex;

use crate::client::KvClient;
use crate::lock_resolver::{Resolution, resolve_lock};
use crate::service::{KvWrite, RangeLocation};
use crate::{KvError, Result};

/// Limits and knobs of a transaction.
#[derive(Debug, Clone)]
pub struct TxnOptions {
    /// Base lock TTL in milliseconds (grows with transaction size).
    pub lock_ttl_ms: u64,
    /// Largest total size of buffered writes, in bytes.
    pub max_txn_bytes: usize,
    /// Largest number of keys in one command (a one-phase commit, or one
    /// prewrite, commit or rollback batch).
    pub max_batch_keys: usize,
    /// Largest payload of one command, in bytes. Every command is one Raft
    /// entry: this keeps entries small enough to replicate within one
    /// heartbeat and to apply in a fraction of a second (the replicas refuse
    /// commands over 4 MiB).
    pub max_batch_bytes: usize,
    /// Most commands of one transaction in flight at once.
    pub max_inflight_batches: usize,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            lock_ttl_ms: 3_000,
            max_txn_bytes: 512 << 20,
            max_batch_keys: 4_096,
            max_batch_bytes: 256 << 10,
            max_inflight_batches: 4,
        }
    }
}

/// Number of items above which an in-memory pass over a transaction's
/// writes runs off the async workers.
pub const LARGE_PASS: usize = 4_096;

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

/// Test hook: milliseconds every two-phase commit of the process sleeps
/// after its prewrites, before the primary commit (crash tests kill the
/// node in that window). Unset in production.
pub const PAUSE_AFTER_PREWRITE_ENV: &str = "HOLO_TEST_PAUSE_AFTER_PREWRITE_MS";
/// Test hook: milliseconds every two-phase commit of the process sleeps
/// after the primary commit, before the secondaries are committed.
pub const PAUSE_AFTER_PRIMARY_COMMIT_ENV: &str = "HOLO_TEST_PAUSE_AFTER_PRIMARY_COMMIT_MS";

/// Pauses of the two-phase commit asked for by the test hooks, read from
/// the environment once per process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitPauses {
    /// Between the last prewrite and the primary commit.
    pub after_prewrite: Option<Duration>,
    /// Between the primary commit and the secondaries' commit.
    pub after_primary_commit: Option<Duration>,
}

impl CommitPauses {
    /// The pauses set in the environment (read on the first call, then
    /// cached). Unset or invalid variables mean no pause.
    pub fn get() -> CommitPauses {
        static PAUSES: std::sync::OnceLock<CommitPauses> = std::sync::OnceLock::new();
        *PAUSES.get_or_init(|| CommitPauses {
            after_prewrite: pause_from_env(PAUSE_AFTER_PREWRITE_ENV),
            after_primary_commit: pause_from_env(PAUSE_AFTER_PRIMARY_COMMIT_ENV),
        })
    }
}

fn pause_from_env(name: &str) -> Option<Duration> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => {
            tracing::warn!(
                name,
                ms,
                "test hook enabled: every two-phase commit coordinated here pauses"
            );
            Some(Duration::from_millis(ms))
        }
        _ => {
            tracing::warn!(name, value = %raw, "ignoring test hook: not a positive number of milliseconds");
            None
        }
    }
}

/// Sleeps `pause` when a test hook asks for it.
async fn test_pause(pause: Option<Duration>, start_ts: Timestamp, point: &'static str) {
    if let Some(pause) = pause {
        tracing::warn!(%start_ts, ?pause, point, "test hook: pausing a two-phase commit");
        tokio::time::sleep(pause).await;
    }
}

/// How long a prewrite waits for a range that has no quorum (from the
/// first refusal) before the transaction fails.
const PREWRITE_UNAVAILABLE_WAIT: Duration = Duration::from_secs(60);

/// How many times readers may push a commit's timestamp before it gives
/// up (and rolls back).
const MAX_COMMIT_PUSHES: usize = 64;

/// What a successful commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit timestamp (`None` for a read-only transaction).
    pub commit_ts: Option<Timestamp>,
    /// Number of keys written.
    pub keys: usize,
    /// Whether the one-phase path was used.
    pub one_pc: bool,
}

#[derive(Debug, Default)]
struct Buffer {
    writes: BTreeMap<Vec<u8>, MutationOp>,
    bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Committing,
    Done,
}

/// A snapshot-isolated transaction. Reads see the snapshot at `start_ts` plus
/// the transaction's own buffered writes; nothing is written to the store
/// before [`Transaction::commit`].
pub struct Transaction {
    /// Registration among the open transactions; released when the
    /// transaction ends.
    active: Mutex<Option<crate::active::ActiveGuard>>,
    client: Arc<KvClient>,
    start_ts: Timestamp,
    options: TxnOptions,
    buffer: Mutex<Buffer>,
    read_opts: Mutex<ReadOptions>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("start_ts", &self.start_ts)
            .field("writes", &self.buffer.lock().writes.len())
            .finish()
    }
}

impl Transaction {
    /// Begins a transaction with a fresh start timestamp.
    pub async fn begin(client: Arc<KvClient>, options: TxnOptions) -> Result<Transaction> {
        let mut guard = client.active().starting();
        let start_ts = client.now().await?;
        guard.started(start_ts);
        Ok(Transaction::with_guard(client, start_ts, options, guard))
    }

    /// A transaction reading at `start_ts`.
    pub fn at(client: Arc<KvClient>, start_ts: Timestamp, options: TxnOptions) -> Transaction {
        let guard = client.active().register(start_ts);
        Transaction::with_guard(client, start_ts, options, guard)
    }

    fn with_guard(
        client: Arc<KvClient>,
        start_ts: Timestamp,
        options: TxnOptions,
        guard: crate::active::ActiveGuard,
    ) -> Transaction {
        Transaction {
            active: Mutex::new(Some(guard)),
            client,
            start_ts,
            options,
            buffer: Mutex::new(Buffer::default()),
            read_opts: Mutex::new(ReadOptions::at(start_ts)),
            state: Mutex::new(State::Active),
        }
    }

    /// The snapshot timestamp.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// Number of buffered writes.
    pub fn write_count(&self) -> usize {
        self.buffer.lock().writes.len()
    }

    fn ensure_active(&self) -> Result<()> {
        if *self.state.lock() != State::Active {
            return Err(KvError::TxnNotActive);
        }
        Ok(())
    }

    /// Reads `key`: the buffered write if any, else the snapshot.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.ensure_active()?;
        if let Some(op) = self.buffer.lock().writes.get(key) {
            match op {
                MutationOp::Put(v) | MutationOp::Insert(v) => return Ok(Some(v.clone())),
                MutationOp::Delete => return Ok(None),
                MutationOp::Lock => {}
            }
        }
        let mut read = self.read_opts.lock().clone();
        let res = self.client.get(key, &mut read).await;
        *self.read_opts.lock() = read;
        res
    }

    /// Scans up to about `limit` live pairs from `start` towards `end` (empty
    /// = unbounded), merged with the buffered writes. Returns the pairs and
    /// where to continue, `None` when done.
    pub async fn scan_chunk(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>)> {
        self.ensure_active()?;
        let mut read = self.read_opts.lock().clone();
        let res = self.client.scan_chunk(start, end, &mut read, limit).await;
        *self.read_opts.lock() = read;
        let (result, next) = res?;
        let chunk_end: &[u8] = next.as_deref().unwrap_or(end);
        let buffer = self.buffer.lock();
        if buffer.writes.is_empty() {
            return Ok((result.pairs, next));
        }
        let overlay: Vec<(&Vec<u8>, &MutationOp)> = buffer
            .writes
            .range(start.to_vec()..)
            .take_while(|(k, _)| chunk_end.is_empty() || k.as_slice() < chunk_end)
            .collect();
        if overlay.is_empty() {
            return Ok((result.pairs, next));
        }
        let mut merged = Vec::with_capacity(result.pairs.len() + overlay.len());
        let mut stored = result.pairs.into_iter().peekable();
        let mut own = overlay.into_iter().peekable();
        loop {
            match (stored.peek(), own.peek()) {
                (None, None) => break,
                (Some(_), None) => merged.extend(stored.by_ref()),
                (Some((sk, _)), Some((ok, _))) if sk < *ok => {
                    if let Some(p) = stored.next() {
                        merged.push(p);
                    }
                }
                (s, Some((ok, op))) => {
                    let same = s.is_some_and(|(sk, _)| sk == *ok);
                    let stored_pair = if same { stored.next() } else { None };
                    match op {
                        MutationOp::Put(v) | MutationOp::Insert(v) => {
                            merged.push(((*ok).clone(), v.clone()))
                        }
                        MutationOp::Delete => {}
                        MutationOp::Lock => merged.extend(stored_pair),
                    }
                    own.next();
                }
            }
        }
        Ok((merged, next))
    }

    fn buffer_op(&self, key: Vec<u8>, op: MutationOp) -> Result<()> {
        self.ensure_active()?;
        let mut buffer = self.buffer.lock();
        let previous = buffer.writes.get(&key).cloned();
        let op = match (previous.as_ref(), op) {
            (Some(MutationOp::Put(_) | MutationOp::Insert(_)), MutationOp::Insert(_)) => {
                return Err(KeyError::AlreadyExists { key }.into());
            }
            // Re-inserting a row deleted earlier in this transaction replaces it.
            (Some(MutationOp::Delete), MutationOp::Insert(v)) => MutationOp::Put(v),
            // Updating a row inserted by this transaction keeps the insert check.
            (Some(MutationOp::Insert(_)), MutationOp::Put(v)) => MutationOp::Insert(v),
            // Deleting a row this transaction inserted leaves nothing to write.
            (Some(MutationOp::Insert(_)), MutationOp::Delete) => {
                if let Some(old) = buffer.writes.remove(&key) {
                    buffer.bytes = buffer.bytes.saturating_sub(key.len() + op_len(&old));
                }
                return Ok(());
            }
            (Some(MutationOp::Put(_) | MutationOp::Delete), MutationOp::Lock) => return Ok(()),
            (_, op) => op,
        };
        let added = key.len() + op_len(&op);
        let removed = previous.map_or(0, |old| key.len() + op_len(&old));
        let new_bytes = buffer.bytes + added - removed.min(buffer.bytes + added);
        if new_bytes > self.options.max_txn_bytes {
            return Err(KvError::TxnTooLarge(format!(
                "buffered writes exceed {} bytes",
                self.options.max_txn_bytes
            )));
        }
        buffer.bytes = new_bytes;
        buffer.writes.insert(key, op);
        Ok(())
    }

    /// Buffers a write of `value` at `key`.
    pub fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.buffer_op(key, MutationOp::Put(value))
    }

    /// Buffers an insert: the commit fails with `AlreadyExists` if `key`
    /// holds a live value; inserting a key this transaction already wrote
    /// fails at once.
    pub fn insert(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.buffer_op(key, MutationOp::Insert(value))
    }

    /// Buffers a deletion of `key`.
    pub fn delete(&self, key: Vec<u8>) -> Result<()> {
        self.buffer_op(key, MutationOp::Delete)
    }

    /// Buffers one statement's writes atomically: when any of them fails
    /// (e.g. inserting a key the transaction already wrote), none of them
    /// stays buffered.
    pub fn apply_statement(&self, writes: Vec<(Vec<u8>, MutationOp)>) -> Result<()> {
        self.ensure_active()?;
        let saved_bytes = self.buffer.lock().bytes;
        let mut undo: Vec<(Vec<u8>, Option<MutationOp>)> = Vec::with_capacity(writes.len());
        for (key, op) in writes {
            let previous = self.buffer.lock().writes.get(&key).cloned();
            if let Err(e) = self.buffer_op(key.clone(), op) {
                let mut buffer = self.buffer.lock();
                for (key, previous) in undo.into_iter().rev() {
                    match previous {
                        Some(op) => buffer.writes.insert(key, op),
                        None => buffer.writes.remove(&key),
                    };
                }
                buffer.bytes = saved_bytes;
                return Err(e);
            }
            undo.push((key, previous));
        }
        Ok(())
    }

    /// Drops every buffered write (the transaction stays usable).
    pub fn discard_writes(&self) {
        *self.buffer.lock() = Buffer::default();
    }

    /// Ends the transaction without writing anything. Nothing was written to
    /// the store before commit, so there is nothing to undo.
    pub fn rollback(&self) {
        *self.state.lock() = State::Done;
        self.discard_writes();
        self.active.lock().take();
    }

    /// Commits the buffered writes atomically: one-phase when they fit one
    /// command on one range, otherwise Percolator two-phase commit.
    pub async fn commit(&self) -> Result<CommitInfo> {
        {
            let mut state = self.state.lock();
            if *state != State::Active {
                return Err(KvError::TxnNotActive);
            }
            *state = State::Committing;
        }
        let buffer = std::mem::take(&mut *self.buffer.lock());
        let result = self.commit_buffer(buffer).await;
        *self.state.lock() = State::Done;
        self.active.lock().take();
        result
    }

    async fn commit_buffer(&self, buffer: Buffer) -> Result<CommitInfo> {
        let large = buffer.writes.len() > LARGE_PASS;
        let collect = || -> Vec<Mutation> {
            buffer
                .writes
                .into_iter()
                .map(|(key, op)| Mutation { key, op })
                .collect()
        };
        // A large buffer takes a while to walk: off the async workers.
        let mutations = if large {
            holo_storage::blocking(collect)
        } else {
            collect()
        };
        let keys = mutations.len();
        if keys == 0 {
            return Ok(CommitInfo {
                commit_ts: None,
                keys,
                one_pc: false,
            });
        }
        if keys <= self.options.max_batch_keys
            && buffer.bytes <= self.options.max_batch_bytes
            && let Some(commit_ts) = self.one_pc(&mutations).await?
        {
            return Ok(CommitInfo {
                commit_ts: Some(commit_ts),
                keys,
                one_pc: true,
            });
        }
        let commit_ts = self.two_pc(mutations, buffer.bytes).await?;
        Ok(CommitInfo {
            commit_ts: Some(commit_ts),
            keys,
            one_pc: false,
        })
    }

    /// Tries a one-phase commit; `Ok(None)` when the keys turned out to span
    /// several ranges (the caller falls back to two-phase commit).
    async fn one_pc(&self, mutations: &[Mutation]) -> Result<Option<Timestamp>> {
        let deadline = Instant::now() + self.client.retry_policy().lock_wait;
        let first = mutations[0].key.clone();
        for attempt in 0..self.client.retry_policy().max_route_attempts * 4 {
            let loc = self.client.cache().locate(&first).await?;
            if !mutations.iter().all(|m| loc.desc.contains(&m.key)) {
                return Ok(None);
            }
            let write = KvWrite::OnePc {
                mutations: mutations.to_vec(),
                start_ts: self.start_ts,
            };
            match self.client.write_at(&loc, write).await {
                Ok(resp) => return Ok(resp.commit_ts),
                Err(e) if e.is_stale_route() => {
                    tokio::time::sleep(self.client.retry_policy().backoff(attempt)).await;
                }
                Err(KvError::Key(KeyError::Locked(lock))) => {
                    self.wait_for_lock(&lock, deadline, attempt).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(KvError::RoutingExhausted {
            attempts: self.client.retry_policy().max_route_attempts * 4,
            last: "one-phase commit kept meeting stale routes or locks".into(),
        })
    }

    /// A writer met `lock`: resolve it if its transaction is over, otherwise
    /// back off; give up with `LockWaitTimeout` at `deadline`.
    async fn wait_for_lock(
        &self,
        lock: &holo_txn_types::LockInfo,
        deadline: Instant,
        attempt: usize,
    ) -> Result<()> {
        match resolve_lock(&self.client, lock, Timestamp::ZERO).await? {
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

    async fn two_pc(&self, mutations: Vec<Mutation>, bytes: usize) -> Result<Timestamp> {
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
        test_pause(
            CommitPauses::get().after_prewrite,
            self.start_ts,
            "after prewrite",
        )
        .await;
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
        test_pause(
            CommitPauses::get().after_primary_commit,
            self.start_ts,
            "after the primary commit",
        )
        .await;
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

fn op_len(op: &MutationOp) -> usize {
    match op {
        MutationOp::Put(v) | MutationOp::Insert(v) => v.len(),
        MutationOp::Delete | MutationOp::Lock => 0,
    }
}
