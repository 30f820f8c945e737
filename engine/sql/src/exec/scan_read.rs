//! How a scan reads: the spans of a plan (ranges chunk by chunk with the
//! next chunk prefetched, point keys a run at a time), the rows a
//! secondary index's entries lead to, or the entries alone, decoded into
//! batches.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use futures::{StreamExt, TryStreamExt};
use holo_kv::Transaction;

use super::access::IndexLookup;
use super::pushdown::{KeySpan, SpanPlan};
use crate::catalog::TableEntry;
use crate::codec::index_decode::IndexDecoder;
use crate::codec::key::prefix_end;
use crate::codec::row::RowDecoder;
use crate::error::SqlError;

/// What turns the pairs a scan reads into batches.
enum Decoder {
    /// Rows of the primary index.
    Row(RowDecoder),
    /// Entries of a secondary index (index-only scan).
    Index(IndexDecoder),
}

impl Decoder {
    fn rows(&self) -> usize {
        match self {
            Decoder::Row(d) => d.rows(),
            Decoder::Index(d) => d.rows(),
        }
    }

    fn push(&mut self, key: &[u8], value: &[u8]) -> crate::error::SqlResult<()> {
        match self {
            Decoder::Row(d) => d.push(key, value),
            Decoder::Index(d) => d.push(key, value),
        }
    }

    fn finish(&mut self) -> crate::error::SqlResult<datafusion::arrow::array::RecordBatch> {
        match self {
            Decoder::Row(d) => d.finish(),
            Decoder::Index(d) => d.finish(),
        }
    }
}

/// What the streams of a scan read with.
pub(super) struct Parts {
    pub(super) entry: Arc<TableEntry>,
    pub(super) txn: Arc<Transaction>,
    pub(super) projection: Vec<usize>,
    pub(super) schema: SchemaRef,
    pub(super) limit: Option<usize>,
    pub(super) batch_size: usize,
}

pub(super) type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

/// The batches of `plan`'s spans, or of `lookup`'s index.
pub(super) fn batches(
    parts: Parts,
    plan: Arc<SpanPlan>,
    lookup: Option<Arc<IndexLookup>>,
) -> BatchStream {
    let mut state = ScanState {
        prefetch: None,
        txn: parts.txn.clone(),
        plan,
        span: 0,
        cursor: None,
        decoder: Decoder::Row(parts.entry.codec.decoder(
            parts.projection.clone(),
            parts.schema.clone(),
            parts.batch_size,
        )),
        remaining: parts.limit,
        batch_size: parts.batch_size,
    };
    match lookup {
        None => futures::stream::try_unfold(state, ScanState::next_batch).boxed(),
        Some(l) if l.index_only => {
            let index = &parts.entry.indexes[l.index];
            state.plan = Arc::new(l.plan.clone());
            state.decoder = Decoder::Index(index.decoder(
                &parts.projection,
                parts.schema.clone(),
                parts.batch_size,
            ));
            futures::stream::try_unfold(state, ScanState::next_batch).boxed()
        }
        Some(l) => futures::stream::once(async move {
            let plan = resolve_lookup(parts.txn, parts.entry, l).await?;
            state.plan = Arc::new(plan);
            Ok::<_, DataFusionError>(futures::stream::try_unfold(state, ScanState::next_batch))
        })
        .try_flatten()
        .boxed(),
    }
}

/// The primary keys `lookup`'s index entries hold, as point spans in key
/// order.
async fn resolve_lookup(
    txn: Arc<Transaction>,
    entry: Arc<TableEntry>,
    lookup: Arc<IndexLookup>,
) -> Result<SpanPlan> {
    let index = &entry.indexes[lookup.index];
    let row_prefix = entry.codec.index_prefix();
    let mut keys = Vec::new();
    for span in &lookup.plan.spans {
        let (mut from, end) = match span {
            KeySpan::Range { start, end } => (start.clone(), end.clone()),
            KeySpan::Point(k) => (k.clone(), prefix_end(k)),
        };
        loop {
            let (pairs, next) = txn.scan_chunk(&from, &end, 1024).await.map_err(df)?;
            for (k, v) in &pairs {
                keys.push(index.row_key(row_prefix, k, v).map_err(df)?);
            }
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
    }
    keys.sort();
    keys.dedup();
    Ok(SpanPlan {
        spans: keys.into_iter().map(KeySpan::Point).collect(),
        consumed: Vec::new(),
        description: String::new(),
    })
}

type Chunk = (Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

/// Point reads of one scan in flight at once.
const POINT_READS: usize = 32;

struct ScanState {
    /// The next chunk, fetched while the current one is decoded: `(start, task)`.
    prefetch: Option<(Vec<u8>, tokio::task::JoinHandle<holo_kv::Result<Chunk>>)>,
    txn: Arc<Transaction>,
    plan: Arc<SpanPlan>,
    span: usize,
    cursor: Option<Vec<u8>>,
    decoder: Decoder,
    remaining: Option<usize>,
    batch_size: usize,
}

fn df(e: impl Into<SqlError>) -> DataFusionError {
    e.into().into_datafusion()
}

impl Drop for ScanState {
    fn drop(&mut self) {
        if let Some((_, task)) = self.prefetch.take() {
            task.abort();
        }
    }
}

impl ScanState {
    /// Reads until a batch is full or the spans are exhausted.
    async fn next_batch(
        mut self,
    ) -> Result<Option<(datafusion::arrow::array::RecordBatch, ScanState)>> {
        while self.span < self.plan.spans.len()
            && self.remaining != Some(0)
            && self.decoder.rows() < self.batch_size
        {
            let want = self.batch_size - self.decoder.rows();
            let want = self.remaining.map_or(want, |r| r.min(want));
            match &self.plan.spans[self.span] {
                KeySpan::Point(_) => {
                    // A run of point reads goes out at once (at most
                    // POINT_READS in flight), results in key order.
                    let spans = &self.plan.spans;
                    let run = spans[self.span..]
                        .iter()
                        .take(want.min(POINT_READS))
                        .take_while(|s| matches!(s, KeySpan::Point(_)))
                        .count();
                    let mut reads = Vec::with_capacity(run);
                    for span in &spans[self.span..self.span + run] {
                        if let KeySpan::Point(key) = span {
                            let txn = &self.txn;
                            reads.push(async move { (key, txn.get(key).await) });
                        }
                    }
                    let mut found = 0;
                    for (key, value) in futures::future::join_all(reads).await {
                        if let Some(value) = value.map_err(df)? {
                            self.decoder.push(key, &value).map_err(df)?;
                            found += 1;
                        }
                    }
                    self.remaining = self.remaining.map(|r| r - found);
                    self.span += run;
                }
                KeySpan::Range { start, end } => {
                    let from = self.cursor.take().unwrap_or_else(|| start.clone());
                    let (pairs, next) = match self.prefetch.take() {
                        Some((pf_from, task)) if pf_from == from => task
                            .await
                            .map_err(|e| {
                                DataFusionError::Execution(format!("scan task failed: {e}"))
                            })?
                            .map_err(df)?,
                        other => {
                            if let Some((_, task)) = other {
                                task.abort();
                            }
                            self.txn.scan_chunk(&from, end, want).await.map_err(df)?
                        }
                    };
                    // Fetch the next chunk while this one is decoded.
                    if self.remaining.is_none()
                        && pairs.len() <= want
                        && let Some(n) = &next
                    {
                        let (txn, from, end, size) =
                            (self.txn.clone(), n.clone(), end.clone(), self.batch_size);
                        let task =
                            tokio::spawn(async move { txn.scan_chunk(&from, &end, size).await });
                        self.prefetch = Some((n.clone(), task));
                    }
                    for (k, v) in pairs.iter().take(want) {
                        self.decoder.push(k, v).map_err(df)?;
                    }
                    self.remaining = self
                        .remaining
                        .map(|r| r.saturating_sub(pairs.len().min(want)));
                    match next {
                        Some(n) if pairs.len() <= want => self.cursor = Some(n),
                        Some(_) => {
                            // The overlay added rows beyond `want`; resume after the last one taken.
                            let mut resume = pairs[want - 1].0.clone();
                            resume.push(0);
                            self.cursor = Some(resume);
                        }
                        None if pairs.len() > want => {
                            let mut resume = pairs[want - 1].0.clone();
                            resume.push(0);
                            self.cursor = Some(resume);
                        }
                        None => self.span += 1,
                    }
                }
            }
        }
        if self.decoder.rows() == 0 {
            return Ok(None);
        }
        let batch = self.decoder.finish().map_err(df)?;
        Ok(Some((batch, self)))
    }
}
