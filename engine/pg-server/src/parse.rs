//! [`SqlParser`]: SQL text to statements, with PostgreSQL client
//! compatibility rewrites for catalog queries.

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use holo_sql::{SqlError, SqlResult};

/// Parses statements. Plain SQL goes straight to sqlparser; text that looks
/// like a client's catalog query (`pg_catalog`, `::regclass`,
/// `OPERATOR(...)`) goes through datafusion-pg-catalog's rewriting parser so
/// DataFusion can plan it.
pub struct SqlParser {
    compat: PostgresCompatibilityParser,
}

impl std::fmt::Debug for SqlParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlParser")
    }
}

impl Default for SqlParser {
    fn default() -> Self {
        SqlParser::new()
    }
}

fn needs_compat(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    [
        "pg_",
        "::reg",
        "operator(",
        "current_user",
        "session_user",
        "information_schema",
        "version()",
        "current_schema",
        "array_",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

impl SqlParser {
    /// A parser with the compatibility rules loaded.
    pub fn new() -> SqlParser {
        SqlParser {
            compat: PostgresCompatibilityParser::new(),
        }
    }

    /// Parses `sql` into statements.
    pub fn parse(&self, sql: &str) -> SqlResult<Vec<Statement>> {
        let rewritten = holo_sql::ranges::rewrite(sql);
        let sql = rewritten.as_deref().unwrap_or(sql);
        if needs_compat(sql) {
            return self.compat.parse(sql).map_err(SqlError::from);
        }
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(SqlError::from)
    }
}
