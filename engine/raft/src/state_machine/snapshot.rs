//! Range snapshots: the whole range (its MVCC entries and state machine
//! state) as one encoded blob, built in order with applies and installed
//! in one RocksDB batch.

#![allow(clippy::result_large_err)]

use std::io::Cursor;

use holo_storage::RangeDescriptor;
use openraft::storage::Snapshot;
use openraft::{AnyError, RaftSnapshotBuilder, SnapshotMeta, StorageIOError};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::{RangeStateMachine, SResult, SmEvent, SmState, any, is_tombstoned};
use crate::TypeConfig;
use crate::codec::{decode, encode};
use crate::types::NodeAddr;

#[derive(Serialize, Deserialize)]
struct SnapshotBlob {
    desc: RangeDescriptor,
    tso_high_water_ms: u64,
    frozen: u64,
    aborted_merges: Vec<u64>,
    /// The sender's GC safe point: versions below it may be missing.
    gc_safe_point: u64,
    #[serde(with = "holo_txn_types::bytes::tagged")]
    entries: Vec<holo_storage::SpanEntry>,
}

/// The span a snapshot carries, read from the start of its data (the
/// descriptor is the blob's first field); `None` when it does not decode.
pub fn snapshot_descriptor(first_chunk: &[u8]) -> Option<RangeDescriptor> {
    decode::<RangeDescriptor>(first_chunk).ok()
}

impl RangeStateMachine {
    /// A builder holding a snapshot of the range as of now.
    pub(super) fn snapshot_builder(&self) -> RangeSnapshotBuilder {
        match self.build() {
            Ok(s) => RangeSnapshotBuilder {
                snapshot: Some(s),
                error: None,
            },
            Err(e) => RangeSnapshotBuilder {
                snapshot: None,
                error: Some(e.to_string()),
            },
        }
    }

    /// Exports and encodes the range's data and state.
    pub(super) fn build(&self) -> SResult<Snapshot<TypeConfig>> {
        let desc = self.state.desc.clone();
        let entries = self
            .store
            .export_span(&desc.start_key, &desc.end_key)
            .map_err(|e| StorageIOError::read_state_machine(any(e)))?;
        let blob = SnapshotBlob {
            desc,
            tso_high_water_ms: self.state.tso_high_water_ms,
            frozen: self.state.frozen,
            aborted_merges: self.state.aborted_merges.clone(),
            gc_safe_point: self.store.gc_safe_point().into_inner(),
            entries,
        };
        let data = encode(&blob).map_err(|e| StorageIOError::read_state_machine(any(e)))?;
        let index = self.state.applied.map_or(0, |l| l.index);
        let meta = SnapshotMeta {
            last_log_id: self.state.applied,
            last_membership: self.state.membership.clone(),
            snapshot_id: format!("r{}-{}-{}", self.range.0, index, data.len()),
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    /// Replaces the range's data and state with a received snapshot.
    pub(super) fn install(
        &mut self,
        meta: &SnapshotMeta<u64, NodeAddr>,
        data: &[u8],
    ) -> SResult<()> {
        let blob: SnapshotBlob = decode(data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), any(e)))?;
        // A range merged away here must not be filled again (a stale
        // replica elsewhere would overwrite the merged range's data).
        if is_tombstoned(&self.engine, self.range)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?
        {
            return Err(StorageIOError::write_snapshot(
                Some(meta.signature()),
                AnyError::error(format!("range {} was merged away on this node", self.range)),
            )
            .into());
        }
        self.store
            .advance_gc_safe_point(holo_txn_types::Timestamp::new(blob.gc_safe_point))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
        let mut batch = WriteBatch::default();
        self.store
            .import_span(
                &mut batch,
                &blob.desc.start_key,
                &blob.desc.end_key,
                &blob.entries,
            )
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
        self.state = SmState {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            desc: blob.desc.clone(),
            tso_high_water_ms: blob.tso_high_water_ms,
            frozen: blob.frozen,
            aborted_merges: blob.aborted_merges,
        };
        self.persist(&mut batch)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
        self.engine
            .write_with_sync(batch, true)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), any(e)))?;
        self.publish();
        let _ = self
            .events
            .send(SmEvent::SnapshotInstalled { desc: blob.desc });
        Ok(())
    }
}

/// Builds snapshots of a range (the data is taken when the builder is made,
/// in order with applies).
pub struct RangeSnapshotBuilder {
    snapshot: Option<Snapshot<TypeConfig>>,
    error: Option<String>,
}

impl RaftSnapshotBuilder<TypeConfig> for RangeSnapshotBuilder {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        match self.snapshot.take() {
            Some(s) => Ok(s),
            None => Err(StorageIOError::read_state_machine(AnyError::error(
                self.error
                    .take()
                    .unwrap_or_else(|| "snapshot already taken".into()),
            ))
            .into()),
        }
    }
}
