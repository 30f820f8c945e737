//! [`MvccReader`]: reads locks and versions from a consistent RocksDB snapshot.

use holo_txn_types::{KeyError, Lock, LockType, Timestamp, Write, WriteRef, WriteType};
use rocksdb::{DB, DBRawIteratorWithThreadMode, SnapshotWithThreadMode};

use crate::keys::{CF_DATA, CF_LOCK, CF_WRITE, decode_key, encode_key, split_versioned, with_ts};
use crate::{Engine, Result, StorageError};

/// How a read treats timestamps and locks.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ReadOptions {
    /// Read the newest version committed at or before this timestamp.
    pub read_ts: Timestamp,
    /// Start timestamps of transactions whose locks the reader may ignore:
    /// its own, and transactions it pushed past `read_ts`.
    pub bypass_locks: Vec<Timestamp>,
}

impl ReadOptions {
    /// Reads at `read_ts` without bypassing any lock.
    pub fn at(read_ts: Timestamp) -> ReadOptions {
        ReadOptions {
            read_ts,
            bypass_locks: Vec::new(),
        }
    }

    /// Whether `lock` hides a version the reader would otherwise have to see.
    fn blocks(&self, lock: &Lock) -> bool {
        lock.lock_type != LockType::Lock
            && lock.start_ts <= self.read_ts
            && lock.min_commit_ts <= self.read_ts
            && !self.bypass_locks.contains(&lock.start_ts)
    }
}

/// At most this many further keys of a lock's transaction are reported
/// with the lock a scan meets (see [`holo_txn_types::LockInfo::more_keys`]).
pub const RESOLVE_BATCH_KEYS: usize = 1_024;

/// The result of one scan call.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanResult {
    /// Live key-value pairs in key order.
    #[serde(with = "holo_txn_types::bytes::pairs")]
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where to continue when the limit cut the scan short.
    pub resume_key: Option<Vec<u8>>,
}

/// Where a transaction's record on a key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRecord {
    /// A commit record (Put, Delete or Lock) at `commit_ts`.
    Committed {
        /// The commit timestamp.
        commit_ts: Timestamp,
        /// The record.
        write: Write,
    },
    /// A rollback record.
    RolledBack {
        /// Whether GC must keep it.
        protected: bool,
    },
    /// Nothing about the transaction on this key.
    None,
}

/// A consistent view of the engine for reads and for evaluating commands.
pub struct MvccReader<'a> {
    engine: &'a Engine,
    snapshot: SnapshotWithThreadMode<'a, DB>,
}

/// What a writer learns about one key's versions (see
/// [`MvccReader::write_check`]).
#[derive(Debug, Default)]
pub struct WriteCheck {
    /// Records committed at or after the writer's start timestamp.
    pub since_start: Vec<(Timestamp, Write)>,
    /// Type of the newest data change committed before it.
    pub latest_before: Option<WriteType>,
}

/// What a visitor of a key's versions wants next.
enum Visit<R> {
    /// Look at the next (older) version.
    Next,
    /// Stop with this result.
    Done(R),
}

type RawIter<'a> = DBRawIteratorWithThreadMode<'a, DB>;

/// Raw keys and where to continue (`None` when the span is done).
pub type KeyBatch = (Vec<Vec<u8>>, Option<Vec<u8>>);

impl<'a> MvccReader<'a> {
    /// A reader over a fresh snapshot of `engine`.
    pub fn new(engine: &'a Engine) -> MvccReader<'a> {
        MvccReader {
            engine,
            snapshot: engine.db().snapshot(),
        }
    }

    /// Visits the versions of the encoded key `enc`, newest first, starting
    /// at the newest one committed at or before `from` (all when `None`).
    ///
    /// The iterator is bounded to this key's versions: an unbounded iterator
    /// reused across keys would step over every entry other writers added
    /// after this reader's snapshot, one by one.
    fn visit_versions<R>(
        &self,
        enc: &[u8],
        from: Option<Timestamp>,
        mut f: impl FnMut(Timestamp, &[u8]) -> Result<Visit<R>>,
    ) -> Result<Option<R>> {
        let mut upper = with_ts(enc, Timestamp::ZERO);
        upper.push(0);
        let mut it = self.write_iter(enc.to_vec(), Some(upper))?;
        match from {
            Some(ts) => it.seek(with_ts(enc, ts)),
            None => it.seek(enc),
        }
        while let Some((k, v)) = it.item() {
            let (_, commit_ts) = split_versioned(k)?;
            if let Visit::Done(r) = f(commit_ts, v)? {
                return Ok(Some(r));
            }
            it.next();
        }
        it.status()?;
        Ok(None)
    }

    /// The records a write by the transaction started at `start_ts` must
    /// check, in one pass over `key`'s versions: every record committed at
    /// or after `start_ts` (newest first), and the newest data change
    /// (Put/Delete) committed before it.
    pub fn write_check(&self, key: &[u8], start_ts: Timestamp) -> Result<WriteCheck> {
        let mut check = WriteCheck::default();
        self.visit_versions(&encode_key(key), None, |commit_ts, v| {
            let write = Write::from_bytes(v)?;
            if commit_ts >= start_ts {
                check.since_start.push((commit_ts, write));
                return Ok(Visit::Next);
            }
            if write.write_type.is_data_change() {
                check.latest_before = Some(write.write_type);
                return Ok(Visit::Done(()));
            }
            Ok(Visit::Next)
        })?;
        Ok(check)
    }

    fn write_iter(&self, lower: Vec<u8>, upper: Option<Vec<u8>>) -> Result<RawIter<'_>> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_lower_bound(lower);
        if let Some(upper) = upper {
            opts.set_iterate_upper_bound(upper);
        }
        Ok(self
            .snapshot
            .raw_iterator_cf_opt(self.engine.cf(CF_WRITE)?, opts))
    }

    /// The lock on `key`, if any.
    pub fn load_lock(&self, key: &[u8]) -> Result<Option<Lock>> {
        let enc = encode_key(key);
        match self.snapshot.get_cf(self.engine.cf(CF_LOCK)?, enc)? {
            Some(bytes) => Ok(Some(Lock::from_bytes(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The newest record of `key` committed at or before `ts`, of any type.
    pub fn seek_write(&self, key: &[u8], ts: Timestamp) -> Result<Option<(Timestamp, Write)>> {
        self.visit_versions(&encode_key(key), Some(ts), |commit_ts, v| {
            Ok(Visit::Done((commit_ts, Write::from_bytes(v)?)))
        })
    }

    /// Every record of `key` committed at or after `min_ts`, newest first.
    pub fn writes_since(&self, key: &[u8], min_ts: Timestamp) -> Result<Vec<(Timestamp, Write)>> {
        let mut out = Vec::new();
        self.visit_versions(&encode_key(key), None, |commit_ts, v| {
            if commit_ts < min_ts {
                return Ok(Visit::Done(()));
            }
            out.push((commit_ts, Write::from_bytes(v)?));
            Ok(Visit::Next)
        })?;
        Ok(out)
    }

    /// The newest data change (Put or Delete) of `key` at or before `ts`.
    pub fn get_data_write(&self, key: &[u8], ts: Timestamp) -> Result<Option<(Timestamp, Write)>> {
        self.visit_versions(&encode_key(key), Some(ts), |commit_ts, v| {
            let write = Write::from_bytes(v)?;
            Ok(if write.write_type.is_data_change() {
                Visit::Done((commit_ts, write))
            } else {
                Visit::Next
            })
        })
    }

    /// The record left by the transaction started at `start_ts` on `key`.
    pub fn txn_record(&self, key: &[u8], start_ts: Timestamp) -> Result<TxnRecord> {
        for (commit_ts, write) in self.writes_since(key, start_ts)? {
            if write.start_ts != start_ts {
                continue;
            }
            return Ok(match write.write_type {
                WriteType::Rollback => TxnRecord::RolledBack {
                    protected: write.protected,
                },
                _ => TxnRecord::Committed { commit_ts, write },
            });
        }
        Ok(TxnRecord::None)
    }

    /// The value of a Put record (inline or from the data column family).
    pub fn load_value(&self, key: &[u8], write: &Write) -> Result<Vec<u8>> {
        if let Some(v) = &write.short_value {
            return Ok(v.clone());
        }
        self.load_data(&encode_key(key), write.start_ts)
    }

    fn load_data(&self, enc: &[u8], start_ts: Timestamp) -> Result<Vec<u8>> {
        self.snapshot
            .get_cf(self.engine.cf(CF_DATA)?, with_ts(enc, start_ts))?
            .ok_or(StorageError::Decode(holo_txn_types::DecodeError::Corrupt(
                "write record without its value",
            )))
    }

    /// The value of `key` visible at `opts.read_ts`, or a `Locked` error when
    /// a pending transaction may commit below the read timestamp.
    pub fn get(&self, key: &[u8], opts: &ReadOptions) -> Result<Option<Vec<u8>>> {
        if let Some(lock) = self.load_lock(key)?
            && opts.blocks(&lock)
        {
            return Err(KeyError::Locked(lock.info(key)).into());
        }
        match self.get_data_write(key, opts.read_ts)? {
            Some((_, write)) if write.write_type == WriteType::Put => {
                Ok(Some(self.load_value(key, &write)?))
            }
            _ => Ok(None),
        }
    }

    /// Live pairs in `[start, end)` (empty `end` = unbounded) at
    /// `opts.read_ts`, at most `limit` of them.
    pub fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        opts: &ReadOptions,
        limit: usize,
    ) -> Result<ScanResult> {
        let lower = encode_key(start);
        let upper = (!end.is_empty()).then(|| encode_key(end));
        let mut it = self.write_iter(lower.clone(), upper.clone())?;
        let mut result = ScanResult::default();
        it.seek(&lower);
        let mut current: Vec<u8> = Vec::new();
        let mut skip_current = false;
        while let Some((k, v)) = it.item() {
            let (enc, commit_ts) = split_versioned(k)?;
            if skip_current && enc == current.as_slice() {
                it.next();
                continue;
            }
            skip_current = false;
            if commit_ts > opts.read_ts {
                let target = with_ts(enc, opts.read_ts);
                it.seek(target);
                continue;
            }
            let write = WriteRef::parse(v)?;
            match write.write_type {
                WriteType::Lock | WriteType::Rollback => {
                    it.next();
                    continue;
                }
                WriteType::Put => {
                    let raw = decode_key(enc)?;
                    let value = match write.short_value {
                        Some(v) => v.to_vec(),
                        None => self.load_data(enc, write.start_ts)?,
                    };
                    if result.pairs.len() == limit {
                        result.resume_key = Some(raw);
                        break;
                    }
                    result.pairs.push((raw, value));
                }
                WriteType::Delete => {}
            }
            current.clear();
            current.extend_from_slice(enc);
            skip_current = true;
            it.next();
        }
        it.status()?;
        // Locks matter only inside the part of the span actually scanned.
        let lock_upper = match &result.resume_key {
            Some(resume) => Some(encode_key(resume)),
            None => upper,
        };
        self.check_locks(lower, lock_upper, opts)?;
        Ok(result)
    }

    fn check_locks(
        &self,
        lower: Vec<u8>,
        upper: Option<Vec<u8>>,
        opts: &ReadOptions,
    ) -> Result<()> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_lower_bound(lower.clone());
        if let Some(upper) = upper {
            ro.set_iterate_upper_bound(upper);
        }
        let mut it = self
            .snapshot
            .raw_iterator_cf_opt(self.engine.cf(CF_LOCK)?, ro);
        it.seek(&lower);
        while let Some((k, v)) = it.item() {
            let lock = Lock::from_bytes(v)?;
            if opts.blocks(&lock) {
                let mut info = lock.info(&decode_key(k)?);
                // The transaction's next locks in the span go with it, so
                // that a large transaction left behind is resolved in
                // batches, not one key per round trip.
                let mut looked = 0;
                it.next();
                while let Some((k, v)) = it.item()
                    && info.more_keys.len() < RESOLVE_BATCH_KEYS
                    && looked < 4 * RESOLVE_BATCH_KEYS
                {
                    if Lock::from_bytes(v)?.start_ts == lock.start_ts {
                        info.more_keys.push(decode_key(k)?);
                    }
                    looked += 1;
                    it.next();
                }
                return Err(KeyError::Locked(info).into());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Locks with `start_ts <= max_ts` in `[start, end)`, at most `limit`.
    pub fn scan_locks(
        &self,
        start: &[u8],
        end: &[u8],
        max_ts: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Lock)>> {
        let lower = encode_key(start);
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_lower_bound(lower.clone());
        if !end.is_empty() {
            ro.set_iterate_upper_bound(encode_key(end));
        }
        let mut it = self
            .snapshot
            .raw_iterator_cf_opt(self.engine.cf(CF_LOCK)?, ro);
        it.seek(&lower);
        let mut out = Vec::new();
        while let Some((k, v)) = it.item() {
            if out.len() >= limit {
                break;
            }
            let lock = Lock::from_bytes(v)?;
            if lock.start_ts <= max_ts {
                out.push((decode_key(k)?, lock));
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Keys in `[start, end)` that garbage collection at `safe_point` would
    /// change: more than one record at or below the safe point, or a single
    /// one that is not a Put. At most `limit` keys; also returns where to
    /// continue.
    pub fn gc_candidates(
        &self,
        start: &[u8],
        end: &[u8],
        safe_point: Timestamp,
        limit: usize,
    ) -> Result<KeyBatch> {
        let lower = encode_key(start);
        let upper = (!end.is_empty()).then(|| encode_key(end));
        let mut it = self.write_iter(lower.clone(), upper)?;
        it.seek(&lower);
        let mut out = Vec::new();
        let mut current: Vec<u8> = Vec::new();
        let mut below = 0usize;
        let mut first_below_is_put = false;
        let finish = |enc: &[u8], below: usize, put: bool, out: &mut Vec<Vec<u8>>| -> Result<()> {
            if below >= 2 || (below == 1 && !put) {
                out.push(decode_key(enc)?);
            }
            Ok(())
        };
        while let Some((k, v)) = it.item() {
            let (enc, commit_ts) = split_versioned(k)?;
            if enc != current.as_slice() {
                if !current.is_empty() {
                    finish(&current, below, first_below_is_put, &mut out)?;
                    if out.len() >= limit {
                        return Ok((out, Some(decode_key(enc)?)));
                    }
                }
                current = enc.to_vec();
                below = 0;
                first_below_is_put = false;
            }
            if commit_ts <= safe_point {
                if below == 0 {
                    first_below_is_put = Write::from_bytes(v)?.write_type == WriteType::Put;
                }
                below += 1;
            }
            it.next();
        }
        it.status()?;
        if !current.is_empty() {
            finish(&current, below, first_below_is_put, &mut out)?;
        }
        Ok((out, None))
    }
}
