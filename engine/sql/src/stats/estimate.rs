//! Selectivity of predicates over one table from its statistics: the
//! fraction of rows a filter keeps, for comparisons of a column with
//! constants (`=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`,
//! `IS [NOT] NULL`) and their `AND`, `OR` and `NOT`. Equality uses the
//! most common values, then spreads the rest evenly over the other
//! distinct values; ranges use the histogram. Other predicates are
//! unknown (`None`).

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

use super::{ColumnStats, TableStats};
use crate::catalog::TableEntry;
use crate::codec::column::{ColumnReader, conform};
use crate::types::SqlType;

/// Selectivity of a predicate the statistics cannot judge (PostgreSQL
/// uses a third for ranges and far less for equality; a scan filter of
/// unknown form is taken as keeping a third of the rows).
pub const UNKNOWN: f64 = 1.0 / 3.0;

/// The column `expr` names (through casts), with its type and statistics.
fn column<'a>(
    entry: &TableEntry,
    stats: &'a TableStats,
    expr: &Expr,
) -> Option<(SqlType, &'a ColumnStats)> {
    let e = match expr {
        Expr::Cast(c) => c.expr.as_ref(),
        Expr::TryCast(c) => c.expr.as_ref(),
        other => other,
    };
    let Expr::Column(c) = e else {
        return None;
    };
    let col = entry.desc.columns.iter().find(|d| d.name == c.name)?;
    Some((col.ty, stats.column(col.id)?))
}

/// The key encoding of constant `expr` as a value of type `ty`.
fn encoded(expr: &Expr, ty: SqlType) -> Option<Vec<u8>> {
    let Expr::Literal(v, _) = expr else {
        return None;
    };
    if v.is_null() {
        return None;
    }
    let array = conform(&v.to_array().ok()?, ty).ok()?;
    let reader = ColumnReader::new(&array, ty).ok()?;
    if reader.is_null(0) {
        return None;
    }
    let mut out = Vec::new();
    reader.write_key(0, &mut out);
    Some(out)
}

fn mcv_total(s: &ColumnStats) -> f64 {
    s.mcv.iter().map(|(_, f)| f).sum()
}

/// Fraction of rows whose value is `v`.
fn eq(s: &ColumnStats, v: &[u8]) -> f64 {
    if let Some((_, f)) = s.mcv.iter().find(|(m, _)| m.as_slice() == v) {
        return *f;
    }
    let others = (s.distinct - s.mcv.len() as f64).max(1.0);
    ((1.0 - s.null_frac - mcv_total(s)).max(0.0) / others).min(1.0)
}

/// Fraction of rows whose value is below `v` (`inclusive`: or equal).
fn below(s: &ColumnStats, v: &[u8], inclusive: bool) -> f64 {
    let mcv: f64 = s
        .mcv
        .iter()
        .filter(|(m, _)| m.as_slice() < v || (inclusive && m.as_slice() == v))
        .map(|(_, f)| f)
        .sum();
    let rest = (1.0 - s.null_frac - mcv_total(s)).max(0.0);
    let h = &s.histogram;
    let hist = if h.len() < 2 {
        // No histogram: the values outside the MCVs are few; half of them.
        0.5
    } else if v <= h[0].as_slice() {
        0.0
    } else if v > h[h.len() - 1].as_slice() {
        1.0
    } else {
        let buckets = (h.len() - 1) as f64;
        // Bounds below `v`: `v` lies in the bucket after the last of them.
        let k = h.partition_point(|b| b.as_slice() < v) as f64;
        ((k - 0.5) / buckets).clamp(0.0, 1.0)
    };
    (mcv + rest * hist).clamp(0.0, 1.0)
}

fn flip(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::Eq,
        Operator::NotEq => Operator::NotEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

/// A comparison of a column with a constant.
fn compare(s: &ColumnStats, op: Operator, v: &[u8]) -> Option<f64> {
    let nonnull = 1.0 - s.null_frac;
    Some(match op {
        Operator::Eq => eq(s, v),
        Operator::NotEq => (nonnull - eq(s, v)).max(0.0),
        Operator::Lt => below(s, v, false),
        Operator::LtEq => below(s, v, true),
        Operator::Gt => (nonnull - below(s, v, true)).max(0.0),
        Operator::GtEq => (nonnull - below(s, v, false)).max(0.0),
        _ => return None,
    })
}

/// The fraction of `entry`'s rows that `expr` keeps, when the statistics
/// can tell.
pub fn selectivity(entry: &TableEntry, stats: &TableStats, expr: &Expr) -> Option<f64> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => {
                let (l, r) = (
                    selectivity(entry, stats, left).unwrap_or(UNKNOWN),
                    selectivity(entry, stats, right).unwrap_or(UNKNOWN),
                );
                Some(l * r)
            }
            Operator::Or => {
                if let Some(sel) = equalities(entry, stats, expr) {
                    return Some(sel);
                }
                let l = selectivity(entry, stats, left)?;
                let r = selectivity(entry, stats, right)?;
                Some((l + r - l * r).min(1.0))
            }
            op => {
                if let Some((ty, s)) = column(entry, stats, left)
                    && let Some(v) = encoded(right, ty)
                {
                    return compare(s, *op, &v);
                }
                let (ty, s) = column(entry, stats, right)?;
                let v = encoded(left, ty)?;
                compare(s, flip(*op)?, &v)
            }
        },
        Expr::Not(e) => selectivity(entry, stats, e).map(|s| 1.0 - s),
        Expr::IsNull(e) => column(entry, stats, e).map(|(_, s)| s.null_frac),
        Expr::IsNotNull(e) => column(entry, stats, e).map(|(_, s)| 1.0 - s.null_frac),
        Expr::InList(list) => {
            let (ty, s) = column(entry, stats, &list.expr)?;
            let mut values: Vec<Vec<u8>> = list
                .list
                .iter()
                .map(|e| encoded(e, ty))
                .collect::<Option<_>>()?;
            values.sort();
            values.dedup();
            let sel = values.iter().map(|v| eq(s, v)).sum::<f64>().min(1.0);
            Some(if list.negated {
                (1.0 - s.null_frac - sel).max(0.0)
            } else {
                sel
            })
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let (ty, s) = column(entry, stats, expr)?;
            let (lo, hi) = (encoded(low, ty)?, encoded(high, ty)?);
            let inside = (below(s, &hi, true) - below(s, &lo, false)).max(0.0);
            Some(if *negated {
                (1.0 - s.null_frac - inside).max(0.0)
            } else {
                inside
            })
        }
        Expr::Literal(ScalarValue::Boolean(Some(b)), _) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// `c = v1 OR c = v2 OR ...` on one column (what DataFusion makes of a
/// short `IN` list): the values' frequencies add up.
fn equalities(entry: &TableEntry, stats: &TableStats, expr: &Expr) -> Option<f64> {
    fn collect<'e>(e: &'e Expr, out: &mut Vec<(&'e Expr, &'e Expr)>) -> bool {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Or,
                right,
            }) => collect(left, out) && collect(right, out),
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => {
                out.push((left, right));
                true
            }
            _ => false,
        }
    }
    let mut terms = Vec::new();
    if !collect(expr, &mut terms) {
        return None;
    }
    let first = terms.first()?.0;
    let (ty, s) = column(entry, stats, first)?;
    let mut values = Vec::with_capacity(terms.len());
    for (c, v) in terms {
        if c != first {
            return None;
        }
        values.push(encoded(v, ty)?);
    }
    values.sort();
    values.dedup();
    Some(values.iter().map(|v| eq(s, v)).sum::<f64>().min(1.0))
}

/// The rows of `entry` that all of `filters` keep, estimated.
pub fn rows(entry: &TableEntry, stats: &TableStats, filters: &[&Expr]) -> f64 {
    let sel: f64 = filters
        .iter()
        .map(|f| selectivity(entry, stats, f).unwrap_or(UNKNOWN))
        .product();
    stats.row_count as f64 * sel
}
