//! Rewrites of the catalog queries clients send that DataFusion cannot
//! run as written, applied after datafusion-pg-catalog's own: a
//! `::regclass` cast of a column prints the relation's name (PostgreSQL's
//! output of a regclass), `generate_subscripts(a, 1)` becomes
//! `unnest(generate_series(1, array_length(a, 1)))`, an `EXISTS` in the
//! select list a count, and psql's trigger
//! query drops the column that looks up partition parents (HoloFusion has
//! neither triggers nor partitions).

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem, SetExpr,
    Statement, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Whether `ty` is `regclass` (bare or `pg_catalog.regclass`).
fn is_regclass(ty: &DataType) -> bool {
    match ty {
        DataType::Regclass => true,
        DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case("regclass")),
        _ => false,
    }
}

/// `sql` parsed as an expression (the rewrites build their result as
/// text: what they wrap prints as valid SQL).
fn expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// The single argument of function call `e` named `name` (any case).
fn arguments<'a>(e: &'a Expr, name: &str) -> Option<Vec<&'a Expr>> {
    let Expr::Function(f) = e else {
        return None;
    };
    let last = f.name.0.last()?.as_ident()?;
    if !last.value.eq_ignore_ascii_case(name) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// `[NOT] EXISTS (SELECT ... FROM f WHERE w)` as a value of the select
/// list (which DataFusion cannot plan there; psql's `\d <index>` has it):
/// `[NOT] coalesce((SELECT count(*) > 0 FROM f WHERE w), false)`.
fn exists_in_projection(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        let _ = visit_expressions_mut(e, |e| {
            if let Expr::Exists { subquery, negated } = &*e
                && plain_catalog_probe(subquery)
                && let SetExpr::Select(inner) = subquery.body.as_ref()
            {
                let from: Vec<String> = inner.from.iter().map(|f| f.to_string()).collect();
                let filter = inner
                    .selection
                    .as_ref()
                    .map_or(String::new(), |w| format!(" WHERE {w}"));
                let not = if *negated { "NOT " } else { "" };
                if let Some(r) = expr(&format!(
                    "{not}coalesce((SELECT count(*) > 0 FROM {}{filter}), false)",
                    from.join(", ")
                )) {
                    *e = r;
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
}

/// Whether `q` is `SELECT <constant> FROM <catalog tables> [WHERE ...]`
/// and nothing more: the form whose EXISTS is the count of its rows.
fn plain_catalog_probe(q: &Query) -> bool {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return false;
    };
    let constant = matches!(
        s.projection.as_slice(),
        [SelectItem::UnnamedExpr(Expr::Value(_))]
    );
    let catalog = s
        .from
        .iter()
        .all(|f| f.to_string().to_ascii_lowercase().contains("pg_"));
    constant
        && catalog
        && !s.from.is_empty()
        && q.with.is_none()
        && q.limit_clause.is_none()
        && q.order_by.is_none()
        && q.fetch.is_none()
        && s.having.is_none()
        && s.distinct.is_none()
        && matches!(&s.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(g, _) if g.is_empty())
}

/// The statement with the rewrites above.
pub(crate) fn rewrite(mut stmt: Statement) -> Statement {
    if let Statement::Query(q) = &mut stmt {
        exists_in_projection(q);
    }
    let _ = visit_expressions_mut(&mut stmt, |e| {
        let replacement = match &*e {
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if is_regclass(data_type) && !matches!(inner.as_ref(), Expr::Value(_)) => {
                expr(&format!("holo_relname({inner})"))
            }
            other => match arguments(other, "generate_subscripts").as_deref() {
                Some([array, dim]) => expr(&format!(
                    "unnest(generate_series(1, array_length({array}, {dim})))"
                )),
                _ => None,
            },
        };
        if let Some(r) = replacement {
            *e = r;
        }
        ControlFlow::<()>::Continue(())
    });
    stmt
}

/// psql's trigger query (`\d t` of a table with foreign keys): the
/// `parent` column reads a set-returning function `WITH ORDINALITY` inside
/// a correlated subquery; it is NULL for every trigger that is not a
/// partition's clone, so the whole expression becomes `NULL AS parent`.
/// psql's `\d+ t` lists storage options through an `array(SELECT ...)`
/// constructor; HoloFusion has none, so the list is empty text.
pub(crate) fn substitute(sql: &str) -> Cow<'_, str> {
    const START: &str = "CASE WHEN t.tgparentid != 0 THEN";
    const END: &str = "END AS parent";
    const OPTIONS: &str = "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')";
    let mut out = Cow::Borrowed(sql);
    if let (Some(s), Some(e)) = (sql.find(START), sql.find(END))
        && s < e
        && sql.contains("pg_partition_ancestors(t.tgrelid)")
    {
        out = Cow::Owned(format!(
            "{}NULL AS parent{}",
            &sql[..s],
            &sql[e + END.len()..]
        ));
    }
    if out.contains(OPTIONS) {
        out = Cow::Owned(out.replace(OPTIONS, "''"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> String {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        rewrite(stmts.into_iter().next().unwrap()).to_string()
    }

    #[test]
    fn catalog_forms_are_rewritten() {
        assert_eq!(
            one("SELECT conrelid::pg_catalog.regclass FROM pg_constraint"),
            "SELECT holo_relname(conrelid) FROM pg_constraint"
        );
        assert_eq!(
            one("SELECT a AND EXISTS (SELECT 1 FROM pg_c WHERE pg_c.x = i.y) AS d FROM i"),
            "SELECT a AND coalesce((SELECT count(*) > 0 FROM pg_c WHERE pg_c.x = i.y), false) AS d FROM i"
        );
        // Anything more than a probe of catalog rows is left alone.
        let agg = "SELECT EXISTS (SELECT max(x) FROM pg_c WHERE false) FROM i";
        assert_eq!(one(agg), agg);
        assert_eq!(
            one("SELECT generate_subscripts(i.indkey, 1) FROM pg_index AS i"),
            "SELECT unnest(generate_series(1, array_length(i.indkey, 1))) FROM pg_index AS i"
        );
        let trigger = "SELECT t.tgname, CASE WHEN t.tgparentid != 0 THEN (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.tgrelid) WITH ORDINALITY AS a(relid, depth)) END AS parent FROM pg_catalog.pg_trigger t";
        assert_eq!(
            substitute(trigger),
            "SELECT t.tgname, NULL AS parent FROM pg_catalog.pg_trigger t"
        );
    }
}
