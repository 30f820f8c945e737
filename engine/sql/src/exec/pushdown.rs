//! Turns predicates on the primary key, or on a secondary index's key
//! columns, into key spans.
//!
//! Equality and `IN` lists on a prefix of the key columns, followed by an
//! optional range (`<`, `<=`, `>`, `>=`, `BETWEEN`) on the next key column,
//! become spans of the primary index. A predicate that is fully represented
//! by the spans is reported as exact pushdown, so DataFusion drops it from
//! its own filter; everything else stays with DataFusion.

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

use crate::catalog::TableEntry;
use crate::codec::column::{ColumnReader, conform};
use crate::codec::index::IndexCodec;
use crate::codec::key::{TAG_VALUE, prefix_end};
use crate::types::SqlType;

/// Most spans an `IN` list expansion may produce.
pub const MAX_SPANS: usize = 4096;

/// A part of the primary index to read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeySpan {
    /// Exactly one key (every key column fixed).
    Point(Vec<u8>),
    /// Keys in `[start, end)`.
    Range {
        /// Inclusive start.
        start: Vec<u8>,
        /// Exclusive end.
        end: Vec<u8>,
    },
}

impl KeySpan {
    fn start(&self) -> &[u8] {
        match self {
            KeySpan::Point(k) => k,
            KeySpan::Range { start, .. } => start,
        }
    }
}

/// The outcome of span planning.
#[derive(Debug, Clone)]
pub struct SpanPlan {
    /// Spans to read, sorted and disjoint.
    pub spans: Vec<KeySpan>,
    /// For each input predicate, whether the spans represent it exactly.
    pub consumed: Vec<bool>,
    /// What was pushed, for EXPLAIN.
    pub description: String,
}

#[derive(Debug, Clone)]
enum Bound {
    Eq(Vec<ScalarValue>),
    Lower(ScalarValue, bool),
    Upper(ScalarValue, bool),
    Between(ScalarValue, ScalarValue),
}

fn same_kind(lit: &DataType, col: &DataType) -> bool {
    use DataType as D;
    match (lit, col) {
        (D::Utf8 | D::Utf8View | D::LargeUtf8, D::Utf8) => true,
        (D::Binary | D::BinaryView | D::LargeBinary, D::Binary) => true,
        (D::Timestamp(u1, _), D::Timestamp(u2, _)) => u1 == u2,
        (a, b) => a == b,
    }
}

fn literal_for(expr: &Expr, ty: SqlType) -> Option<ScalarValue> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    if value.is_null() || !same_kind(&value.data_type(), &ty.arrow_type()) {
        return None;
    }
    value.cast_to(&ty.arrow_type()).ok()
}

fn column_position(expr: &Expr, names: &[&str]) -> Option<usize> {
    match expr {
        Expr::Column(c) => names.iter().position(|n| *n == c.name),
        _ => None,
    }
}

fn flip(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::Eq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

/// The key column a predicate constrains and how.
fn bound_of(expr: &Expr, names: &[&str], types: &[SqlType]) -> Option<(usize, Bound)> {
    match expr {
        // `k = 1 OR k = 2 OR ...` (how DataFusion rewrites short IN lists).
        Expr::BinaryExpr(BinaryExpr {
            op: Operator::Or, ..
        }) => {
            let mut disjuncts = Vec::new();
            collect_or(expr, &mut disjuncts);
            let mut pos = None;
            let mut values = Vec::with_capacity(disjuncts.len());
            for d in disjuncts {
                match bound_of(d, names, types)? {
                    (p, Bound::Eq(vs)) if pos.is_none_or(|q| q == p) => {
                        pos = Some(p);
                        values.extend(vs);
                    }
                    _ => return None,
                }
            }
            Some((pos?, Bound::Eq(values)))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (pos, lit, op) = match (column_position(left, names), column_position(right, names))
            {
                (Some(p), None) => (p, right.as_ref(), *op),
                (None, Some(p)) => (p, left.as_ref(), flip(*op)?),
                _ => return None,
            };
            let v = literal_for(lit, types[pos])?;
            let bound = match op {
                Operator::Eq => Bound::Eq(vec![v]),
                Operator::Gt => Bound::Lower(v, false),
                Operator::GtEq => Bound::Lower(v, true),
                Operator::Lt => Bound::Upper(v, false),
                Operator::LtEq => Bound::Upper(v, true),
                _ => return None,
            };
            Some((pos, bound))
        }
        Expr::InList(list) if !list.negated => {
            let pos = column_position(&list.expr, names)?;
            let values = list
                .list
                .iter()
                .map(|e| literal_for(e, types[pos]))
                .collect::<Option<Vec<_>>>()?;
            (!values.is_empty()).then_some((pos, Bound::Eq(values)))
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let pos = column_position(expr, names)?;
            Some((
                pos,
                Bound::Between(
                    literal_for(low, types[pos])?,
                    literal_for(high, types[pos])?,
                ),
            ))
        }
        _ => None,
    }
}

fn collect_or<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            collect_or(left, out);
            collect_or(right, out);
        }
        other => out.push(other),
    }
}

fn encode_value(v: &ScalarValue, ty: SqlType, out: &mut Vec<u8>) -> Option<()> {
    let array = v.to_array().ok()?;
    let array = conform(&array, ty).ok()?;
    let reader = ColumnReader::new(&array, ty).ok()?;
    if reader.is_null(0) {
        return None;
    }
    out.push(TAG_VALUE);
    reader.write_key(0, out);
    Some(())
}

fn with_value(prefix: &[u8], v: &ScalarValue, ty: SqlType, descending: bool) -> Option<Vec<u8>> {
    let mut k = prefix.to_vec();
    encode_value(v, ty, &mut k)?;
    if descending {
        k[prefix.len()..].iter_mut().for_each(|b| *b = !*b);
    }
    Some(k)
}

/// Plans the spans of `entry`'s primary index that `filters` allow.
pub fn plan_spans(entry: &TableEntry, filters: &[&Expr]) -> SpanPlan {
    let codec = &entry.codec;
    let pk = codec.pk_indices();
    let names: Vec<&str> = pk
        .iter()
        .map(|&c| codec.columns()[c].name.as_str())
        .collect();
    let types: Vec<SqlType> = pk.iter().map(|&c| codec.columns()[c].ty).collect();
    let descending = vec![false; pk.len()];
    plan_key_spans(
        &KeyShape {
            prefix: codec.index_prefix(),
            names: &names,
            types: &types,
            descending: &descending,
            points: true,
        },
        filters,
    )
}

/// The spans of secondary index `index` of `entry` that `filters` allow,
/// when they constrain its leading key column; always key ranges (an
/// entry key may continue past its key columns).
pub fn plan_index_spans(entry: &TableEntry, index: &IndexCodec, filters: &[&Expr]) -> SpanPlan {
    let columns = entry.codec.columns();
    let keys: Vec<(usize, bool)> = index.key_columns().collect();
    let names: Vec<&str> = keys
        .iter()
        .map(|&(p, _)| columns[p].name.as_str())
        .collect();
    let types: Vec<SqlType> = keys.iter().map(|&(p, _)| columns[p].ty).collect();
    let descending: Vec<bool> = keys.iter().map(|&(_, d)| d).collect();
    plan_key_spans(
        &KeyShape {
            prefix: index.prefix(),
            names: &names,
            types: &types,
            descending: &descending,
            points: false,
        },
        filters,
    )
}

/// An index's key as span planning sees it.
struct KeyShape<'a> {
    prefix: &'a [u8],
    names: &'a [&'a str],
    types: &'a [SqlType],
    descending: &'a [bool],
    /// Whether fixing every column names exactly one key.
    points: bool,
}

fn plan_key_spans(shape: &KeyShape<'_>, filters: &[&Expr]) -> SpanPlan {
    let (names, types) = (shape.names, shape.types);
    let bounds: Vec<Option<(usize, Bound)>> =
        filters.iter().map(|f| bound_of(f, names, types)).collect();
    let mut consumed = vec![false; filters.len()];
    let mut pushed: Vec<String> = Vec::new();
    let mut prefixes: Vec<Vec<u8>> = vec![shape.prefix.to_vec()];
    let mut spans: Option<Vec<KeySpan>> = None;
    let mut fixed = 0;

    for (pos, &ty) in types.iter().enumerate() {
        let eq = bounds.iter().enumerate().find_map(|(i, b)| match b {
            Some((p, Bound::Eq(values))) if *p == pos => Some((i, values)),
            _ => None,
        });
        if let Some((i, values)) = eq {
            if prefixes.len() * values.len() > MAX_SPANS {
                break;
            }
            let mut next = Vec::with_capacity(prefixes.len() * values.len());
            let mut ok = true;
            for p in &prefixes {
                for v in values {
                    match with_value(p, v, ty, shape.descending[pos]) {
                        Some(k) => next.push(k),
                        None => ok = false,
                    }
                }
            }
            if !ok {
                break;
            }
            next.sort();
            next.dedup();
            prefixes = next;
            consumed[i] = true;
            pushed.push(filters[i].to_string());
            fixed += 1;
            continue;
        }
        // A range on this column ends the span construction.
        let mut lower: Option<(usize, ScalarValue, bool)> = None;
        let mut upper: Option<(usize, ScalarValue, bool)> = None;
        for (i, b) in bounds.iter().enumerate() {
            match b {
                Some((p, Bound::Lower(v, inc))) if *p == pos && lower.is_none() => {
                    lower = Some((i, v.clone(), *inc));
                }
                Some((p, Bound::Upper(v, inc))) if *p == pos && upper.is_none() => {
                    upper = Some((i, v.clone(), *inc));
                }
                Some((p, Bound::Between(lo, hi)))
                    if *p == pos && lower.is_none() && upper.is_none() =>
                {
                    lower = Some((i, lo.clone(), true));
                    upper = Some((i, hi.clone(), true));
                }
                _ => {}
            }
        }
        // A range over a DESC column would run backwards: not pushed.
        if (lower.is_none() && upper.is_none()) || shape.descending[pos] {
            break;
        }
        let mut out = Vec::with_capacity(prefixes.len());
        let mut ok = true;
        for p in &prefixes {
            let start = match &lower {
                Some((_, v, inclusive)) => match with_value(p, v, ty, false) {
                    Some(k) if *inclusive => k,
                    Some(k) => prefix_end(&k),
                    None => {
                        ok = false;
                        break;
                    }
                },
                None => p.clone(),
            };
            let end = match &upper {
                Some((_, v, inclusive)) => match with_value(p, v, ty, false) {
                    Some(k) if *inclusive => prefix_end(&k),
                    Some(k) => k,
                    None => {
                        ok = false;
                        break;
                    }
                },
                None => prefix_end(p),
            };
            if start < end {
                out.push(KeySpan::Range { start, end });
            }
        }
        if ok {
            for (i, _, _) in lower.iter().chain(upper.iter()) {
                if !consumed[*i] {
                    consumed[*i] = true;
                    pushed.push(filters[*i].to_string());
                }
            }
            spans = Some(out);
        }
        break;
    }

    let spans = match spans {
        Some(s) => s,
        None if shape.points && fixed == types.len() => {
            prefixes.into_iter().map(KeySpan::Point).collect()
        }
        None => prefixes
            .into_iter()
            .map(|p| {
                let end = prefix_end(&p);
                KeySpan::Range { start: p, end }
            })
            .collect(),
    };
    let mut spans = spans;
    spans.sort_by(|a, b| a.start().cmp(b.start()));
    let kind = match spans.first() {
        _ if pushed.is_empty() => "full scan".to_string(),
        Some(KeySpan::Point(_)) if spans.len() == 1 => "point lookup".to_string(),
        Some(KeySpan::Point(_)) => format!("{} point lookups", spans.len()),
        _ => format!("{} key range(s)", spans.len()),
    };
    let description = if pushed.is_empty() {
        kind
    } else {
        format!("{kind} [{}]", pushed.join(" AND "))
    };
    SpanPlan {
        spans,
        consumed,
        description,
    }
}
