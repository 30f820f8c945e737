//! [`MvccStore`]: the range-addressed read and write API of one engine.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use holo_txn_types::{KeyError, Timestamp};

use crate::command::{WriteCommand, WriteResult, evaluate};
use crate::mvcc::join::BatchJoin;
use crate::mvcc::reader::{MvccReader, ReadOptions, ScanResult};
use crate::mvcc::txn::MvccTxn;
use crate::{Engine, RangeDescriptor, Result, StorageError};

const META_GC_SAFE_POINT: &[u8] = b"gc_safe_point";

/// One raw entry of a span export: `(index in DATA_CFS, key, value)`.
pub type SpanEntry = (u8, Vec<u8>, Vec<u8>);

/// MVCC reads and commands on the ranges of one engine.
#[derive(Debug)]
pub struct MvccStore {
    engine: Arc<Engine>,
    safe_point: AtomicU64,
}

impl MvccStore {
    /// Wraps an opened engine, loading its GC safe point.
    pub fn new(engine: Arc<Engine>) -> Result<MvccStore> {
        let safe_point = match engine.get_meta(META_GC_SAFE_POINT)? {
            Some(bytes) => {
                let arr: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    StorageError::Decode(holo_txn_types::DecodeError::Corrupt("gc safe point"))
                })?;
                u64::from_be_bytes(arr)
            }
            None => 0,
        };
        Ok(MvccStore {
            engine,
            safe_point: AtomicU64::new(safe_point),
        })
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The current GC safe point.
    pub fn gc_safe_point(&self) -> Timestamp {
        Timestamp::new(self.safe_point.load(Ordering::Acquire))
    }

    /// Raises the GC safe point (never lowers it) and persists it. Reads
    /// below it fail with `SnapshotTooOld` from now on.
    pub fn advance_gc_safe_point(&self, ts: Timestamp) -> Result<Timestamp> {
        let prev = self.safe_point.fetch_max(ts.into_inner(), Ordering::AcqRel);
        let now = prev.max(ts.into_inner());
        self.engine
            .put_meta(META_GC_SAFE_POINT, &now.to_be_bytes())?;
        Ok(Timestamp::new(now))
    }

    fn check_read_ts(&self, read_ts: Timestamp) -> Result<()> {
        let safe_point = self.gc_safe_point();
        if read_ts < safe_point {
            return Err(KeyError::SnapshotTooOld {
                read_ts,
                safe_point,
            }
            .into());
        }
        Ok(())
    }

    /// Reads `key` in `range` at `opts.read_ts`.
    pub fn get(
        &self,
        range: &RangeDescriptor,
        key: &[u8],
        opts: &ReadOptions,
    ) -> Result<Option<Vec<u8>>> {
        if !range.contains(key) {
            return Err(StorageError::KeyOutOfRange {
                key: key.to_vec(),
                range_id: range.id,
            });
        }
        self.check_read_ts(opts.read_ts)?;
        MvccReader::new(&self.engine).get(key, opts)
    }

    /// Scans `[start, end)` clamped to `range` at `opts.read_ts`.
    pub fn scan(
        &self,
        range: &RangeDescriptor,
        start: &[u8],
        end: &[u8],
        opts: &ReadOptions,
        limit: usize,
    ) -> Result<ScanResult> {
        self.check_read_ts(opts.read_ts)?;
        let Some((lo, hi)) = range.clamp(start, end) else {
            return Ok(ScanResult::default());
        };
        MvccReader::new(&self.engine).scan(&lo, &hi, opts, limit)
    }

    /// Evaluates `cmd` and applies its batch atomically. On error nothing is
    /// written. The caller must hold latches on `cmd.keys()`.
    pub fn apply(&self, range: &RangeDescriptor, cmd: &WriteCommand) -> Result<WriteResult> {
        let (batch, result) = self.evaluate(range, cmd)?;
        self.engine.write(batch)?;
        Ok(result)
    }

    /// Evaluates `cmd` into a batch without writing it: a replicated state
    /// machine adds its applied index to the batch and writes both at once.
    /// On a key error the error is returned and no batch is produced.
    pub fn evaluate(
        &self,
        range: &RangeDescriptor,
        cmd: &WriteCommand,
    ) -> Result<(rocksdb::WriteBatch, WriteResult)> {
        self.check_write_safe_point(cmd)?;
        self.evaluate_unchecked(range, cmd)
    }

    /// Refuses a prewrite or one-phase commit whose transaction started
    /// below the GC safe point (the versions it would check for conflicts
    /// may be gone).
    pub fn check_write_safe_point(&self, cmd: &WriteCommand) -> Result<()> {
        if let Some(start_ts) = cmd.start_ts()
            && matches!(
                cmd,
                WriteCommand::Prewrite { .. } | WriteCommand::OnePc { .. }
            )
        {
            let safe_point = self.gc_safe_point();
            if start_ts < safe_point {
                return Err(KeyError::SnapshotTooOld {
                    read_ts: start_ts,
                    safe_point,
                }
                .into());
            }
        }
        Ok(())
    }

    /// Like [`MvccStore::evaluate`] without the node-local GC safe-point check:
    /// a replicated state machine must decide the same on every replica, and
    /// the leaseholder checks the safe point before proposing.
    pub fn evaluate_unchecked(
        &self,
        range: &RangeDescriptor,
        cmd: &WriteCommand,
    ) -> Result<(rocksdb::WriteBatch, WriteResult)> {
        let reader = MvccReader::new(&self.engine);
        let mut txn = MvccTxn::new(&self.engine);
        let result = evaluate(&reader, &mut txn, range, cmd)?;
        Ok((txn.into_batch(), result))
    }

    /// Evaluates the commands of one replicated entry into one batch, each
    /// with its own result: a command that fails writes nothing, the others
    /// still apply. Every command is evaluated against the state before the
    /// entry, which equals applying them in order only because no two of
    /// them touch a key in common: a command that shares a key with an
    /// earlier one, and a span command (`Gc`, `ClearRange`: those are
    /// replicated alone), fails with `InvalidCommand` (the proposer never
    /// groups such commands). Like [`MvccStore::evaluate_unchecked`], no node-local
    /// safe-point check. An error of the engine itself fails the whole
    /// group.
    pub fn evaluate_group(
        &self,
        range: &RangeDescriptor,
        cmds: &[WriteCommand],
    ) -> Result<(rocksdb::WriteBatch, Vec<Result<WriteResult>>)> {
        let reader = MvccReader::new(&self.engine);
        let mut join = BatchJoin::default();
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut results = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let keys = cmd.keys();
            let result = if matches!(
                cmd,
                WriteCommand::Gc { .. } | WriteCommand::ClearRange { .. }
            ) {
                Err(StorageError::InvalidCommand(
                    "a span command is replicated alone, not in a group".into(),
                ))
            } else if keys.iter().any(|k| seen.contains(k)) {
                Err(StorageError::InvalidCommand(
                    "a command shares a key with an earlier command of its entry".into(),
                ))
            } else {
                let mut txn = MvccTxn::new(&self.engine);
                let result = evaluate(&reader, &mut txn, range, cmd);
                if result.is_ok() {
                    join.push(&txn.into_batch());
                }
                result
            };
            match result {
                Err(
                    e
                    @ (StorageError::Rocks(_) | StorageError::Decode(_) | StorageError::Engine(_)),
                ) => {
                    return Err(e);
                }
                other => results.push(other),
            }
            seen.extend(keys);
        }
        Ok((join.finish(), results))
    }

    /// Every entry of the range's MVCC column families in `[start, end)`
    /// (raw keys; empty `end` = unbounded), for snapshots: `(cf index in
    /// DATA_CFS, encoded key, value)`.
    pub fn export_span(&self, start: &[u8], end: &[u8]) -> Result<Vec<SpanEntry>> {
        use crate::keys::{DATA_CFS, encode_key};
        let snapshot = self.engine.db().snapshot();
        let lower = encode_key(start);
        let upper = (!end.is_empty()).then(|| encode_key(end));
        let mut out = Vec::new();
        for (i, cf) in DATA_CFS.iter().enumerate() {
            let mut opts = rocksdb::ReadOptions::default();
            opts.set_iterate_lower_bound(lower.clone());
            if let Some(u) = &upper {
                opts.set_iterate_upper_bound(u.clone());
            }
            let mut it = snapshot.raw_iterator_cf_opt(self.engine.cf(cf)?, opts);
            it.seek(&lower);
            while let Some((k, v)) = it.item() {
                out.push((i as u8, k.to_vec(), v.to_vec()));
                it.next();
            }
            it.status()?;
        }
        Ok(out)
    }

    /// Adds to `batch` the replacement of everything in `[start, end)` by
    /// `entries` (as produced by [`MvccStore::export_span`]).
    pub fn import_span(
        &self,
        batch: &mut rocksdb::WriteBatch,
        start: &[u8],
        end: &[u8],
        entries: &[SpanEntry],
    ) -> Result<()> {
        use crate::keys::{DATA_CFS, encode_key};
        let lower = encode_key(start);
        // An unbounded end: past every encoded key (their first byte is a
        // raw key byte or the 0xF7 marker of the empty key).
        let upper = if end.is_empty() {
            vec![0xFF; 16]
        } else {
            encode_key(end)
        };
        for cf in DATA_CFS {
            batch.delete_range_cf(self.engine.cf(cf)?, &lower, &upper);
        }
        for (i, k, v) in entries {
            let cf = DATA_CFS.get(*i as usize).ok_or(StorageError::Decode(
                holo_txn_types::DecodeError::Corrupt("snapshot column family"),
            ))?;
            batch.put_cf(self.engine.cf(cf)?, k, v);
        }
        Ok(())
    }

    /// Approximate bytes stored for `[start, end)` (empty `end` =
    /// unbounded) across the MVCC column families, from RocksDB's file and
    /// memtable statistics.
    pub fn approximate_size(&self, start: &[u8], end: &[u8]) -> Result<u64> {
        use crate::keys::{DATA_CFS, encode_key};
        let lower = encode_key(start);
        let upper = if end.is_empty() {
            vec![0xFF; 16]
        } else {
            encode_key(end)
        };
        let mut total = 0;
        for cf in DATA_CFS {
            let sizes = self.engine.db().get_approximate_sizes_cf(
                self.engine.cf(cf)?,
                &[rocksdb::Range::new(&lower, &upper)],
            );
            total += sizes.iter().sum::<u64>();
        }
        Ok(total)
    }

    /// A user key near the middle of `[start, end)` by count of committed
    /// versions (a split point), or `None` when the span holds fewer than
    /// two keys.
    pub fn middle_key(&self, start: &[u8], end: &[u8]) -> Result<Option<Vec<u8>>> {
        use crate::keys::{CF_WRITE, decode_key, encode_key, split_versioned};
        let snapshot = self.engine.db().snapshot();
        let lower = encode_key(start);
        let upper = (!end.is_empty()).then(|| encode_key(end));
        let iter = || -> Result<rocksdb::DBRawIteratorWithThreadMode<'_, rocksdb::DB>> {
            let mut opts = rocksdb::ReadOptions::default();
            opts.set_iterate_lower_bound(lower.clone());
            if let Some(u) = &upper {
                opts.set_iterate_upper_bound(u.clone());
            }
            let mut it = snapshot.raw_iterator_cf_opt(self.engine.cf(CF_WRITE)?, opts);
            it.seek(&lower);
            Ok(it)
        };
        let mut it = iter()?;
        let mut count = 0u64;
        while it.valid() {
            count += 1;
            it.next();
        }
        it.status()?;
        if count < 2 {
            return Ok(None);
        }
        let mut it = iter()?;
        for _ in 0..count / 2 {
            it.next();
        }
        match it.key() {
            Some(k) => {
                let (encoded, _) = split_versioned(k)?;
                Ok(Some(decode_key(encoded)?))
            }
            None => Ok(None),
        }
    }

    /// A reader over a fresh snapshot, for lock scans and GC planning.
    pub fn reader(&self) -> MvccReader<'_> {
        MvccReader::new(&self.engine)
    }
}
