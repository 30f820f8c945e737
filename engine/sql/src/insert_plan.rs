//! `INSERT INTO t [(cols)] <query>` whose query holds a `VALUES` list below
//! its top (`SELECT p0 FROM (VALUES (...), ...) AS v(p0, n) ORDER BY n`, as
//! SQLAlchemy batches inserts): DataFusion plans every `VALUES` of an
//! INSERT's source against the target's columns, so such a list fails
//! ("Inconsistent data length"). Here the source is planned as a query of
//! its own and the insert built over it as DataFusion builds it: listed
//! columns from the source (cast to the column type), the others from
//! their defaults.

use std::sync::Arc;

use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Insert, SetExpr, Statement, TableObject};

use crate::catalog::relation_missing;
use crate::error::{SqlError, SqlResult, sqlstate};

/// Whether `ins` is planned here: a query source that is not itself a
/// `VALUES` list but holds one.
pub fn takes(ins: &Insert) -> bool {
    let Some(source) = &ins.source else {
        return false;
    };
    !matches!(source.body.as_ref(), SetExpr::Values(_))
        && source.to_string().to_ascii_uppercase().contains("VALUES")
}

/// The plan of `ins` (see the module).
pub async fn plan(state: &SessionState, ins: &Insert) -> SqlResult<LogicalPlan> {
    let (Some(source), TableObject::TableName(name)) = (&ins.source, &ins.table) else {
        return Err(SqlError::internal("INSERT without a query source"));
    };
    let source = state
        .statement_to_plan(DfStatement::Statement(Box::new(Statement::Query(
            source.clone(),
        ))))
        .await?;
    let table = crate::ddl::resolve_table_name(name)?;
    let table_ref = TableReference::bare(table.clone());
    let provider = state
        .schema_for_ref(table_ref.clone())?
        .table(&table)
        .await?
        .ok_or_else(|| relation_missing(&table))?;
    let schema = provider.schema();
    let listed: Vec<String> = ins
        .columns
        .iter()
        .map(crate::ddl::resolve_table_name)
        .collect::<SqlResult<_>>()?;
    // Per table column, the source column that fills it.
    let mut positions: Vec<Option<usize>> = if listed.is_empty() {
        (0..schema.fields().len()).map(Some).collect()
    } else {
        vec![None; schema.fields().len()]
    };
    for (i, name) in listed.iter().enumerate() {
        let at = schema.index_of(name).map_err(|_| {
            SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{name}\" of relation \"{table}\" does not exist"),
            )
        })?;
        if positions[at].replace(i).is_some() {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{name}\" specified more than once"),
            ));
        }
    }
    let given = if listed.is_empty() {
        schema.fields().len()
    } else {
        listed.len()
    };
    let source_schema: Arc<DFSchema> = source.schema().clone();
    match source_schema.fields().len() {
        n if n > given => {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "INSERT has more expressions than target columns",
            ));
        }
        n if n < given && !listed.is_empty() => {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "INSERT has more target columns than expressions",
            ));
        }
        _ => {}
    }
    let mut exprs = Vec::with_capacity(schema.fields().len());
    for (field, position) in schema.fields().iter().zip(positions) {
        let value = match position.filter(|&i| i < source_schema.fields().len()) {
            Some(i) => Expr::Column(Column::from(source_schema.qualified_field(i))),
            None => provider
                .get_column_default(field.name())
                .cloned()
                .unwrap_or_else(|| lit(ScalarValue::Null)),
        };
        exprs.push(
            value
                .cast_to(field.data_type(), &source_schema)?
                .alias(field.name()),
        );
    }
    let projected = LogicalPlanBuilder::from(source).project(exprs)?.build()?;
    Ok(LogicalPlanBuilder::insert_into(
        projected,
        table_ref,
        provider_as_source(provider),
        InsertOp::Append,
    )?
    .build()?)
}
