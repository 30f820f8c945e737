//! [`HoloScanExec`]: reads a table's primary index at the transaction's
//! snapshot and decodes rows into Arrow batches.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};
use holo_kv::Transaction;

use super::access::IndexLookup;
use super::join_filter;
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
    /// Rows the planner expects (with statistics).
    est_rows: Option<f64>,
    metrics: ExecutionPlanMetricsSet,
    /// The predicates the scan was planned with (for re-planning its spans
    /// with a join's filter).
    filters: Vec<Expr>,
    /// A hash join's filter on this scan's join keys ([`join_filter`]).
    dynamic: Option<Arc<dyn PhysicalExpr>>,
    /// Whether rows come out in primary-key order (as declared).
    pk_ordered: bool,
}

/// What the streams of a scan read with.
struct Parts {
    entry: Arc<TableEntry>,
    txn: Arc<Transaction>,
    projection: Vec<usize>,
    schema: SchemaRef,
    limit: Option<usize>,
    batch_size: usize,
}

type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

/// The batches of `plan`'s spans, or of `lookup`'s index.
fn batches(parts: Parts, plan: Arc<SpanPlan>, lookup: Option<Arc<IndexLookup>>) -> BatchStream {
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
            est_rows: None,
            metrics: ExecutionPlanMetricsSet::new(),
            filters: Vec::new(),
            dynamic: None,
            pk_ordered: true,
        })
    }

    /// The scan remembering the predicates it was planned with.
    pub fn with_filters(mut self, filters: Vec<Expr>) -> HoloScanExec {
        self.filters = filters;
        self
    }

    /// A copy of the scan with join filter `dynamic` and row limit `limit`.
    fn copy(&self, dynamic: Option<Arc<dyn PhysicalExpr>>, limit: Option<usize>) -> HoloScanExec {
        HoloScanExec {
            entry: self.entry.clone(),
            plan: self.plan.clone(),
            lookup: self.lookup.clone(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            limit,
            txn: self.txn.clone(),
            batch_size: self.batch_size,
            properties: self.properties.clone(),
            est_rows: self.est_rows,
            metrics: ExecutionPlanMetricsSet::new(),
            filters: self.filters.clone(),
            dynamic,
            pk_ordered: self.pk_ordered,
        }
    }

    fn parts(&self) -> Parts {
        Parts {
            entry: self.entry.clone(),
            txn: self.txn.clone(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            limit: self.limit,
            batch_size: self.batch_size,
        }
    }

    /// The scan with the planner's estimate of its rows (shown by EXPLAIN
    /// and given to DataFusion as the scan's statistics).
    pub fn with_estimate(mut self, est_rows: Option<f64>) -> HoloScanExec {
        self.est_rows = est_rows;
        self
    }

    /// Reads the rows `lookup`'s index entries lead to instead of spans of
    /// the primary index.
    pub fn with_index_lookup(mut self, lookup: IndexLookup) -> HoloScanExec {
        if lookup.index_only {
            // Entries come in index order, not primary-key order.
            let properties = PlanProperties::new(
                EquivalenceProperties::new(self.schema.clone()),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            );
            self.properties = Arc::new(properties);
            self.pk_ordered = false;
        }
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

/// Counts `batch` in the scan's output rows (EXPLAIN ANALYZE).
fn counted(
    metrics: &BaselineMetrics,
    batch: datafusion::arrow::array::RecordBatch,
) -> datafusion::arrow::array::RecordBatch {
    metrics.record_output(batch.num_rows());
    batch
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
                if l.index_only {
                    write!(f, " (index only)")?;
                }
                &l.plan.description
            }
            None => &self.plan.description,
        };
        write!(f, ", projection=[{}], spans={spans}", cols.join(", "))?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        if let Some(rows) = self.est_rows {
            write!(f, ", est_rows={}", rows.round() as u64)?;
        }
        if let Some(d) = &self.dynamic {
            write!(f, ", join_filter={d}")?;
        }
        Ok(())
    }
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
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // The join that publishes the filter sees it used here.
        match &self.dynamic {
            Some(d) => f(d),
            None => Ok(TreeNodeRecursion::Continue),
        }
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
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let parts = self.parts();
        let stream = match self.dynamic.clone() {
            None => batches(parts, self.plan.clone(), self.lookup.clone()),
            Some(dynamic) => {
                let (filters, plan, lookup) =
                    (self.filters.clone(), self.plan.clone(), self.lookup.clone());
                let consumed = self.plan.consumed.clone();
                let index_only = !self.pk_ordered;
                futures::stream::once(async move {
                    let narrowed = join_filter::narrowed(
                        &parts.entry,
                        &filters,
                        &dynamic,
                        (&parts.schema, &parts.projection),
                        parts.txn.start_ts(),
                        &consumed,
                        index_only,
                    )
                    .await;
                    let (plan, lookup) = match narrowed {
                        Some(a) => (Arc::new(a.spans), a.lookup.map(Arc::new)),
                        None => (plan, lookup),
                    };
                    Ok::<_, DataFusionError>(batches(parts, plan, lookup))
                })
                .try_flatten()
                .boxed()
            }
        };
        let stream = stream.map_ok(move |b| counted(&baseline, b));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }

    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        // A join's filter on the keys narrows the spans; the join still
        // checks every row, so no filter is reported as applied here. A scan
        // with a row limit takes none: its first rows are not the first
        // matching ones.
        let dynamic =
            (phase == FilterPushdownPhase::Post && self.dynamic.is_none() && self.limit.is_none())
                .then(|| {
                    result
                        .parent_filters
                        .iter()
                        .find(|f| join_filter::useful(&self.entry, &self.schema, &f.filter))
                        .map(|f| f.filter.clone())
                })
                .flatten();
        let unsupported = vec![PushedDown::No; result.parent_filters.len()];
        let propagation = FilterPushdownPropagation::with_parent_pushdown_result(unsupported);
        Ok(match dynamic {
            Some(d) => propagation.with_updated_node(Arc::new(self.copy(Some(d), self.limit))),
            None => propagation,
        })
    }

    // Not `supports_limit_pushdown`: that says a limit may pass below this
    // node (to children it has none of), and DataFusion would drop it; a
    // limit reaches the scan through `with_fetch`.
    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let limit = match (self.limit, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Arc::new(self.copy(self.dynamic.clone(), limit)))
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        // A recursive query runs the plan again: the join that published
        // the filter makes a new one, and this one is stale.
        Ok(Arc::new(self.copy(None, self.limit)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some(rows) = self.est_rows {
            let rows = rows.round() as usize;
            stats.num_rows = Precision::Inexact(self.limit.map_or(rows, |l| l.min(rows)));
        }
        Ok(Arc::new(stats))
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }
}
