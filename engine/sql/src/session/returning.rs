//! `INSERT/UPDATE/DELETE ... RETURNING`: the RETURNING list is planned as
//! a `SELECT list FROM target [AS alias]`, and run over the rows the
//! statement wrote (the new rows; a DELETE's old rows) in place of the
//! table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{LogicalPlan, TableScanBuilder};
use datafusion::sql::sqlparser::ast::{FromTable, SelectItem, Statement, TableObject};

use crate::error::{SqlError, SqlResult, sqlstate};

/// Takes the RETURNING list (and an INSERT's target alias) off `stmt`: the
/// statement to plan as DML, and the list as a query over the target,
/// `SELECT list FROM target [AS alias]` (`None` without RETURNING).
pub(crate) fn split(stmt: &Statement) -> SqlResult<(Statement, Option<Statement>)> {
    let mut stmt = stmt.clone();
    let (items, from) = match &mut stmt {
        Statement::Insert(ins) => {
            // The alias names the target in RETURNING only: the write is
            // planned without it.
            let alias = ins.table_alias.take();
            let Some(items) = ins.returning.take() else {
                return Ok((stmt, None));
            };
            let TableObject::TableName(name) = &ins.table else {
                return Err(SqlError::unsupported(
                    "INSERT ... RETURNING into a table function is not supported",
                ));
            };
            let from = match alias {
                Some(alias) => format!("{name} AS {}", alias.alias),
                None => name.to_string(),
            };
            (items, from)
        }
        Statement::Update(upd) => {
            let Some(items) = upd.returning.take() else {
                return Ok((stmt, None));
            };
            (items, upd.table.to_string())
        }
        Statement::Delete(del) => {
            let Some(items) = del.returning.take() else {
                return Ok((stmt, None));
            };
            let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                &del.from;
            let [table] = tables.as_slice() else {
                return Err(SqlError::unsupported(
                    "DELETE ... RETURNING from several tables is not supported",
                ));
            };
            (items, table.to_string())
        }
        _ => return Ok((stmt, None)),
    };
    if items.is_empty() {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            "syntax error at end of input: RETURNING needs a list",
        ));
    }
    let list: Vec<String> = items.iter().map(SelectItem::to_string).collect();
    let text = format!("SELECT {} FROM {from}", list.join(", "));
    let mut parsed = crate::parse::parse(&text, None)?;
    let select = match (parsed.pop(), parsed.is_empty()) {
        (Some(s @ Statement::Query(_)), true) => s,
        _ => {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("cannot read the RETURNING list as a query: {text}"),
            ));
        }
    };
    Ok((stmt, Some(select)))
}

/// `plan` (the planned RETURNING query) reading `rows` (columns in table
/// order, one set per batch) where it read the target table.
pub(crate) fn over_rows(plan: &LogicalPlan, rows: Vec<Vec<ArrayRef>>) -> SqlResult<LogicalPlan> {
    let mut rows = Some(rows);
    let mut replaced = false;
    // The statement's own FROM item only: subqueries of the list (inside
    // expressions) still read their tables.
    let plan = plan
        .clone()
        .transform_down(|node| match node {
            LogicalPlan::TableScan(scan) if !replaced => {
                replaced = true;
                let schema = scan.source.schema();
                let batches = rows
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|columns| RecordBatch::try_new(schema.clone(), columns))
                    .collect::<Result<Vec<_>, _>>()?;
                let table = MemTable::try_new(schema, vec![batches])?;
                let scan = TableScanBuilder::new(
                    scan.table_name.clone(),
                    provider_as_source(Arc::new(table)),
                )
                .with_projection(scan.projection.clone())
                .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    if !replaced {
        return Err(SqlError::internal("the RETURNING query reads no table"));
    }
    Ok(plan)
}
