//! [`HoloScanExec`]: reads a table's primary index at the transaction's
//! snapshot and decodes rows into Arrow batches.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::TryStreamExt;
use holo_kv::Transaction;

use super::pushdown::{KeySpan, SpanPlan};
use crate::catalog::TableEntry;
use crate::codec::key::prefix_end;
use crate::codec::row::RowDecoder;
use crate::error::SqlError;

/// Rows found through a secondary index: the index's spans are read first,
/// and the rows their entries point to are then read by primary key.
#[derive(Debug)]
pub struct IndexLookup {
    /// Position of the index in [`TableEntry::indexes`].
    pub index: usize,
    /// Spans of the index.
    pub plan: SpanPlan,
}

/// Scans spans of a table's primary index, or the rows a secondary index
/// leads to.
#[derive(Debug)]
pub struct HoloScanExec {
    entry: Arc<TableEntry>,
    plan: Arc<SpanPlan>,
    lookup: Option<Arc<IndexLookup>>,
    projection: Vec<usize>,
    schema: SchemaRef,
    limit: Option<usize>,
    txn: Arc<Transaction>,
    batch_size: usize,
    properties: Arc<PlanProperties>,
}

impl HoloScanExec {
    /// A scan of `plan`'s spans producing `projection` (table column
    /// indices), stopping after `limit` rows.
    pub fn new(
        entry: Arc<TableEntry>,
        plan: SpanPlan,
        projection: Vec<usize>,
        limit: Option<usize>,
        txn: Arc<Transaction>,
        batch_size: usize,
    ) -> Result<HoloScanExec> {
        let schema = Arc::new(Schema::new(
            projection
                .iter()
                .map(|&i| entry.schema.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        // Rows come out in primary-key order: declare the leading key
        // columns that survive the projection.
        let mut ordering = Vec::new();
        for &c in entry.codec.pk_indices() {
            match projection.iter().position(|&p| p == c) {
                Some(pos) => ordering.push(PhysicalSortExpr::new_default(Arc::new(Column::new(
                    entry.schema.field(c).name(),
                    pos,
                ))
                    as Arc<dyn PhysicalExpr>)),
                None => break,
            }
        }
        let eq = if ordering.is_empty() {
            EquivalenceProperties::new(schema.clone())
        } else {
            EquivalenceProperties::new_with_orderings(schema.clone(), [ordering])
        };
        let properties = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(HoloScanExec {
            entry,
            plan: Arc::new(plan),
            lookup: None,
            projection,
            schema,
            limit,
            txn,
            batch_size: batch_size.max(1),
            properties: Arc::new(properties),
        })
    }

    /// Reads the rows `lookup`'s index entries lead to instead of spans of
    /// the primary index.
    pub fn with_index_lookup(mut self, lookup: IndexLookup) -> HoloScanExec {
        self.lookup = Some(Arc::new(lookup));
        self
    }

    /// The pushed-down spans.
    pub fn spans(&self) -> &[KeySpan] {
        &self.plan.spans
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

impl DisplayAs for HoloScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols: Vec<&str> = self
            .projection
            .iter()
            .map(|&i| self.entry.schema.field(i).name().as_str())
            .collect();
        write!(f, "HoloScanExec: table={}", self.entry.desc.name)?;
        let spans = match &self.lookup {
            Some(l) => {
                let name = &self.entry.indexes[l.index].desc().name;
                write!(f, ", index={name}")?;
                &l.plan.description
            }
            None => &self.plan.description,
        };
        write!(f, ", projection=[{}], spans={spans}", cols.join(", "))?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

type Chunk = (Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

struct ScanState {
    /// The next chunk, fetched while the current one is decoded: `(start, task)`.
    prefetch: Option<(Vec<u8>, tokio::task::JoinHandle<holo_kv::Result<Chunk>>)>,
    txn: Arc<Transaction>,
    plan: Arc<SpanPlan>,
    span: usize,
    cursor: Option<Vec<u8>>,
    decoder: RowDecoder,
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
                KeySpan::Point(key) => {
                    if let Some(value) = self.txn.get(key).await.map_err(df)? {
                        self.decoder.push(key, &value).map_err(df)?;
                        self.remaining = self.remaining.map(|r| r - 1);
                    }
                    self.span += 1;
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

impl ExecutionPlan for HoloScanExec {
    fn name(&self) -> &str {
        "HoloScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "HoloScanExec has one partition, got {partition}"
            )));
        }
        let state = ScanState {
            prefetch: None,
            txn: self.txn.clone(),
            plan: self.plan.clone(),
            span: 0,
            cursor: None,
            decoder: self.entry.codec.decoder(
                self.projection.clone(),
                self.schema.clone(),
                self.batch_size,
            ),
            remaining: self.limit,
            batch_size: self.batch_size,
        };
        let Some(lookup) = self.lookup.clone() else {
            let stream = futures::stream::try_unfold(state, ScanState::next_batch);
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                stream,
            )));
        };
        let (txn, entry) = (self.txn.clone(), self.entry.clone());
        let stream = futures::stream::once(async move {
            let plan = resolve_lookup(txn, entry, lookup).await?;
            let mut state = state;
            state.plan = Arc::new(plan);
            Ok::<_, DataFusionError>(futures::stream::try_unfold(state, ScanState::next_batch))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }
}
