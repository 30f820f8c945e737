//! [`Transaction`]: snapshot reads with read-your-writes and an atomic commit
//! of buffered writes: one-phase on one range, Percolator two-phase across
//! ranges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use holo_storage::ReadOptions;
use holo_txn_types::{KeyError, Mutation, MutationOp, Timestamp};
use parking_lot::Mutex;

use crate::client::KvClient;
use crate::service::KvWrite;
use crate::{KvError, Result};

mod commit;

pub use commit::{AFTER_PREWRITE, AFTER_PRIMARY_COMMIT};

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
            // A key this transaction writes is already locked by the write.
            (Some(_), MutationOp::Lock) => return Ok(()),
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

    /// Buffers a lock of `key`: the commit writes nothing there but
    /// conflicts like a write with any transaction that writes the key
    /// concurrently (what a foreign key's check holds on the referenced
    /// row). A key the transaction writes anyway keeps its write.
    pub fn lock(&self, key: Vec<u8>) -> Result<()> {
        self.buffer_op(key, MutationOp::Lock)
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
}

fn op_len(op: &MutationOp) -> usize {
    match op {
        MutationOp::Put(v) | MutationOp::Insert(v) => v.len(),
        MutationOp::Delete | MutationOp::Lock => 0,
    }
}
