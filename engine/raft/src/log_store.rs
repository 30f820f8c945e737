//! [`RangeLogStore`]: one range's Raft log, vote and purge marker in the
//! engine's `raft` column family.
//!
//! Keys: `range id (u64 BE) | tag | ...`: `0x01 index (u64 BE)` log entries,
//! `0x02` vote, `0x03` last purged log id, `0x04` committed log id (written
//! by earlier versions only: openraft then does not need it, the state
//! machine's applied state is persisted with every apply). The state
//! machine keeps its applied state under tag `0x05` (see
//! [`crate::state_machine`]). Log writes are synced before they are reported
//! durable.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use holo_storage::keys::CF_RAFT;
use holo_storage::{Engine, RangeId};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use rocksdb::WriteBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TypeConfig;
use crate::codec::{decode, encode};

/// Tag of log entries.
pub const TAG_LOG: u8 = 0x01;
/// Tag of the vote.
pub const TAG_VOTE: u8 = 0x02;
/// Tag of the last purged log id.
pub const TAG_PURGED: u8 = 0x03;
/// Tag of the committed log id.
pub const TAG_COMMITTED: u8 = 0x04;
/// Tag of the state machine's applied state.
pub const TAG_SM: u8 = 0x05;

type SResult<T> = Result<T, StorageError<u64>>;

/// `range id | tag`.
pub fn key(range: RangeId, tag: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.extend_from_slice(&range.0.to_be_bytes());
    k.push(tag);
    k
}

fn log_key(range: RangeId, index: u64) -> Vec<u8> {
    let mut k = key(range, TAG_LOG);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn any(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

/// A range's Raft log storage.
#[derive(Clone)]
pub struct RangeLogStore {
    engine: Arc<Engine>,
    range: RangeId,
}

impl Debug for RangeLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeLogStore")
            .field("range", &self.range)
            .finish()
    }
}

impl RangeLogStore {
    /// The log store of `range` in `engine`.
    pub fn new(engine: Arc<Engine>, range: RangeId) -> RangeLogStore {
        RangeLogStore { engine, range }
    }

    fn get<T: DeserializeOwned>(&self, tag: u8) -> Result<Option<T>, AnyError> {
        let cf = self.engine.cf(CF_RAFT).map_err(any)?;
        match self
            .engine
            .db()
            .get_cf(cf, key(self.range, tag))
            .map_err(any)?
        {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(any)?)),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, tag: u8, v: &T) -> Result<(), AnyError> {
        let cf = self.engine.cf(CF_RAFT).map_err(any)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key(self.range, tag), encode(v).map_err(any)?);
        self.engine.write_with_sync(batch, true).map_err(any)
    }

    fn last_log_id(&self) -> Result<Option<LogId<u64>>, AnyError> {
        let cf = self.engine.cf(CF_RAFT).map_err(any)?;
        let mut it = self.engine.db().raw_iterator_cf(cf);
        it.seek_for_prev(log_key(self.range, u64::MAX));
        if let Some((k, v)) = it.item()
            && k.starts_with(&key(self.range, TAG_LOG))
        {
            let entry: Entry<TypeConfig> = decode(v).map_err(any)?;
            return Ok(Some(entry.log_id));
        }
        it.status().map_err(any)?;
        Ok(None)
    }

    /// Deletes the whole Raft state of the range (after it was removed from
    /// this node).
    pub fn destroy(&self) -> Result<(), AnyError> {
        let cf = self.engine.cf(CF_RAFT).map_err(any)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, key(self.range, 0), key(self.range, 0xFF));
        self.engine.write_with_sync(batch, true).map_err(any)
    }
}

impl RangeLogStore {
    /// Entries `[start, end)` in order; with a `budget`, stops after the
    /// entry that reaches it (so at least one entry is returned).
    fn read_entries(
        &self,
        start: u64,
        end: Option<u64>,
        budget: Option<usize>,
    ) -> Result<Vec<Entry<TypeConfig>>, AnyError> {
        let cf = self.engine.cf(CF_RAFT).map_err(any)?;
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(log_key(self.range, end.unwrap_or(u64::MAX)));
        let mut it = self.engine.db().raw_iterator_cf_opt(cf, opts);
        it.seek(log_key(self.range, start));
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some((_, v)) = it.item() {
            bytes += v.len();
            out.push(decode(v).map_err(any)?);
            if budget.is_some_and(|b| bytes >= b) {
                break;
            }
            it.next();
        }
        it.status().map_err(any)?;
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for RangeLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        self.read_entries(start, end, None)
            .map_err(|e| StorageIOError::read_logs(e).into())
    }

    /// The entries replication sends: a prefix of `[start, end)` of at most
    /// [`MAX_APPEND_BYTES`](crate::MAX_APPEND_BYTES) (at least one entry),
    /// so one AppendEntries stays small whatever the backlog.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> SResult<Vec<Entry<TypeConfig>>> {
        self.read_entries(start, Some(end), Some(crate::MAX_APPEND_BYTES))
            .map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<TypeConfig> for RangeLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> SResult<LogState<TypeConfig>> {
        let purged: Option<LogId<u64>> = self.get(TAG_PURGED).map_err(StorageIOError::read_logs)?;
        let last = self.last_log_id().map_err(StorageIOError::read_logs)?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> SResult<()> {
        self.put(TAG_VOTE, vote)
            .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<u64>>> {
        self.get(TAG_VOTE)
            .map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> SResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = || -> Result<(), AnyError> {
            let cf = self.engine.cf(CF_RAFT).map_err(any)?;
            let mut batch = WriteBatch::default();
            for entry in entries {
                batch.put_cf(
                    cf,
                    log_key(self.range, entry.log_id.index),
                    encode(&entry).map_err(any)?,
                );
            }
            // Appends follow `--no-sync-writes` (a machine crash may then
            // lose acknowledged entries, as the flag says); votes, purges
            // and truncations are always synced.
            let sync = self.engine.options().sync_writes;
            self.engine.write_with_sync(batch, sync).map_err(any)
        };
        match holo_storage::blocking(write) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> SResult<()> {
        let run = || -> Result<(), AnyError> {
            let cf = self.engine.cf(CF_RAFT).map_err(any)?;
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(
                cf,
                log_key(self.range, log_id.index),
                log_key(self.range, u64::MAX),
            );
            self.engine.write_with_sync(batch, true).map_err(any)
        };
        run().map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> SResult<()> {
        let run = || -> Result<(), AnyError> {
            let cf = self.engine.cf(CF_RAFT).map_err(any)?;
            let mut batch = WriteBatch::default();
            batch.put_cf(
                cf,
                key(self.range, TAG_PURGED),
                encode(&log_id).map_err(any)?,
            );
            batch.delete_range_cf(
                cf,
                log_key(self.range, 0),
                log_key(self.range, log_id.index + 1),
            );
            self.engine.write_with_sync(batch, true).map_err(any)
        };
        run().map_err(|e| StorageIOError::write_logs(e).into())
    }
}
