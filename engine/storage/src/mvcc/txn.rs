//! [`MvccTxn`]: collects the RocksDB writes of one command into a batch.

use holo_txn_types::{Lock, Timestamp, Write};
use rocksdb::WriteBatch;

use crate::keys::{CF_DATA, CF_LOCK, CF_WRITE, encode_key, versioned_key};
use crate::{Engine, Result};

/// The pending writes of one command; applied atomically by the caller.
pub struct MvccTxn<'a> {
    engine: &'a Engine,
    batch: WriteBatch,
    keys_written: usize,
}

impl<'a> MvccTxn<'a> {
    /// An empty batch for `engine`.
    pub fn new(engine: &'a Engine) -> MvccTxn<'a> {
        MvccTxn {
            engine,
            batch: WriteBatch::default(),
            keys_written: 0,
        }
    }

    /// Writes `lock` on `key`.
    pub fn put_lock(&mut self, key: &[u8], lock: &Lock) -> Result<()> {
        self.batch
            .put_cf(self.engine.cf(CF_LOCK)?, encode_key(key), lock.to_bytes());
        self.keys_written += 1;
        Ok(())
    }

    /// Removes the lock on `key`.
    pub fn unlock_key(&mut self, key: &[u8]) -> Result<()> {
        self.batch
            .delete_cf(self.engine.cf(CF_LOCK)?, encode_key(key));
        self.keys_written += 1;
        Ok(())
    }

    /// Writes a write record at `key + !ts`.
    pub fn put_write(&mut self, key: &[u8], ts: Timestamp, write: &Write) -> Result<()> {
        self.batch.put_cf(
            self.engine.cf(CF_WRITE)?,
            versioned_key(key, ts),
            write.to_bytes(),
        );
        self.keys_written += 1;
        Ok(())
    }

    /// Deletes the write record at `key + !ts`.
    pub fn delete_write(&mut self, key: &[u8], ts: Timestamp) -> Result<()> {
        self.batch
            .delete_cf(self.engine.cf(CF_WRITE)?, versioned_key(key, ts));
        self.keys_written += 1;
        Ok(())
    }

    /// Writes a long value at `key + !start_ts`.
    pub fn put_value(&mut self, key: &[u8], start_ts: Timestamp, value: &[u8]) -> Result<()> {
        self.batch.put_cf(
            self.engine.cf(CF_DATA)?,
            versioned_key(key, start_ts),
            value,
        );
        self.keys_written += 1;
        Ok(())
    }

    /// Deletes the long value at `key + !start_ts`.
    pub fn delete_value(&mut self, key: &[u8], start_ts: Timestamp) -> Result<()> {
        self.batch
            .delete_cf(self.engine.cf(CF_DATA)?, versioned_key(key, start_ts));
        self.keys_written += 1;
        Ok(())
    }

    /// Deletes every lock, write record and value of keys in `[start, end)`.
    pub fn delete_range(&mut self, start: &[u8], end: &[u8]) -> Result<()> {
        let (lo, hi) = (encode_key(start), encode_key(end));
        for cf in [CF_LOCK, CF_WRITE, CF_DATA] {
            self.batch.delete_range_cf(self.engine.cf(cf)?, &lo, &hi);
        }
        self.keys_written += 1;
        Ok(())
    }

    /// Number of RocksDB entries written or deleted so far.
    pub fn len(&self) -> usize {
        self.keys_written
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.keys_written == 0
    }

    /// The collected batch.
    pub fn into_batch(self) -> WriteBatch {
        self.batch
    }
}
