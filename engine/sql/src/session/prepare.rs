//! Prepare and describe: a statement's parameter and result types, and the
//! plan kept for repeated execution until the catalog changes.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::{SqlError, SqlResult, sqlstate};
use crate::exec::fast::FastPlan;
use crate::session::Session;
use crate::session::supported::check_supported;

/// Types a prepared statement's parameters and result.
#[derive(Debug, Clone)]
pub struct Described {
    /// Parameter types in order (`None` when unknown).
    pub param_types: Vec<Option<DataType>>,
    /// Result columns, for statements that return rows.
    pub schema: Option<SchemaRef>,
}

/// The cached plan of a prepared statement.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) plan: LogicalPlan,
    pub(crate) fast: Option<FastPlan>,
    /// A DML statement's RETURNING list, planned over its target.
    pub(crate) returning: Option<LogicalPlan>,
    pub(crate) catalog_version: u64,
}

/// A statement prepared by [`Session::prepare`].
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// The statement.
    pub stmt: Statement,
    /// Its parameter and result types.
    pub described: Described,
    pub(crate) planned: Option<Planned>,
}

impl Session {
    /// Plans `stmt` without running it: parameter types and result columns.
    pub async fn describe(&self, stmt: &Statement) -> SqlResult<Described> {
        Ok(self.prepare(stmt.clone()).await?.described)
    }

    /// Prepares `stmt` for repeated execution: types its parameters and
    /// result, and keeps its logical plan (and fast path) until the catalog
    /// changes.
    pub async fn prepare(&self, stmt: Statement) -> SqlResult<PreparedStatement> {
        if let Statement::Call(f) = &stmt
            && crate::ranges::is_range_call(f)
        {
            let catalog = self.engine.catalog().clone();
            let (param_types, schema) = crate::ranges::describe_call(f, |n| catalog.table(n))?;
            return Ok(PreparedStatement {
                stmt,
                described: Described {
                    param_types,
                    schema: Some(schema),
                },
                planned: None,
            });
        }
        let empty = Described {
            param_types: Vec::new(),
            schema: None,
        };
        if !matches!(
            stmt,
            Statement::Query(_)
                | Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
        ) {
            return Ok(PreparedStatement {
                stmt,
                described: empty,
                planned: None,
            });
        }
        check_supported(&stmt)?;
        let planned = self.plan_statement(&stmt).await?;
        let (plan, returning) = (&planned.plan, &planned.returning);
        let mut types = plan.get_parameter_types()?;
        if let Some(r) = returning {
            for (id, t) in r.get_parameter_types()? {
                let slot = types.entry(id).or_insert(None);
                if slot.is_none() {
                    *slot = t;
                }
            }
        }
        // `$1::bigint`: a parameter typed only by its cast takes the cast's type.
        if types.values().any(Option::is_none) {
            plan.apply(|node| {
                for expr in node.expressions() {
                    expr.apply(|e| {
                        if let Expr::Cast(c) = e
                            && let Expr::Placeholder(p) = c.expr.as_ref()
                            && let Some(slot @ None) = types.get_mut(&p.id)
                        {
                            *slot = Some(c.field.data_type().clone());
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })?;
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        let mut ordered: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .map(|(id, t)| {
                let n = id.trim_start_matches('$').parse::<usize>().map_err(|_| {
                    SqlError::new(
                        sqlstate::INVALID_PSTATEMENT_DEFINITION,
                        format!("bad parameter {id}"),
                    )
                })?;
                Ok((n, t))
            })
            .collect::<SqlResult<_>>()?;
        ordered.sort_by_key(|(n, _)| *n);
        let count = ordered.last().map_or(0, |(n, _)| *n);
        if count > crate::limits::MAX_PARAMETERS {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "parameter ${count} exceeds the limit of {} parameters",
                    crate::limits::MAX_PARAMETERS
                ),
            ));
        }
        let mut param_types = vec![None; count];
        for (n, t) in ordered {
            if n == 0 {
                return Err(SqlError::new(
                    sqlstate::INVALID_PSTATEMENT_DEFINITION,
                    "parameter $0 does not exist",
                ));
            }
            param_types[n - 1] = t;
        }
        let schema = match (plan, returning) {
            (_, Some(r)) => Some(Arc::new(r.schema().as_arrow().clone())),
            (LogicalPlan::Dml(_), None) => None,
            (other, None) => Some(Arc::new(other.schema().as_arrow().clone())),
        };
        Ok(PreparedStatement {
            stmt,
            described: Described {
                param_types,
                schema,
            },
            planned: Some(planned),
        })
    }

    /// Plans a query or DML statement: its plan, its RETURNING list planned
    /// over its target, and its fast path (none with RETURNING).
    pub(crate) async fn plan_statement(&self, stmt: &Statement) -> SqlResult<Planned> {
        let catalog_version = self.engine.catalog().version();
        let (stmt, list) = super::returning::split(stmt)?;
        let plan = self.plan(&stmt).await?;
        let (fast, returning) = match list {
            Some(select) => (None, Some(self.plan(&select).await?)),
            None => (FastPlan::detect(&plan), None),
        };
        Ok(Planned {
            plan,
            fast,
            returning,
            catalog_version,
        })
    }
}
