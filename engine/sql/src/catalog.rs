//! [`Catalog`]: table definitions persisted in HoloStore, cached in memory,
//! and exposed to DataFusion.

mod alter;
pub mod descriptor;
pub mod keys;
pub mod lease;
pub mod provider;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use holo_kv::{KvClient, KvError, Transaction, TxnOptions};
use holo_txn_types::KeyError;
use parking_lot::RwLock;

use crate::codec::index::IndexCodec;
use crate::codec::key::{prefix_end, table_prefix};
use crate::codec::row::RowCodec;
use crate::error::{SqlError, SqlResult, sqlstate};
use descriptor::{
    DESCRIPTOR_FORMAT, DatabaseDescriptor, Descriptor, SchemaDescriptor, TableDescriptor,
};
use keys::{
    DATABASE_ID, DATABASE_NAME, FIRST_USER_ID, PUBLIC_SCHEMA_ID, PUBLIC_SCHEMA_NAME,
    catalog_version_key, desc_id_seq_key, descriptor_key, descriptor_prefix, namespace_key,
};

/// A table as the SQL layer uses it: descriptor, codec, Arrow schema and
/// planned default expressions.
#[derive(Debug)]
pub struct TableEntry {
    /// The descriptor.
    pub desc: TableDescriptor,
    /// Row codec of the primary index.
    pub codec: Arc<RowCodec>,
    /// Arrow schema (table column order).
    pub schema: SchemaRef,
    /// Column defaults as DataFusion expressions.
    pub defaults: HashMap<String, Expr>,
    /// Codecs of the secondary indexes writers maintain (every index in the
    /// descriptor), in descriptor order.
    pub indexes: Vec<IndexCodec>,
    /// Table positions of the current values an UPDATE or DELETE needs of
    /// each target row: the primary key and every column of a secondary
    /// index, ascending.
    pub old_row_columns: Vec<usize>,
    /// A write-only column being added NOT NULL without a default: inserts
    /// are refused (23502) until the column is visible.
    pub insert_blocker: Option<String>,
}

impl TableEntry {
    /// Builds the entry of `desc`, planning defaults with `ctx`.
    pub fn new(desc: TableDescriptor, ctx: &SessionContext) -> SqlResult<TableEntry> {
        let fields: Vec<Field> = desc
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow_type(), c.nullable))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let mut defaults = HashMap::new();
        for c in &desc.columns {
            if let Some(sql) = &c.default {
                let expr = ctx.parse_sql_expr(sql, &DFSchema::empty()).map_err(|e| {
                    SqlError::new(
                        sqlstate::INVALID_COLUMN_DEFINITION,
                        format!(
                            "invalid default for column \"{}\": {}",
                            c.name,
                            SqlError::from(e).message
                        ),
                    )
                })?;
                defaults.insert(c.name.clone(), expr);
            }
        }
        let codec = Arc::new(RowCodec::new(&desc)?);
        let indexes = desc
            .indexes
            .iter()
            .map(|i| IndexCodec::new(&desc, i, codec.columns()))
            .collect::<SqlResult<Vec<_>>>()?;
        let mut old_row_columns: Vec<usize> = codec.pk_indices().to_vec();
        old_row_columns.extend(indexes.iter().flat_map(|i| i.column_positions()));
        old_row_columns.sort_unstable();
        old_row_columns.dedup();
        let insert_blocker = desc
            .hidden_columns
            .iter()
            .find(|c| !c.nullable && c.missing.is_none())
            .map(|c| c.name.clone());
        Ok(TableEntry {
            codec,
            insert_blocker,
            desc,
            schema,
            defaults,
            indexes,
            old_row_columns,
        })
    }

    /// The constraint a key of this table belongs to and the rendering of
    /// its values (for a unique violation): the primary key or one of the
    /// unique indexes.
    pub fn describe_conflict(&self, key: &[u8]) -> (&str, Option<String>) {
        if let Some(index) = self.indexes.iter().find(|i| key.starts_with(i.prefix())) {
            return (&index.desc().name, index.describe_key(key));
        }
        (&self.desc.primary_key.name, self.codec.describe_key(key))
    }
}

/// Every pair under `prefix`, as `txn` sees them.
pub(crate) async fn scan_prefix(
    txn: &Transaction,
    prefix: Vec<u8>,
) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let end = prefix_end(&prefix);
    let mut start = prefix;
    let mut out = Vec::new();
    loop {
        let (pairs, next) = txn.scan_chunk(&start, &end, 1024).await?;
        out.extend(pairs);
        match next {
            Some(n) => start = n,
            None => return Ok(out),
        }
    }
}

/// 42P07 for a relation name in use.
pub fn relation_exists(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::DUPLICATE_TABLE,
        format!("relation \"{name}\" already exists"),
    )
}

#[derive(Debug, Default)]
struct Cache {
    by_name: HashMap<String, Arc<TableEntry>>,
    by_id: HashMap<u32, Arc<TableEntry>>,
}

/// The catalog of the database: loads descriptors from the store, applies
/// DDL transactionally and keeps an in-memory cache.
pub struct Catalog {
    version: std::sync::atomic::AtomicU64,
    /// The stored catalog version the cache was loaded at.
    stored_version: std::sync::atomic::AtomicU64,
    kv: Arc<KvClient>,
    txn_options: TxnOptions,
    expr_ctx: SessionContext,
    cache: RwLock<Cache>,
    leases: Arc<lease::SchemaLeases>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("tables", &self.cache.read().by_name.len())
            .finish()
    }
}

fn json<T: serde::Serialize>(v: &T) -> SqlResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| SqlError::internal(format!("encode descriptor: {e}")))
}

fn u64_value(bytes: Option<Vec<u8>>, what: &str) -> SqlResult<u64> {
    match bytes {
        None => Ok(0),
        Some(b) => b
            .as_slice()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| SqlError::internal(format!("corrupt {what}"))),
    }
}

impl Catalog {
    /// Opens the catalog: bootstraps the database and `public` schema on a
    /// fresh store, then loads every table descriptor.
    /// `node_id` names this node in its schema lease.
    pub async fn open(
        kv: Arc<KvClient>,
        txn_options: TxnOptions,
        node_id: u64,
    ) -> SqlResult<Arc<Catalog>> {
        let catalog = Arc::new(Catalog {
            version: std::sync::atomic::AtomicU64::new(0),
            stored_version: std::sync::atomic::AtomicU64::new(0),
            kv,
            txn_options,
            expr_ctx: SessionContext::new(),
            cache: RwLock::new(Cache::default()),
            leases: lease::SchemaLeases::new(node_id),
        });
        catalog.bootstrap().await?;
        catalog.reload().await?;
        // Without a lease the node serves reads but commits no writes; the
        // loop below keeps trying (the catalog's range may be without a
        // quorum while the node starts).
        if let Err(e) = catalog.publish_lease().await {
            tracing::warn!(error = %e, "schema lease not published yet");
        }
        // Other nodes' schema changes: picked up within a fifth of a second
        // (and at once when a statement names a table this node does not
        // know); the lease says which versions are still in use here.
        let weak = Arc::downgrade(&catalog);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                let Some(catalog) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = catalog.refresh_if_stale().await {
                    tracing::debug!(error = %e, "catalog refresh failed");
                }
                if let Err(e) = catalog.publish_lease().await {
                    tracing::debug!(error = %e, "schema lease renewal failed");
                }
            }
        });
        Ok(catalog)
    }

    /// Publishes this node's schema lease when it changed or is due.
    pub async fn publish_lease(&self) -> SqlResult<()> {
        let txn = self.begin().await?;
        self.leases.publish(txn, self.stored_version()).await
    }

    /// The stored catalog version the cache was loaded at.
    pub fn stored_version(&self) -> u64 {
        self.stored_version
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Pins the loaded catalog version for a statement or transaction:
    /// schema changes wait for it to be released. Take it before reading
    /// any descriptor.
    pub fn pin(&self) -> lease::SchemaPin {
        self.leases.pin(self.stored_version())
    }

    /// 40001 when this node's schema lease is too old to commit writes.
    pub fn check_lease(&self) -> SqlResult<()> {
        self.leases.check_fresh()
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.leases.node_id()
    }

    /// Waits until no node uses a catalog version older than `version`.
    pub async fn wait_for_version(
        &self,
        version: u64,
        interrupt: &crate::interrupt::Interrupt,
    ) -> SqlResult<()> {
        // This node's own record first, so the wait need not sit out a tick
        // (a conflict with the renewal loop is harmless: it publishes too).
        if let Err(e) = self.publish_lease().await {
            tracing::debug!(error = %e, "schema lease publication raced");
        }
        lease::wait_for_version(|| self.begin(), version, interrupt).await
    }

    /// Reloads the cache when the stored catalog version differs from the
    /// loaded one (a schema change, possibly made by another node). Returns
    /// whether it reloaded.
    pub async fn refresh_if_stale(&self) -> SqlResult<bool> {
        let txn = self.begin().await?;
        let stored = u64_value(txn.get(&catalog_version_key()).await?, "catalog version")?;
        if stored
            == self
                .stored_version
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    pub(crate) async fn begin(&self) -> SqlResult<Transaction> {
        Ok(Transaction::begin(self.kv.clone(), self.txn_options.clone()).await?)
    }

    /// Creates the database and schema unless present. Nodes of a new
    /// cluster race to do it: the losers' conflicts are retried and then see
    /// the winner's catalog.
    async fn bootstrap(&self) -> SqlResult<()> {
        let mut attempt = 0;
        loop {
            match self.bootstrap_once().await {
                Err(e) if e.code == sqlstate::SERIALIZATION_FAILURE && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn bootstrap_once(&self) -> SqlResult<()> {
        let txn = self.begin().await?;
        if txn.get(&namespace_key(0, DATABASE_NAME)).await?.is_some() {
            return Ok(());
        }
        let db = Descriptor::Database(DatabaseDescriptor {
            format: DESCRIPTOR_FORMAT,
            id: DATABASE_ID,
            name: DATABASE_NAME.into(),
        });
        let schema = Descriptor::Schema(SchemaDescriptor {
            format: DESCRIPTOR_FORMAT,
            id: PUBLIC_SCHEMA_ID,
            name: PUBLIC_SCHEMA_NAME.into(),
            parent_id: DATABASE_ID,
        });
        txn.insert(
            namespace_key(0, DATABASE_NAME),
            DATABASE_ID.to_be_bytes().to_vec(),
        )?;
        txn.insert(descriptor_key(DATABASE_ID), json(&db)?)?;
        txn.insert(
            namespace_key(DATABASE_ID, PUBLIC_SCHEMA_NAME),
            PUBLIC_SCHEMA_ID.to_be_bytes().to_vec(),
        )?;
        txn.insert(descriptor_key(PUBLIC_SCHEMA_ID), json(&schema)?)?;
        txn.put(
            desc_id_seq_key(),
            u64::from(FIRST_USER_ID).to_be_bytes().to_vec(),
        )?;
        txn.put(catalog_version_key(), 1u64.to_be_bytes().to_vec())?;
        match txn.commit().await {
            // Someone else bootstrapped concurrently: fine.
            Ok(_) | Err(KvError::Key(KeyError::AlreadyExists { .. })) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reloads every table descriptor from the store.
    pub async fn reload(&self) -> SqlResult<()> {
        let txn = self.begin().await?;
        let stored = u64_value(txn.get(&catalog_version_key()).await?, "catalog version")?;
        let prefix = descriptor_prefix();
        let end = prefix_end(&prefix);
        let mut start = prefix.clone();
        let mut cache = Cache::default();
        loop {
            let (pairs, next) = txn.scan_chunk(&start, &end, 1024).await?;
            for (_, value) in pairs {
                let desc: Descriptor = serde_json::from_slice(&value)
                    .map_err(|e| SqlError::internal(format!("corrupt descriptor: {e}")))?;
                if let Descriptor::Table(t) = desc {
                    let entry = Arc::new(TableEntry::new(t, &self.expr_ctx)?);
                    cache.by_id.insert(entry.desc.id, entry.clone());
                    cache.by_name.insert(entry.desc.name.clone(), entry);
                }
            }
            match next {
                Some(n) => start = n,
                None => break,
            }
        }
        // Concurrent reloads (the refresh loop, a schema change's steps)
        // may finish out of order: never go back to an older catalog. The
        // local version moves before the stored one, so a statement pinned
        // at the new version never reuses a plan made from the old cache.
        let mut guard = self.cache.write();
        if stored
            < self
                .stored_version
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(());
        }
        *guard = cache;
        self.bump_local_version();
        self.stored_version
            .store(stored, std::sync::atomic::Ordering::Release);
        drop(guard);
        Ok(())
    }

    /// Changes whenever the cached catalog changes; prepared plans made at an
    /// older version are re-planned.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump_local_version(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The table called `name` in `public`.
    pub fn table(&self, name: &str) -> Option<Arc<TableEntry>> {
        self.cache.read().by_name.get(name).cloned()
    }

    /// The table with id `id`.
    pub fn table_by_id(&self, id: u32) -> Option<Arc<TableEntry>> {
        self.cache.read().by_id.get(&id).cloned()
    }

    /// Names of every table, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.cache.read().by_name.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether a relation (table, primary key or secondary index) called
    /// `name` exists in the schema, as far as this node's cache knows (the
    /// commit of a new name checks it against the store).
    pub fn relation_exists(&self, name: &str) -> bool {
        self.cache.read().by_name.values().any(|t| {
            t.desc.name == name
                || t.desc.primary_key.name == name
                || t.desc.indexes.iter().any(|i| i.name == name)
        })
    }

    /// The table holding the secondary index called `name`.
    pub fn index_owner(&self, name: &str) -> Option<Arc<TableEntry>> {
        self.cache
            .read()
            .by_name
            .values()
            .find(|t| t.desc.index(name).is_some())
            .cloned()
    }

    /// The context used to plan default and CHECK expressions.
    pub fn expr_context(&self) -> &SessionContext {
        &self.expr_ctx
    }

    /// Creates a table from `desc` (its id and version are assigned here).
    /// Returns `Ok(false)` when the name exists and `if_not_exists` is set.
    pub async fn create_table(
        &self,
        mut desc: TableDescriptor,
        if_not_exists: bool,
    ) -> SqlResult<bool> {
        let exists = || {
            SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", desc.name),
            )
        };
        if self.table(&desc.name).is_some() {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(exists())
            };
        }
        let txn = self.begin().await?;
        let next = u64_value(txn.get(&desc_id_seq_key()).await?, "descriptor id sequence")?;
        let id = u32::try_from(next).map_err(|_| {
            SqlError::new(sqlstate::PROGRAM_LIMIT_EXCEEDED, "descriptor ids exhausted")
        })?;
        desc.id = id;
        desc.version = 1;
        // Validate the whole entry (codec, defaults) before writing anything.
        let entry = Arc::new(TableEntry::new(desc.clone(), &self.expr_ctx)?);
        txn.put(desc_id_seq_key(), (next + 1).to_be_bytes().to_vec())?;
        txn.insert(
            namespace_key(desc.parent_id, &desc.name),
            id.to_be_bytes().to_vec(),
        )?;
        // Index names share the schema's relation namespace with tables.
        for index in &desc.indexes {
            txn.insert(
                namespace_key(desc.parent_id, &index.name),
                id.to_be_bytes().to_vec(),
            )?;
        }
        txn.insert(descriptor_key(id), json(&Descriptor::Table(desc.clone()))?)?;
        self.bump_version(&txn).await?;
        match txn.commit().await {
            Ok(_) => {}
            Err(KvError::Key(KeyError::AlreadyExists { key }))
                if let Some(index) = desc
                    .indexes
                    .iter()
                    .find(|i| key == namespace_key(desc.parent_id, &i.name)) =>
            {
                self.reload().await?;
                return Err(relation_exists(&index.name));
            }
            Err(KvError::Key(KeyError::AlreadyExists { .. })) => {
                self.reload().await?;
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(exists())
                };
            }
            Err(e) => return Err(e.into()),
        }
        {
            let mut cache = self.cache.write();
            cache.by_id.insert(id, entry.clone());
            cache.by_name.insert(desc.name.clone(), entry);
        }
        self.bump_local_version();
        Ok(true)
    }

    async fn bump_version(&self, txn: &Transaction) -> SqlResult<()> {
        let v = u64_value(txn.get(&catalog_version_key()).await?, "catalog version")?;
        txn.put(catalog_version_key(), (v + 1).to_be_bytes().to_vec())?;
        Ok(())
    }

    /// Drops table `name` and removes its data. Returns `Ok(false)` when it
    /// does not exist and `if_exists` is set.
    pub async fn drop_table(&self, name: &str, if_exists: bool) -> SqlResult<bool> {
        let Some(entry) = self.table(name) else {
            return if if_exists {
                Ok(false)
            } else {
                Err(SqlError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("table \"{name}\" does not exist"),
                ))
            };
        };
        let desc = &entry.desc;
        let txn = self.begin().await?;
        txn.delete(namespace_key(desc.parent_id, &desc.name))?;
        for index in &desc.indexes {
            txn.delete(namespace_key(desc.parent_id, &index.name))?;
        }
        txn.delete(descriptor_key(desc.id))?;
        self.bump_version(&txn).await?;
        txn.commit().await?;
        {
            let mut cache = self.cache.write();
            cache.by_id.remove(&desc.id);
            cache.by_name.remove(&desc.name);
        }
        self.bump_local_version();
        // The table id is never reused, so its data can go physically.
        let prefix = table_prefix(desc.id);
        if let Err(e) = self.kv.clear_range(&prefix, &prefix_end(&prefix)).await {
            tracing::warn!(table = %desc.name, error = %e, "clearing dropped table data failed");
        }
        Ok(true)
    }
}
