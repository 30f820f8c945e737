//! [`Engine`]: one RocksDB instance with HoloStore's column families.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, Options, WriteBatch,
    WriteOptions,
};

use crate::keys::{ALL_CFS, CF_META};
use crate::{Result, StorageError};

/// Tuning knobs of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Sync the write-ahead log before acknowledging a write (default
    /// `true`). Turning it off trades durability of the last writes before a
    /// machine crash for throughput; a process crash loses nothing either way.
    pub sync_writes: bool,
    /// Shared block cache size in bytes.
    pub block_cache_bytes: usize,
    /// Memtable size per column family in bytes.
    pub write_buffer_bytes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            sync_writes: true,
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

/// A RocksDB instance with the column families of [`crate::keys`]. Many ranges
/// share one engine.
pub struct Engine {
    db: DB,
    write_opts: WriteOptions,
    options: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.db.path())
            .field("options", &self.options)
            .finish()
    }
}

impl Engine {
    /// Opens (creating when missing) the engine at `path`.
    pub fn open(path: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)
            .map_err(|e| StorageError::Engine(format!("create {}: {e}", path.display())))?;
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_max_total_wal_size(256 << 20);
        db_opts.set_block_based_table_factory(&table);

        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table);
            cf_opts.set_write_buffer_size(options.write_buffer_bytes);
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(options.sync_writes);
        Ok(Engine {
            db,
            write_opts,
            options,
        })
    }

    /// The underlying RocksDB handle.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// The options the engine was opened with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Handle of a column family opened by [`Engine::open`].
    pub fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Engine(format!("missing column family {name}")))
    }

    /// Writes `batch` atomically, synced according to the engine options.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(())
    }

    /// Writes `batch` atomically, synced or not regardless of the engine
    /// options (Raft votes and log truncations are always synced;
    /// state-machine applies need not be, their log is).
    pub fn write_with_sync(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Reads an engine-local metadata value.
    pub fn get_meta(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_META)?, name)?)
    }

    /// Writes an engine-local metadata value durably (always synced).
    pub fn put_meta(&self, name: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, name, value);
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }
}
