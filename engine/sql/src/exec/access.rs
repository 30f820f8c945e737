//! Access path of one table scan: spans of the primary key, a secondary
//! index, or the whole table. With statistics (`ANALYZE`) the cheapest by
//! estimated rows read wins: a row read through a secondary index (its
//! entry, then a point read of the row) costs [`LOOKUP_COST`] rows of a
//! scan, an entry of an index-only scan [`INDEX_ONLY_COST`]. Without
//! statistics a primary-key predicate wins, then the index
//! whose key the most predicates constrain (a unique one on a tie).

use datafusion::logical_expr::Expr;

use super::pushdown::{SpanPlan, plan_index_spans, plan_spans};
use crate::catalog::TableEntry;
use crate::stats::estimate;

/// Rows of a scan that one row read through a secondary index costs as
/// much as: each row is a point read of its own (measured with
/// `workloads/index_or_scan.yaml`: `docs/performance.md`, "Index or scan").
pub const LOOKUP_COST: f64 = 25.0;

/// What one entry of an index-only scan costs, in rows of a table scan
/// (measured with the same workload).
pub const INDEX_ONLY_COST: f64 = 2.0;

/// Tables are costed as holding at least this many rows: the statistics
/// of a table analyzed while nearly empty must not make a scan of it look
/// free once it has grown.
const MIN_ROWS: f64 = 1000.0;

/// Rows found through a secondary index: the index's spans are read first,
/// and the rows their entries point to are then read by primary key.
#[derive(Debug)]
pub struct IndexLookup {
    /// Position of the index in [`TableEntry::indexes`].
    pub index: usize,
    /// Spans of the index.
    pub plan: SpanPlan,
    /// Whether the entries hold every column the scan produces, so the
    /// rows are not read (an index-only scan).
    pub index_only: bool,
}

/// The chosen access path.
#[derive(Debug)]
pub struct Access {
    /// Spans of the primary index (the whole table when no predicate
    /// constrains the key).
    pub spans: SpanPlan,
    /// The secondary index to read instead, if one is cheaper.
    pub lookup: Option<IndexLookup>,
    /// Rows the scan is estimated to return (with statistics).
    pub est_rows: Option<f64>,
}

/// The filters among `filters` that `plan` consumed.
fn consumed<'a>(filters: &[&'a Expr], plan: &SpanPlan) -> Vec<&'a Expr> {
    filters
        .iter()
        .zip(&plan.consumed)
        .filter(|(_, c)| **c)
        .map(|(f, _)| *f)
        .collect()
}

/// The access path of a scan of `entry` under `filters`, at a transaction
/// reading at `snapshot` (an index not yet complete there is not read).
/// `projection` holds the table positions the scan produces: an index
/// whose entries hold them all is read alone (an index-only scan, costed
/// as a scan of its entries).
pub fn choose(
    entry: &TableEntry,
    filters: &[&Expr],
    projection: &[usize],
    snapshot: holo_txn_types::Timestamp,
) -> Access {
    let spans = plan_spans(entry, filters);
    let pk_used = spans.consumed.iter().any(|&c| c);
    let candidates: Vec<(usize, SpanPlan)> = entry
        .indexes
        .iter()
        .enumerate()
        .filter(|(_, i)| i.scannable() && i.readable_at(snapshot))
        .map(|(pos, i)| (pos, plan_index_spans(entry, i, filters)))
        .filter(|(_, p)| p.consumed.iter().any(|&c| c))
        .collect();
    let Some(stats) = entry.stats.as_deref() else {
        let lookup = if pk_used {
            None
        } else {
            candidates
                .into_iter()
                .map(|(pos, plan)| {
                    let used = plan.consumed.iter().filter(|&&c| c).count();
                    let unique = entry.indexes[pos].desc().unique;
                    let index_only = entry.indexes[pos].covers(projection);
                    let lookup = IndexLookup {
                        index: pos,
                        plan,
                        index_only,
                    };
                    ((used, unique, std::cmp::Reverse(pos)), lookup)
                })
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, l)| l)
        };
        return Access {
            spans,
            lookup,
            est_rows: None,
        };
    };
    let est_rows = Some(estimate::rows(entry, stats, filters));
    let scale = (stats.row_count as f64).max(MIN_ROWS) / (stats.row_count as f64).max(1.0);
    let rows_of = |plan: &SpanPlan| estimate::rows(entry, stats, &consumed(filters, plan)) * scale;
    let base = if pk_used {
        rows_of(&spans)
    } else {
        (stats.row_count as f64).max(MIN_ROWS)
    };
    let best = candidates
        .into_iter()
        .map(|(pos, plan)| {
            let index_only = entry.indexes[pos].covers(projection);
            let per_row = if index_only {
                INDEX_ONLY_COST
            } else {
                LOOKUP_COST
            };
            (rows_of(&plan) * per_row, pos, plan, index_only)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let lookup = match best {
        Some((cost, index, plan, index_only)) if cost < base => Some(IndexLookup {
            index,
            plan,
            index_only,
        }),
        _ => None,
    };
    Access {
        spans,
        lookup,
        est_rows,
    }
}
