//! The supported-statement check: statement forms HoloFusion does not run
//! are refused with 0A000 (or PostgreSQL's syntax error) before planning.

use datafusion::sql::sqlparser::ast::Statement;

use crate::error::{SqlError, SqlResult, sqlstate};

/// Rejects statement forms outside the supported scope before planning.
pub(crate) fn check_supported(stmt: &Statement) -> SqlResult<()> {
    match stmt {
        Statement::Insert(ins) => {
            if ins.on.is_some() {
                return Err(SqlError::unsupported(
                    "INSERT ... ON CONFLICT is not supported",
                ));
            }
            if ins.overwrite || ins.replace_into || ins.or.is_some() || ins.ignore {
                return Err(SqlError::unsupported("this INSERT form is not supported"));
            }
            if ins.source.is_none() {
                return Err(SqlError::unsupported(
                    "INSERT without VALUES or SELECT is not supported",
                ));
            }
        }
        Statement::Update(upd) => {
            if upd.from.is_some() {
                return Err(SqlError::unsupported("UPDATE ... FROM is not supported"));
            }
            if !upd.table.joins.is_empty() {
                return Err(SqlError::unsupported("UPDATE of a join is not supported"));
            }
            if upd.limit.is_some() || !upd.order_by.is_empty() {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    "UPDATE does not take ORDER BY or LIMIT",
                ));
            }
        }
        Statement::Delete(del) => {
            if del.using.is_some() {
                return Err(SqlError::unsupported("DELETE ... USING is not supported"));
            }
            if del.limit.is_some() || !del.order_by.is_empty() {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    "DELETE does not take ORDER BY or LIMIT",
                ));
            }
            if !del.tables.is_empty() {
                return Err(SqlError::unsupported("multi-table DELETE is not supported"));
            }
        }
        Statement::Query(q) if !q.locks.is_empty() => {
            return Err(SqlError::unsupported(
                "SELECT ... FOR UPDATE/SHARE is not supported",
            ));
        }
        _ => {}
    }
    Ok(())
}
