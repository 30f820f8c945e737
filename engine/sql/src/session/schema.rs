//! Schema statements: CREATE/DROP TABLE, INDEX and SEQUENCE, ALTER TABLE,
//! ANALYZE, and the job and range statements (`CALL`-shaped).

use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{ObjectType, Statement};

use crate::ddl;
use crate::error::{SqlError, SqlResult};
use crate::session::Session;
use crate::session::output::{StatementOutput, rows_of};
use crate::session::text::{statement_kind, statement_prefix};

impl Session {
    /// Runs schema statement `stmt` (0A000 for a form not supported).
    pub(super) async fn run_schema(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
        autocommit: bool,
    ) -> SqlResult<StatementOutput> {
        match stmt {
            Statement::CreateTable(ct) => {
                self.require_autocommit(autocommit, "CREATE TABLE")?;
                ddl::create_table(self.engine.catalog(), ct, &self.interrupt()).await?;
                Ok(StatementOutput::done("CREATE TABLE"))
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                cascade,
                ..
            } => {
                self.require_autocommit(autocommit, "DROP TABLE")?;
                ddl::drop_tables(self.engine.catalog(), names, *if_exists, *cascade).await?;
                Ok(StatementOutput::done("DROP TABLE"))
            }
            Statement::Drop {
                object_type: ObjectType::Index,
                if_exists,
                names,
                ..
            } => {
                self.require_autocommit(autocommit, "DROP INDEX")?;
                let text = statement_prefix(stmt, 4096);
                ddl::drop_indexes(self.engine.catalog(), names, *if_exists, &text).await?;
                Ok(StatementOutput::done("DROP INDEX"))
            }
            Statement::CreateSequence {
                temporary,
                if_not_exists,
                name,
                data_type,
                sequence_options,
                owned_by,
            } => {
                self.require_autocommit(autocommit, "CREATE SEQUENCE")?;
                ddl::create_sequence(
                    self.engine.catalog(),
                    name,
                    *if_not_exists,
                    *temporary,
                    data_type.as_ref(),
                    sequence_options,
                    owned_by.as_ref(),
                )
                .await?;
                Ok(StatementOutput::done("CREATE SEQUENCE"))
            }
            Statement::Drop {
                object_type: ObjectType::Sequence,
                if_exists,
                names,
                cascade,
                ..
            } => {
                self.require_autocommit(autocommit, "DROP SEQUENCE")?;
                ddl::drop_sequences(self.engine.catalog(), names, *if_exists, *cascade).await?;
                Ok(StatementOutput::done("DROP SEQUENCE"))
            }
            Statement::CreateIndex(ci) => {
                self.require_autocommit(autocommit, "CREATE INDEX")?;
                ddl::create_index(self.engine.catalog(), ci, &self.interrupt()).await?;
                Ok(StatementOutput::done("CREATE INDEX"))
            }
            Statement::Analyze(a) => {
                let name = a
                    .table_name
                    .as_ref()
                    .map(ddl::resolve_table_name)
                    .transpose()?;
                crate::stats::collect::run(
                    self.engine.catalog(),
                    name.as_deref(),
                    &self.interrupt(),
                )
                .await?;
                Ok(StatementOutput::done("ANALYZE"))
            }
            Statement::AlterTable(at) => {
                self.require_autocommit(autocommit, "ALTER TABLE")?;
                let text = statement_prefix(stmt, 4096);
                ddl::alter_table(self.engine.catalog(), at, &text, &self.interrupt()).await?;
                Ok(StatementOutput::done("ALTER TABLE"))
            }
            Statement::Call(f) if crate::jobs::statements::is_job_call(f) => {
                self.require_autocommit(autocommit, "job statements")?;
                match crate::jobs::statements::execute(self.engine.catalog(), f).await? {
                    Some(batch) => rows_of(batch.schema(), vec![batch]),
                    None => Ok(StatementOutput::done("CANCEL JOB")),
                }
            }
            Statement::Call(f) if crate::ranges::is_range_call(f) => {
                self.require_autocommit(autocommit, "range statements")?;
                let catalog = self.engine.catalog().clone();
                let out = crate::ranges::execute(
                    self.engine.base_context(),
                    self.engine.options().admin.as_ref(),
                    |name| catalog.table(name),
                    f,
                    params.as_ref(),
                )
                .await?;
                rows_of(out.batch.schema(), vec![out.batch])
            }
            other => Err(SqlError::unsupported(format!(
                "{} is not supported",
                statement_kind(other)
            ))),
        }
    }
}
