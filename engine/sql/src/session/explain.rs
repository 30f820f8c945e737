//! EXPLAIN: the logical and physical plans of a query, and of a write
//! (its plan under the write operator that HoloFusion runs it with).

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{displayable, execute_stream};
use datafusion::sql::sqlparser::ast::Statement;
use holo_kv::Transaction;

use crate::error::{SqlError, SqlResult};
use crate::session::Session;
use crate::session::output::{StatementOutput, is_dml, rows_of};
use crate::session::supported::check_supported;
use crate::session::text::statement_kind;

impl Session {
    /// EXPLAIN [ANALYZE] of `statement` (the whole EXPLAIN is `stmt`).
    pub(crate) async fn explain(
        &self,
        stmt: &Statement,
        statement: &Statement,
        analyze: bool,
        params: Option<ParamValues>,
        txn: &Arc<Transaction>,
    ) -> SqlResult<StatementOutput> {
        if is_dml(statement) {
            return self.explain_write(statement, analyze, params, txn).await;
        }
        if !matches!(statement, Statement::Query(_)) {
            return Err(SqlError::unsupported(format!(
                "EXPLAIN of {} is not supported",
                statement_kind(statement)
            )));
        }
        check_supported(statement)?;
        let plan = self.bind(self.plan(stmt).await?, params)?;
        let physical = self.physical_plan(&plan, txn).await?;
        let stream = execute_stream(physical, self.state.task_ctx())?;
        Ok(StatementOutput::Rows(stream))
    }

    async fn explain_write(
        &self,
        statement: &Statement,
        analyze: bool,
        params: Option<ParamValues>,
        txn: &Arc<Transaction>,
    ) -> SqlResult<StatementOutput> {
        if analyze {
            return Err(SqlError::unsupported(
                "EXPLAIN ANALYZE of INSERT/UPDATE/DELETE is not supported",
            ));
        }
        check_supported(statement)?;
        // The write's plan; a RETURNING list runs over its rows afterwards.
        let (statement, _) = super::returning::split(statement)?;
        let plan = self.bind(self.plan(&statement).await?, params)?;
        let LogicalPlan::Dml(dml) = &plan else {
            return Err(SqlError::internal("DML statement did not plan to DML"));
        };
        let physical = self.physical_plan(&dml.input, txn).await?;
        let header = format!("HoloWriteExec: op={}, table={}", dml.op, dml.table_name);
        let physical_text = format!(
            "{header}\n  {}",
            displayable(physical.as_ref())
                .indent(true)
                .to_string()
                .replace('\n', "\n  ")
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["logical_plan", "physical_plan"])),
                Arc::new(StringArray::from(vec![
                    plan.display_indent().to_string(),
                    physical_text.trim_end().to_string(),
                ])),
            ],
        )
        .map_err(|e| SqlError::internal(e.to_string()))?;
        rows_of(schema, vec![batch])
    }
}
