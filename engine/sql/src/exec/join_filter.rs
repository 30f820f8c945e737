//! Joins that read only the keys they need. Once DataFusion's hash join
//! has read its build side, it publishes a dynamic filter on the probe
//! side's join keys: an `IN` list of them (up to 150 distinct keys) and
//! their bounds. A HoloFusion scan on the probe side takes that filter
//! (filter pushdown, post phase) and, when its execution starts, turns it
//! into spans of the primary key or of a secondary index: point reads of
//! the matching rows instead of the whole table, as CockroachDB's lookup
//! join reads an index for the keys of the other side.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr as PhysicalBinary, Column, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use futures::FutureExt;

use super::access::{Access, choose};
use super::pushdown::plan_spans;
use crate::catalog::TableEntry;

/// The table column `c` (of the scan's output `schema`) names.
fn column_name<'a>(c: &'a Column, schema: &'a SchemaRef) -> &'a str {
    schema
        .fields()
        .get(c.index())
        .map_or(c.name(), |f| f.name().as_str())
}

/// Whether `filter` is a join's dynamic filter on a column that leads the
/// primary key or a secondary index of `entry`: one that can become spans.
pub(crate) fn useful(
    entry: &TableEntry,
    schema: &SchemaRef,
    filter: &Arc<dyn PhysicalExpr>,
) -> bool {
    let Some(d) = filter.downcast_ref::<DynamicFilterPhysicalExpr>() else {
        return false;
    };
    let leading: Vec<&str> = entry
        .codec
        .pk_indices()
        .first()
        .map(|&p| entry.desc.columns[p].name.as_str())
        .into_iter()
        .chain(
            entry
                .indexes
                .iter()
                .filter(|i| i.scannable())
                .filter_map(|i| {
                    i.key_columns()
                        .next()
                        .map(|(p, _)| entry.desc.columns[p].name.as_str())
                }),
        )
        .collect();
    d.children().iter().any(|c| {
        c.downcast_ref::<Column>()
            .is_some_and(|c| leading.contains(&column_name(c, schema)))
    })
}

fn literal(e: &Arc<dyn PhysicalExpr>) -> Option<Expr> {
    let l = e.downcast_ref::<Literal>()?;
    Some(Expr::Literal(l.value().clone(), None))
}

fn column(e: &Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> Option<Expr> {
    let c = e.downcast_ref::<Column>()?;
    Some(Expr::Column(datafusion::common::Column::new_unqualified(
        column_name(c, schema),
    )))
}

/// The conjuncts of `e` that span planning understands (`c IN (...)`,
/// `c <op> constant`), as logical expressions over the table's columns.
fn conjuncts(e: &Arc<dyn PhysicalExpr>, schema: &SchemaRef, out: &mut Vec<Expr>) {
    if let Some(b) = e.downcast_ref::<PhysicalBinary>() {
        if *b.op() == Operator::And {
            conjuncts(b.left(), schema, out);
            conjuncts(b.right(), schema, out);
            return;
        }
        let op = *b.op();
        if matches!(
            op,
            Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        ) && let (Some(c), Some(v)) = (column(b.left(), schema), literal(b.right()))
        {
            out.push(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(c),
                op,
                Box::new(v),
            )));
        }
        return;
    }
    if let Some(list) = e.downcast_ref::<InListExpr>()
        && !list.negated()
        && let Some(c) = column(list.expr(), schema)
        && let Some(values) = list.list().iter().map(literal).collect::<Option<Vec<_>>>()
    {
        out.push(Expr::InList(InList::new(Box::new(c), values, false)));
    }
}

/// The access path of a scan of `entry` (output `schema`, table columns
/// `projection`) under its own `filters` and the final value of join
/// filter `dynamic`; `None` when that filter tells nothing spans can use.
/// `consumed` says which of `filters` the scan's own spans represent
/// (DataFusion no longer checks those): when any did, only primary-key
/// spans that still represent every one of them are taken. Without
/// `index_only`, an index is read for row keys (the scan promised
/// primary-key order).
pub(crate) async fn narrowed(
    entry: &TableEntry,
    filters: &[Expr],
    dynamic: &Arc<dyn PhysicalExpr>,
    (schema, projection): (&SchemaRef, &[usize]),
    snapshot: holo_txn_types::Timestamp,
    consumed: &[bool],
    index_only: bool,
) -> Option<Access> {
    let d = dynamic.downcast_ref::<DynamicFilterPhysicalExpr>()?;
    // A hash join reads its probe side only once its filter is final; a
    // filter that is not (a sort's or an aggregate's, which become final
    // only after reading everything) tells nothing yet.
    d.wait_complete().now_or_never()?;
    let current = d.current().ok()?;
    let mut derived = Vec::new();
    conjuncts(&current, schema, &mut derived);
    if derived.is_empty() {
        return None;
    }
    let all: Vec<&Expr> = filters.iter().chain(derived.iter()).collect();
    if consumed.iter().any(|&c| c) {
        let spans = plan_spans(entry, &all);
        let kept = consumed
            .iter()
            .zip(&spans.consumed)
            .all(|(&before, &now)| !before || now);
        return kept.then_some(Access {
            spans,
            lookup: None,
            est_rows: None,
        });
    }
    let mut access = choose(entry, &all, projection, snapshot);
    if let Some(l) = access.lookup.as_mut()
        && !index_only
    {
        l.index_only = false;
    }
    Some(access)
}
