//! Cluster-wide garbage collection of old MVCC versions.
//!
//! The safe point (below it no read is served and old versions may go) is
//! one value for the whole cluster, kept in the meta range. Every
//! `--gc-interval` the node leading the meta range runs a round:
//!
//! 1. **Prepare**: every live node lowers the candidate `now - --gc-ttl` to
//!    its oldest open transaction; then every node resolves the locks below
//!    that bound in the ranges it leads (a live lock lowers the bound below
//!    its transaction) and answers the spans it covered.
//! 2. **Advance**: when the spans cover the whole keyspace, the smallest
//!    bound becomes the safe point (it only rises).
//!
//! Every node then, on its own timer, raises its store's local safe point to
//! the cluster's and sweeps the ranges it leads: `Gc` commands through Raft
//! remove the versions nobody can read any more. Applying one raises the
//! replica's local safe point first, so every replica refuses reads and
//! prewrites below it from then on.

use std::sync::atomic::Ordering;

use holo_kv::KvError;
use holo_kv::lock_resolver::{Resolution, resolve_lock};
use holo_kv::service::{KvWrite, RangeHeader};
use holo_storage::{WriteCommand, WriteResult};
use holo_txn_types::Timestamp;

use crate::directory::NodeHandle;
use crate::meta;
use crate::node::ClusterNode;
use crate::rpc::{AdminRequest, Request, Response};

/// Keys per `Gc` command.
const GC_BATCH: usize = 1024;

impl ClusterNode {
    /// The cluster's GC safe point, from the meta range (zero before the
    /// first round).
    pub async fn cluster_gc_safe_point(&self) -> Result<Timestamp, KvError> {
        let value = self.meta().get(meta::gc_safe_point_key()).await?;
        Ok(value
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(Timestamp::ZERO, |b| Timestamp::new(u64::from_be_bytes(b))))
    }

    /// A prepare step at this node: the bound it allows below `bound` (its
    /// oldest open transaction); with `resolve`, also the spans of the
    /// ranges it leads whose locks below the bound it resolved (a live lock
    /// lowers the bound below its transaction).
    pub(crate) async fn gc_prepare(
        &self,
        bound: Timestamp,
        resolve: bool,
    ) -> Result<Response, KvError> {
        let kv = self.kv();
        let mut bound = match kv.active().oldest() {
            Err(()) => {
                return Err(KvError::Unavailable(
                    "a transaction is starting; the GC round retries later".into(),
                ));
            }
            Ok(Some(oldest)) => bound.min(oldest),
            Ok(None) => bound,
        };
        let mut spans = Vec::new();
        if !resolve {
            return Ok(Response::GcPrepared { bound, spans });
        }
        for r in self.replicas() {
            if !r.is_leader() || !r.initialized() || r.frozen() != 0 {
                continue;
            }
            // The store must hold everything the range committed.
            if r.ensure_readable().await.is_err() {
                continue;
            }
            let d = r.descriptor();
            let locks = holo_storage::blocking(|| {
                self.store()
                    .reader()
                    .scan_locks(&d.start_key, &d.end_key, bound, usize::MAX)
            })?;
            for (key, lock) in locks {
                match resolve_lock(kv.as_ref(), &lock.info(&key), Timestamp::ZERO).await? {
                    Resolution::Resolved => {}
                    // A live transaction below the bound: stop under it.
                    Resolution::Alive | Resolution::Pushed(_) => bound = bound.min(lock.start_ts),
                }
            }
            spans.push((d.start_key, d.end_key));
        }
        Ok(Response::GcPrepared { bound, spans })
    }

    /// Asks every live node to prepare below `bound`; returns the lowest
    /// bound and the spans covered.
    async fn gc_prepare_all(
        &self,
        mut bound: Timestamp,
        resolve: bool,
    ) -> Result<(Timestamp, Vec<(Vec<u8>, Vec<u8>)>), KvError> {
        let mut spans = Vec::new();
        for id in self.peers().live().into_keys() {
            match self
                .peers()
                .call(
                    id,
                    Request::from(AdminRequest::GcPrepare { bound, resolve }),
                )
                .await?
            {
                Response::GcPrepared { bound: b, spans: s } => {
                    bound = bound.min(b);
                    spans.extend(s);
                }
                other => {
                    return Err(KvError::Unavailable(format!(
                        "unexpected GC prepare answer {other:?}"
                    )));
                }
            }
        }
        Ok((bound, spans))
    }

    /// A round, at the meta range's leader: returns the new safe point, or
    /// `None` when it did not move. First every live node lowers the bound
    /// to its oldest open transaction (transactions starting later take
    /// newer timestamps), then every leaseholder resolves the locks below
    /// that bound; the safe point moves only if those ranges cover the
    /// whole keyspace.
    pub(crate) async fn gc_coordinate(&self) -> Result<Option<Timestamp>, KvError> {
        let start_ts = self.timestamp().await?;
        let ttl_ms = u64::try_from(self.config().gc_ttl.as_millis()).unwrap_or(u64::MAX);
        let bound = Timestamp::compose(start_ts.physical_ms().saturating_sub(ttl_ms), 0);
        let current = self.cluster_gc_safe_point().await?;
        if bound <= current {
            return Ok(None);
        }
        let (bound, _) = self.gc_prepare_all(bound, false).await?;
        if bound <= current {
            return Ok(None);
        }
        let (bound, mut spans) = self.gc_prepare_all(bound, true).await?;
        spans.sort();
        let mut covered_to: Option<Vec<u8>> = Some(Vec::new());
        for (start, end) in spans {
            let Some(to) = &covered_to else { break };
            if start > *to {
                break;
            }
            if end.is_empty() {
                covered_to = None;
            } else if end > *to {
                covered_to = Some(end);
            }
        }
        if let Some(to) = covered_to {
            return Err(KvError::Unavailable(format!(
                "no leaseholder covered the keys from {to:02x?} during the GC round"
            )));
        }
        if bound <= current {
            return Ok(None);
        }
        // Written in a transaction that started before the reads above: a
        // concurrent round's write makes this one conflict.
        self.meta()
            .write(
                vec![(
                    meta::gc_safe_point_key(),
                    Some(bound.into_inner().to_be_bytes().to_vec()),
                )],
                start_ts,
            )
            .await?;
        Ok(Some(bound))
    }

    /// Raises the local safe point to the cluster's and removes the versions
    /// below it in the ranges this node leads. Returns the versions removed.
    pub(crate) async fn gc_sweep(&self) -> Result<usize, KvError> {
        let safe_point = self.cluster_gc_safe_point().await?;
        if safe_point == Timestamp::ZERO {
            return Ok(0);
        }
        if safe_point > self.store().gc_safe_point() {
            self.store().advance_gc_safe_point(safe_point)?;
        }
        let tso = NodeHandle::new_from(self);
        let mut removed = 0;
        for r in self.replicas() {
            if !r.is_leader() || !r.initialized() || r.frozen() != 0 {
                continue;
            }
            let d = r.descriptor();
            let header = RangeHeader::for_range(&d);
            let mut from = d.start_key.clone();
            loop {
                let (keys, next) = holo_storage::blocking(|| {
                    self.store()
                        .reader()
                        .gc_candidates(&from, &d.end_key, safe_point, GC_BATCH)
                })?;
                if !keys.is_empty() {
                    let cmd = WriteCommand::Gc { keys, safe_point };
                    match r.write(header, KvWrite::Command(cmd), &tso).await {
                        Ok(written) => {
                            if let WriteResult::GcRemoved(n) = written.result {
                                removed += n;
                            }
                        }
                        // The range split, moved or lost its lease: the
                        // next round sweeps it; go on with the others.
                        Err(e) => {
                            tracing::debug!(range = %d.id, error = %e, "GC sweep of a range stopped");
                            break;
                        }
                    }
                }
                match next {
                    Some(n) => from = n,
                    None => break,
                }
                tokio::task::yield_now().await;
            }
        }
        self.gc_removed.fetch_add(removed as u64, Ordering::Relaxed);
        Ok(removed)
    }
}
