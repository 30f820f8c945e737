//! [`HoloScanExec`]: reads a table's primary index at the transaction's
//! snapshot and decodes rows into Arrow batches.

use std::fmt;
use std::sync::Arc;

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
use super::scan_read::{Parts, batches};
use crate::catalog::TableEntry;

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
