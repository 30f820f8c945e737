//! [`Catalog`]: table definitions persisted in HoloStore, cached in memory,
//! and exposed to DataFusion.

mod alter;
pub mod descriptor;
pub mod foreign_keys;
pub mod keys;
pub mod lease;
pub mod provider;
mod sequences;

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
use crate::codec::key::prefix_end;
use crate::codec::row::RowCodec;
use crate::error::{SqlError, SqlResult, sqlstate};
use descriptor::{
    DESCRIPTOR_FORMAT, DatabaseDescriptor, Descriptor, SchemaDescriptor, SequenceDescriptor,
    TableDescriptor,
};
use keys::{
    DATABASE_ID, DATABASE_NAME, FIRST_USER_ID, PUBLIC_SCHEMA_ID, PUBLIC_SCHEMA_NAME,
    catalog_version_key, desc_id_seq_key, descriptor_key, descriptor_prefix, namespace_key,
    stats_version_key,
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
    /// The foreign keys the table takes part in (set by the catalog load
    /// that links every table, [`TableEntry::with_links`]).
    pub links: foreign_keys::TableLinks,
    /// What the last ANALYZE found, if it ran.
    pub stats: Option<Arc<crate::stats::TableStats>>,
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
            links: foreign_keys::TableLinks::default(),
            stats: None,
        })
    }

    /// The entry with its foreign keys: the columns they need of an old
    /// row (referencing and referenced ones) join
    /// [`TableEntry::old_row_columns`].
    pub fn with_links(mut self, links: foreign_keys::TableLinks) -> TableEntry {
        let outbound = links.outbound.iter().flat_map(|l| l.child_columns.iter());
        let inbound = links.inbound.iter().flat_map(|l| l.parent_columns.iter());
        self.old_row_columns
            .extend(outbound.chain(inbound).copied());
        self.old_row_columns.sort_unstable();
        self.old_row_columns.dedup();
        self.links = links;
        self
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

/// 42P01 for a relation that does not exist.
pub fn relation_missing(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_TABLE,
        format!("relation \"{name}\" does not exist"),
    )
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
    sequences: HashMap<String, Arc<SequenceDescriptor>>,
}

/// The catalog of the database: loads descriptors from the store, applies
/// DDL transactionally and keeps an in-memory cache.
pub struct Catalog {
    version: std::sync::atomic::AtomicU64,
    /// The stored catalog version the cache was loaded at.
    stored_version: std::sync::atomic::AtomicU64,
    /// The statistics version the cache was loaded at.
    stats_version: std::sync::atomic::AtomicU64,
    kv: Arc<KvClient>,
    txn_options: TxnOptions,
    expr_ctx: SessionContext,
    cache: RwLock<Cache>,
    leases: Arc<lease::SchemaLeases>,
    /// Rows written per table by this node since its statistics were last
    /// collected here (for automatic ANALYZE).
    modified: parking_lot::Mutex<HashMap<u32, u64>>,
    /// This node's blocks of sequence values.
    sequence_values: Arc<crate::sequences::Sequences>,
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
            stats_version: std::sync::atomic::AtomicU64::new(0),
            sequence_values: crate::sequences::Sequences::new(kv.clone(), txn_options.clone()),
            kv,
            txn_options,
            expr_ctx: SessionContext::new(),
            cache: RwLock::new(Cache::default()),
            leases: lease::SchemaLeases::new(node_id),
            modified: parking_lot::Mutex::new(HashMap::new()),
        });
        // Column defaults (`nextval('t_id_seq')`) are planned here.
        for f in crate::sequences::udfs::functions(&catalog, None) {
            catalog.expr_ctx.register_udf(f.as_ref().clone());
        }
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
        let stats = u64_value(txn.get(&stats_version_key()).await?, "statistics version")?;
        if stored
            == self
                .stored_version
                .load(std::sync::atomic::Ordering::Acquire)
            && stats
                == self
                    .stats_version
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
        let stats_version = u64_value(txn.get(&stats_version_key()).await?, "statistics version")?;
        let prefix = descriptor_prefix();
        let end = prefix_end(&prefix);
        let mut start = prefix.clone();
        let mut tables = Vec::new();
        let mut sequences = HashMap::new();
        loop {
            let (pairs, next) = txn.scan_chunk(&start, &end, 1024).await?;
            for (_, value) in pairs {
                let desc: Descriptor = serde_json::from_slice(&value)
                    .map_err(|e| SqlError::internal(format!("corrupt descriptor: {e}")))?;
                match desc {
                    Descriptor::Table(t) => tables.push(t),
                    Descriptor::Sequence(s) => {
                        sequences.insert(s.name.clone(), Arc::new(s));
                    }
                    Descriptor::Database(_) | Descriptor::Schema(_) => {}
                }
            }
            match next {
                Some(n) => start = n,
                None => break,
            }
        }
        let mut stats = self.load_stats(&txn).await?;
        let mut links = foreign_keys::link_tables(&tables);
        let mut cache = Cache {
            sequences,
            ..Cache::default()
        };
        for t in tables {
            let table_links = links.remove(&t.id).unwrap_or_default();
            let mut entry = TableEntry::new(t, &self.expr_ctx)?.with_links(table_links);
            entry.stats = stats.remove(&entry.desc.id);
            let entry = Arc::new(entry);
            cache.by_id.insert(entry.desc.id, entry.clone());
            cache.by_name.insert(entry.desc.name.clone(), entry);
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
        self.stats_version
            .store(stats_version, std::sync::atomic::Ordering::Release);
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

    /// Notes `rows` rows written to table `id` by this node.
    pub fn note_writes(&self, id: u32, rows: u64) {
        if rows > 0 {
            *self.modified.lock().entry(id).or_default() += rows;
        }
    }

    /// Starts table `id`'s count of written rows again (its statistics
    /// were just collected).
    pub fn forget_writes(&self, id: u32) {
        self.modified.lock().remove(&id);
    }

    /// Tables whose rows written here since their last ANALYZE here
    /// exceed `due(table)`; their counts start again from zero.
    pub fn take_modified(&self, due: impl Fn(&TableEntry) -> u64) -> Vec<Arc<TableEntry>> {
        let mut modified = self.modified.lock();
        let mut out = Vec::new();
        modified.retain(|id, rows| {
            let Some(entry) = self.table_by_id(*id) else {
                return false;
            };
            if *rows < due(&entry) {
                return true;
            }
            out.push(entry);
            false
        });
        out
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
        let cache = self.cache.read();
        cache.sequences.contains_key(name)
            || cache.by_name.values().any(|t| {
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

    async fn bump_version(&self, txn: &Transaction) -> SqlResult<()> {
        let v = u64_value(txn.get(&catalog_version_key()).await?, "catalog version")?;
        txn.put(catalog_version_key(), (v + 1).to_be_bytes().to_vec())?;
        Ok(())
    }
}
