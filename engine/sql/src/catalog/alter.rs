//! Changes of a stored table descriptor, the building block of online
//! schema changes: read, change and write it back in a transaction that
//! also bumps the table's and the catalog's versions.

use holo_kv::Transaction;

use super::descriptor::{Descriptor, TableDescriptor};
use super::keys::descriptor_key;
use super::{Catalog, TableEntry, json};
use crate::error::{SqlError, SqlResult};

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
