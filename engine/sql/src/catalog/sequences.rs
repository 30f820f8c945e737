//! Sequence descriptors in the catalog: created alone (CREATE SEQUENCE) or
//! with the table whose `SERIAL` columns own them, dropped alone or with
//! that table.

use std::sync::Arc;

use holo_kv::{KvError, Transaction};
use holo_txn_types::KeyError;

use super::descriptor::{Descriptor, SequenceDescriptor};
use super::keys::{desc_id_seq_key, descriptor_key, namespace_key, sequence_value_key};
use super::{Catalog, json, relation_exists, u64_value};
use crate::error::{SqlError, SqlResult, sqlstate};

impl Catalog {
    /// The sequence called `name` in `public`.
    pub fn sequence(&self, name: &str) -> Option<Arc<SequenceDescriptor>> {
        self.cache.read().sequences.get(name).cloned()
    }

    /// Every sequence, by name.
    pub fn sequences(&self) -> Vec<Arc<SequenceDescriptor>> {
        let mut all: Vec<_> = self.cache.read().sequences.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The node's blocks of sequence values.
    pub fn sequence_values(&self) -> &Arc<crate::sequences::Sequences> {
        &self.sequence_values
    }

    /// Takes `n` descriptor ids in `txn`; returns the first.
    pub(crate) async fn take_ids(&self, txn: &Transaction, n: u64) -> SqlResult<u32> {
        let next = u64_value(txn.get(&desc_id_seq_key()).await?, "descriptor id sequence")?;
        let last = next.saturating_add(n.saturating_sub(1));
        if u32::try_from(last).is_err() {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "descriptor ids exhausted",
            ));
        }
        txn.put(desc_id_seq_key(), (last + 1).to_be_bytes().to_vec())?;
        Ok(next as u32)
    }

    /// Writes sequence `seq` (its id assigned) in `txn`: name, descriptor
    /// and first state.
    pub(crate) fn put_sequence(
        &self,
        txn: &Transaction,
        seq: &SequenceDescriptor,
    ) -> SqlResult<()> {
        txn.insert(
            namespace_key(seq.parent_id, &seq.name),
            seq.id.to_be_bytes().to_vec(),
        )?;
        txn.insert(
            descriptor_key(seq.id),
            json(&Descriptor::Sequence(seq.clone()))?,
        )?;
        crate::sequences::initial_state(txn, seq)
    }

    /// Creates sequence `seq` (its id is assigned here). `Ok(false)` when
    /// the name is taken and `if_not_exists` is set.
    pub async fn create_sequence(
        &self,
        mut seq: SequenceDescriptor,
        if_not_exists: bool,
    ) -> SqlResult<bool> {
        if self.relation_exists(&seq.name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(relation_exists(&seq.name))
            };
        }
        let txn = self.begin().await?;
        seq.id = self.take_ids(&txn, 1).await?;
        self.put_sequence(&txn, &seq)?;
        self.bump_version(&txn).await?;
        match txn.commit().await {
            Ok(_) => {}
            Err(KvError::Key(KeyError::AlreadyExists { .. })) => {
                self.reload().await?;
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(relation_exists(&seq.name))
                };
            }
            Err(e) => return Err(e.into()),
        }
        self.reload().await?;
        Ok(true)
    }

    /// Deletes `seq` in `txn`: name, descriptor and state.
    pub(crate) fn delete_sequence(
        &self,
        txn: &Transaction,
        seq: &SequenceDescriptor,
    ) -> SqlResult<()> {
        txn.delete(namespace_key(seq.parent_id, &seq.name))?;
        txn.delete(descriptor_key(seq.id))?;
        txn.delete(sequence_value_key(seq.id))?;
        Ok(())
    }

    /// Drops the sequences `seqs` in one transaction.
    pub async fn drop_sequences(&self, seqs: &[Arc<SequenceDescriptor>]) -> SqlResult<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let txn = self.begin().await?;
        for seq in seqs {
            self.delete_sequence(&txn, seq)?;
        }
        self.bump_version(&txn).await?;
        txn.commit().await?;
        for seq in seqs {
            self.sequence_values.forget(seq.id);
        }
        self.reload().await
    }

    /// The sequences table `id`'s columns own.
    pub(crate) fn owned_sequences(&self, id: u32) -> Vec<Arc<SequenceDescriptor>> {
        self.cache
            .read()
            .sequences
            .values()
            .filter(|s| s.owned_by.as_ref().is_some_and(|o| o.table_id == id))
            .cloned()
            .collect()
    }
}
