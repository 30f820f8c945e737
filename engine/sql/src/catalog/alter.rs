//! Changes of a stored table descriptor, the building block of online
//! schema changes: read, change and write it back in a transaction that
//! also bumps the table's and the catalog's versions; DROP TABLE.

use holo_kv::Transaction;

use super::descriptor::{Descriptor, SequenceDescriptor, TableDescriptor};
use std::sync::Arc;

use holo_kv::KvError;
use holo_txn_types::KeyError;

use super::keys::{
    catalog_version_key, descriptor_key, namespace_key, stats_version_key, table_stats_key,
    table_stats_prefix,
};
use super::{Catalog, TableEntry, json, relation_exists, u64_value};
use crate::codec::key::{prefix_end, table_prefix};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::stats::TableStats;

impl Catalog {
    /// The stored descriptor of table `id` as `txn` sees it; `None` when the
    /// table was dropped.
    pub(crate) async fn stored_table(
        &self,
        txn: &Transaction,
        id: u32,
    ) -> SqlResult<Option<TableDescriptor>> {
        let Some(bytes) = txn.get(&descriptor_key(id)).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(Descriptor::Table(t)) => Ok(Some(t)),
            Ok(_) => Err(SqlError::internal(format!(
                "descriptor {id} is not a table"
            ))),
            Err(e) => Err(SqlError::internal(format!("corrupt descriptor {id}: {e}"))),
        }
    }

    /// Writes `desc` (changed from its stored form) in `txn` with its
    /// version and the catalog's bumped; the whole entry is validated
    /// first. The caller commits, then calls [`Catalog::reload`].
    pub(crate) async fn write_table(
        &self,
        txn: &Transaction,
        mut desc: TableDescriptor,
    ) -> SqlResult<TableDescriptor> {
        desc.version += 1;
        TableEntry::new(desc.clone(), &self.expr_ctx)?;
        txn.put(
            descriptor_key(desc.id),
            json(&Descriptor::Table(desc.clone()))?,
        )?;
        self.bump_version(txn).await?;
        Ok(desc)
    }
}

impl Catalog {
    /// The KV client the catalog reads and writes through.
    pub(crate) fn kv(&self) -> &std::sync::Arc<holo_kv::KvClient> {
        &self.kv
    }
}

impl Catalog {
    /// Locks, in `txn`, the descriptor of every table `desc`'s foreign keys
    /// reference (42P01 for one dropped meanwhile): a concurrent DROP TABLE
    /// of a referenced table then conflicts with the new constraint.
    pub(crate) async fn lock_parents(
        &self,
        txn: &Transaction,
        desc: &TableDescriptor,
    ) -> SqlResult<()> {
        for fk in desc
            .foreign_keys
            .iter()
            .filter(|fk| fk.parent_id != desc.id)
        {
            let key = descriptor_key(fk.parent_id);
            if txn.get(&key).await?.is_none() {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("the table referenced by \"{}\" was dropped", fk.name),
                ));
            }
            txn.lock(key)?;
        }
        Ok(())
    }

    /// Drops table `name` and removes its data. Returns `Ok(false)` when it
    /// does not exist and `if_exists` is set. Foreign keys of other tables
    /// that reference it keep it (2BP01), unless `cascade` drops them too.
    pub async fn drop_table(&self, name: &str, if_exists: bool, cascade: bool) -> SqlResult<bool> {
        // The check of the tables that reference it reads a current cache.
        self.refresh_if_stale().await?;
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
        // A schema change committed since the cache was loaded (a new
        // table referencing this one): check again on the new catalog.
        let version = u64_value(txn.get(&catalog_version_key()).await?, "catalog version")?;
        if version != self.stored_version() {
            txn.rollback();
            self.reload().await?;
            return Box::pin(self.drop_table(name, if_exists, cascade)).await;
        }
        let linked = !entry.links.is_empty();
        let children: Vec<u32> = entry
            .links
            .inbound
            .iter()
            .map(|l| l.child_id)
            .filter(|&id| id != desc.id)
            .collect();
        if !children.is_empty() {
            let deps = super::foreign_keys::dependents(&entry.links, |l| l.child_id != desc.id);
            if !cascade {
                return Err(super::foreign_keys::still_referenced(
                    &format!("table {name}"),
                    &format!("table {name}"),
                    &deps,
                ));
            }
            let mut done = std::collections::HashSet::new();
            for child in children {
                if !done.insert(child) {
                    continue;
                }
                if let Some(mut c) = self.stored_table(&txn, child).await? {
                    c.foreign_keys.retain(|fk| fk.parent_id != desc.id);
                    self.write_table(&txn, c).await?;
                }
            }
        }
        txn.delete(namespace_key(desc.parent_id, &desc.name))?;
        for index in &desc.indexes {
            txn.delete(namespace_key(desc.parent_id, &index.name))?;
        }
        txn.delete(descriptor_key(desc.id))?;
        txn.delete(table_stats_key(desc.id))?;
        let owned = self.owned_sequences(desc.id);
        for seq in &owned {
            self.delete_sequence(&txn, seq)?;
        }
        self.bump_version(&txn).await?;
        txn.commit().await?;
        for seq in &owned {
            self.sequence_values.forget(seq.id);
        }
        if linked || !owned.is_empty() {
            self.reload().await?;
        } else {
            {
                let mut cache = self.cache.write();
                cache.by_id.remove(&desc.id);
                cache.by_name.remove(&desc.name);
            }
            self.bump_local_version();
        }
        // The table id is never reused, so its data can go physically.
        let prefix = table_prefix(desc.id);
        if let Err(e) = self.kv.clear_range(&prefix, &prefix_end(&prefix)).await {
            tracing::warn!(table = %desc.name, error = %e, "clearing dropped table data failed");
        }
        Ok(true)
    }
}

impl Catalog {
    /// Every table's statistics, as `txn` sees them (a record that does
    /// not parse is skipped: statistics only guide plans).
    pub(crate) async fn load_stats(
        &self,
        txn: &Transaction,
    ) -> SqlResult<std::collections::HashMap<u32, std::sync::Arc<TableStats>>> {
        let mut out = std::collections::HashMap::new();
        for (key, value) in super::scan_prefix(txn, table_stats_prefix()).await? {
            match serde_json::from_slice::<TableStats>(&value) {
                Ok(stats) => {
                    out.insert(stats.table_id, std::sync::Arc::new(stats));
                }
                Err(e) => {
                    tracing::warn!(key = ?key, error = %e, "unreadable table statistics skipped")
                }
            }
        }
        Ok(out)
    }

    /// Stores `stats` and makes every node load them: the statistics
    /// version moves (not the catalog's, so no schema change waits or
    /// conflicts), nodes reload, and prepared plans are made again.
    pub(crate) async fn put_stats(&self, stats: &TableStats) -> SqlResult<()> {
        let mut attempt = 0;
        loop {
            let txn = self.begin().await?;
            let key = stats_version_key();
            let v = match txn.get(&key).await? {
                Some(b) => b
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| SqlError::internal("corrupt statistics version"))?,
                None => 0,
            };
            txn.put(key, (v + 1).to_be_bytes().to_vec())?;
            txn.put(table_stats_key(stats.table_id), json(stats)?)?;
            match txn.commit().await {
                Ok(_) => break,
                // Another ANALYZE moved the version meanwhile.
                Err(e)
                    if attempt < 10
                        && SqlError::from(e.clone()).code == sqlstate::SERIALIZATION_FAILURE =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.reload().await
    }
}

impl Catalog {
    /// Creates a table from `desc` (its id and version are assigned here),
    /// with the sequences its `SERIAL` columns own. Returns `Ok(false)`
    /// when the name exists and `if_not_exists` is set.
    pub async fn create_table(
        &self,
        mut desc: TableDescriptor,
        mut serials: Vec<SequenceDescriptor>,
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
        let id = self.take_ids(&txn, 1 + serials.len() as u64).await?;
        desc.id = id;
        desc.version = 1;
        // A self-reference was declared before the table had an id (0).
        for fk in desc.foreign_keys.iter_mut().filter(|fk| fk.parent_id == 0) {
            fk.parent_id = id;
        }
        // Validate the whole entry (codec, defaults) before writing anything.
        let entry = Arc::new(TableEntry::new(desc.clone(), &self.expr_ctx)?);
        for (seq, seq_id) in serials.iter_mut().zip(id + 1..) {
            seq.id = seq_id;
            if let Some(owner) = &mut seq.owned_by {
                owner.table_id = id;
            }
            self.put_sequence(&txn, seq)?;
        }
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
        self.lock_parents(&txn, &desc).await?;
        self.bump_version(&txn).await?;
        match txn.commit().await {
            Ok(_) => {}
            Err(KvError::Key(KeyError::AlreadyExists { key }))
                if let Some(name) = desc
                    .indexes
                    .iter()
                    .map(|i| &i.name)
                    .chain(serials.iter().map(|s| &s.name))
                    .find(|n| key == namespace_key(desc.parent_id, n)) =>
            {
                self.reload().await?;
                return Err(relation_exists(name));
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
        if !desc.foreign_keys.is_empty() || !serials.is_empty() {
            // The referenced tables' entries learn of the new constraints;
            // the cache, of the new sequences.
            self.reload().await?;
            return Ok(true);
        }
        {
            let mut cache = self.cache.write();
            cache.by_id.insert(id, entry.clone());
            cache.by_name.insert(desc.name.clone(), entry);
        }
        self.bump_local_version();
        Ok(true)
    }
}
