//! [`Replica`]: one range on one node.

use std::sync::Arc;

use holo_storage::{MvccStore, RangeDescriptor, ReadOptions, ScanResult, WriteCommand};
use parking_lot::RwLock;

use crate::latch::{LatchKind, Latches, Span};
use crate::service::{KvWrite, RangeHeader, WriteResponse};
use crate::tso::TimestampOracle;
use crate::{KvError, Result};

/// A range served by this node: its descriptor, latches and the shared store.
pub struct Replica {
    desc: RwLock<RangeDescriptor>,
    latches: Arc<Latches>,
    store: Arc<MvccStore>,
    tso: Arc<dyn TimestampOracle>,
    node_id: u64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("desc", &*self.desc.read())
            .finish()
    }
}

impl Replica {
    /// A replica of `desc` on `node_id`.
    pub fn new(
        desc: RangeDescriptor,
        store: Arc<MvccStore>,
        tso: Arc<dyn TimestampOracle>,
        node_id: u64,
    ) -> Replica {
        Replica {
            desc: RwLock::new(desc),
            latches: Latches::new(),
            store,
            tso,
            node_id,
        }
    }

    /// The current descriptor.
    pub fn descriptor(&self) -> RangeDescriptor {
        self.desc.read().clone()
    }

    fn check(&self, header: &RangeHeader) -> Result<RangeDescriptor> {
        let desc = self.desc.read();
        if desc.id != header.range_id {
            return Err(KvError::RangeNotFound {
                range_id: header.range_id,
                node_id: self.node_id,
            });
        }
        if desc.epoch != header.epoch {
            return Err(KvError::EpochNotMatch {
                range_id: header.range_id,
                current: Some(Box::new(desc.clone())),
            });
        }
        Ok(desc.clone())
    }

    /// Reads one key at `read.read_ts`.
    pub async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>> {
        let desc = self.check(&header)?;
        let _latch = self
            .latches
            .acquire(vec![Span::point(&key)], LatchKind::Read)
            .await;
        Ok(self.store.get(&desc, &key, &read)?)
    }

    /// Scans `[start, end)` clamped to the range.
    pub async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult> {
        let desc = self.check(&header)?;
        let span = Span {
            start: start.clone(),
            end: end.clone(),
        };
        let _latch = self.latches.acquire(vec![span], LatchKind::Read).await;
        Ok(self.store.scan(&desc, &start, &end, &read, limit)?)
    }

    /// Applies a write under latches on its keys. A one-phase commit takes its
    /// commit timestamp inside the latches.
    pub async fn write(&self, header: RangeHeader, write: KvWrite) -> Result<WriteResponse> {
        let desc = self.check(&header)?;
        let _latch = self.latches.acquire_for(&write).await;
        let (cmd, commit_ts) = prepare_write(write, self.tso.as_ref()).await?;
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || store.apply(&desc, &cmd))
            .await
            .map_err(|e| KvError::Unavailable(format!("write task failed: {e}")))??;
        Ok(WriteResponse { result, commit_ts })
    }
}

/// The latches a write takes: its keys; a one-phase commit's also block
/// readers (its commit timestamp is taken inside them).
pub fn write_latch_spans(write: &KvWrite) -> (Vec<Span>, LatchKind) {
    match write {
        KvWrite::Command(cmd) => (
            cmd.keys().iter().map(|k| Span::point(k)).collect(),
            LatchKind::Write {
                blocks_reads: false,
            },
        ),
        KvWrite::OnePc { mutations, .. } => (
            mutations.iter().map(|m| Span::point(&m.key)).collect(),
            LatchKind::Write { blocks_reads: true },
        ),
    }
}

/// The storage command of a write; a one-phase commit takes its commit
/// timestamp from `tso` now (the caller holds its latches).
pub async fn prepare_write(
    write: KvWrite,
    tso: &dyn TimestampOracle,
) -> Result<(WriteCommand, Option<holo_txn_types::Timestamp>)> {
    Ok(match write {
        KvWrite::Command(cmd) => (cmd, None),
        KvWrite::OnePc {
            mutations,
            start_ts,
        } => {
            let commit_ts = tso.get_ts().await?;
            (
                WriteCommand::OnePc {
                    mutations,
                    start_ts,
                    commit_ts,
                },
                Some(commit_ts),
            )
        }
    })
}

impl Latches {
    /// Acquires the latches of `write` (see [`write_latch_spans`]).
    pub async fn acquire_for(self: &Arc<Self>, write: &KvWrite) -> crate::latch::LatchGuard {
        let (spans, kind) = write_latch_spans(write);
        self.acquire(spans, kind).await
    }
}
