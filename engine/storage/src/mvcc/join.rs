//! [`BatchJoin`]: one RocksDB write batch made of the batches of several
//! commands, so the commands of one Raft entry apply atomically.
//!
//! A serialized write batch is RocksDB's `rep`: a 12-byte header (8-byte
//! sequence number, 4-byte little-endian record count) followed by the
//! records. Joining batches concatenates their records and adds their
//! counts, as RocksDB's own `WriteBatchInternal::Append` does; the sequence
//! number is assigned by the write.

use rocksdb::WriteBatch;

/// Bytes of a serialized batch's header.
const HEADER: usize = 12;

/// Write batches joined into one.
#[derive(Debug)]
pub struct BatchJoin {
    data: Vec<u8>,
    count: u32,
}

impl Default for BatchJoin {
    fn default() -> Self {
        BatchJoin {
            data: vec![0; HEADER],
            count: 0,
        }
    }
}

impl BatchJoin {
    /// Appends every record of `batch`.
    pub fn push(&mut self, batch: &WriteBatch) {
        let data = batch.data();
        if data.len() <= HEADER {
            return;
        }
        self.data.extend_from_slice(&data[HEADER..]);
        self.count += batch.len() as u32;
    }

    /// The joined batch.
    pub fn finish(mut self) -> WriteBatch {
        self.data[8..HEADER].copy_from_slice(&self.count.to_le_bytes());
        WriteBatch::from_data(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{CF_LOCK, CF_WRITE};
    use crate::{Engine, EngineOptions};

    #[test]
    fn joined_batches_apply_every_record_of_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path(), EngineOptions::default()).expect("open");
        let lock = engine.cf(CF_LOCK).expect("cf");
        let write = engine.cf(CF_WRITE).expect("cf");
        engine
            .write({
                let mut b = WriteBatch::default();
                b.put_cf(lock, b"gone", b"x");
                b.put_cf(lock, b"range-a", b"x");
                b.put_cf(lock, b"range-b", b"x");
                b
            })
            .expect("seed");

        let mut first = WriteBatch::default();
        first.put_cf(lock, b"k1", b"v1");
        first.delete_cf(lock, b"gone");
        let mut second = WriteBatch::default();
        second.put_cf(write, b"k2", b"v2");
        second.delete_range_cf(lock, &b"range-"[..], &b"range-z"[..]);
        let mut join = BatchJoin::default();
        join.push(&first);
        join.push(&WriteBatch::default());
        join.push(&second);
        let joined = join.finish();
        assert_eq!(joined.len(), 4);
        engine.write(joined).expect("write joined");

        let db = engine.db();
        assert_eq!(db.get_cf(lock, b"k1").expect("get"), Some(b"v1".to_vec()));
        assert_eq!(db.get_cf(write, b"k2").expect("get"), Some(b"v2".to_vec()));
        for gone in [&b"gone"[..], b"range-a", b"range-b"] {
            assert_eq!(db.get_cf(lock, gone).expect("get"), None);
        }
    }

    #[test]
    fn an_empty_join_is_an_empty_batch() {
        let joined = BatchJoin::default().finish();
        assert!(joined.is_empty());
    }
}
