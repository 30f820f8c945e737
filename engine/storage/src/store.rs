//! [`MvccStore`]: the range-addressed read and write API of one engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use holo_txn_types::{KeyError, Timestamp};

use crate::command::{WriteCommand, WriteResult, evaluate};
use crate::mvcc::reader::{MvccReader, ReadOptions, ScanResult};
use crate::mvcc::txn::MvccTxn;
use crate::{Engine, RangeDescriptor, Result, StorageError};

const META_GC_SAFE_POINT: &[u8] = b"gc_safe_point";

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
        let reader = MvccReader::new(&self.engine);
        let mut txn = MvccTxn::new(&self.engine);
        let result = evaluate(&reader, &mut txn, range, cmd)?;
        drop(reader);
        self.engine.write(txn.into_batch())?;
        Ok(result)
    }

    /// A reader over a fresh snapshot, for lock scans and GC planning.
    pub fn reader(&self) -> MvccReader<'_> {
        MvccReader::new(&self.engine)
    }
}
