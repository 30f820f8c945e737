//! What ALTER TABLE needs to know of stored SQL text: which columns a
//! CHECK expression names (to drop it with its column, rename a column in
//! it, and name a new constraint as PostgreSQL does), and the value a new
//! column's default gives the rows that exist before it.

use std::ops::ControlFlow;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::Schema;
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Ident, visit_expressions, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::ident_name;
use crate::catalog::descriptor::{ColumnDescriptor, TableDescriptor};
use crate::codec::column::{ColumnReader, conform};
use crate::error::{SqlError, SqlResult};

/// Parses a stored CHECK expression (written by HoloFusion, so valid).
fn parse_check(sql: &str) -> SqlResult<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::internal(format!("stored CHECK expression {sql}: {e}")))
}

/// The column an identifier (plain or qualified) names, as stored.
fn named_column(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Identifier(id) => Some(id),
        Expr::CompoundIdentifier(parts) => parts.last(),
        _ => None,
    }
}

/// The column names `expr` refers to, in order of appearance.
fn column_names(expr: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    let _ = visit_expressions(expr, |e| {
        if let Some(id) = named_column(e) {
            out.push(ident_name(id));
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// The columns stored CHECK `sql` refers to (none when it does not parse).
pub(crate) fn check_columns(sql: &str) -> Vec<String> {
    parse_check(sql).map_or_else(|_| Vec::new(), |e| column_names(&e))
}

/// Whether stored CHECK `sql` refers to column `column` (an unparsable
/// one counts as referring to it).
pub(super) fn check_references(sql: &str, column: &str) -> bool {
    parse_check(sql).map_or(true, |e| column_names(&e).iter().any(|c| c == column))
}

/// The first column of `desc` that `expr` refers to: PostgreSQL names a
/// CHECK constraint after it.
pub(super) fn first_column(expr: &Expr, desc: &TableDescriptor) -> Option<String> {
    column_names(expr)
        .into_iter()
        .find(|n| desc.column(n).is_some())
}

/// Stored CHECK `sql` with column `old` renamed to `new`.
pub(super) fn rename_in_check(sql: &str, old: &str, new: &str) -> SqlResult<String> {
    let mut expr = parse_check(sql)?;
    let _ = visit_expressions_mut(&mut expr, |e| {
        let id = match e {
            Expr::Identifier(id) => Some(id),
            Expr::CompoundIdentifier(parts) => parts.last_mut(),
            _ => None,
        };
        if let Some(id) = id
            && ident_name(id) == old
        {
            *id = Ident::with_quote('"', new);
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

/// The field payload of default `sql` of new column `column`, evaluated
/// once now (a `now()` default gives every existing row the same time, as
/// in PostgreSQL); `None` for a NULL default.
pub(super) fn missing_value(
    ctx: &SessionContext,
    column: &ColumnDescriptor,
    sql: &str,
) -> SqlResult<Option<Vec<u8>>> {
    let empty = DFSchema::empty();
    let expr = ctx
        .parse_sql_expr(sql, &empty)?
        .cast_to(&column.ty.arrow_type(), &empty)?;
    let state = ctx.state();
    let physical = crate::exec::fast::physical_expr(&state, expr, &empty)?;
    let batch = RecordBatch::try_new_with_options(
        std::sync::Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    let array = conform(&physical.evaluate(&batch)?.into_array(1)?, column.ty)?;
    let reader = ColumnReader::new(&array, column.ty)?;
    if reader.is_null(0) {
        return Ok(None);
    }
    let mut out = Vec::new();
    reader.write_value(0, &mut out);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_read_for_their_columns() {
        assert!(check_references("a > 0 AND \"B\" < 3", "B"));
        assert!(!check_references("a > 0", "b"));
        assert_eq!(
            rename_in_check("a > 0 AND t.a < b", "a", "z").unwrap(),
            "\"z\" > 0 AND t.\"z\" < b"
        );
    }
}
