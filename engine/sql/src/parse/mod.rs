//! The SQL parser of HoloFusion (the only one): statement text to sqlparser
//! statements, guarded so that no text can make it allocate, recurse or
//! run without bound. The steps: a size check; one tokenization; a token
//! pre-scan ([`scan`]) for parameter numbers and tree depth; a parse with
//! PostgreSQL's dialect under a work budget, a recursion limit and a stack
//! guard ([`dialect`]); and datafusion-pg-catalog's rewrites for the
//! catalog queries of psql and drivers.

mod catalog_rules;
pub(crate) mod custom;
mod dialect;
mod scan;
mod sequence;

use std::sync::{Arc, LazyLock};

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Statement, Visit, Visitor};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Tokenizer;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

pub use dialect::{GuardedDialect, Tripped};

use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::Interrupt;
use crate::limits::{
    MAX_PARSE_NESTING, MAX_QUERY_BYTES, MAX_SUBQUERY_NESTING, PARSE_BUDGET_PER_TOKEN,
};

/// Catalog queries nest function calls at most this deep before the
/// compatibility parser (which re-parses function arguments) may see them.
const COMPAT_MAX_NESTING: usize = 12;

static COMPAT: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

fn too_complex(what: &str) -> SqlError {
    SqlError::new(
        sqlstate::STATEMENT_TOO_COMPLEX,
        format!("statement too complex: {what}"),
    )
}

/// 54000 for a text longer than [`MAX_QUERY_BYTES`].
pub fn check_query_size(len: usize) -> SqlResult<()> {
    if len > MAX_QUERY_BYTES {
        return Err(SqlError::new(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!("query string of {len} bytes exceeds the limit of {MAX_QUERY_BYTES} bytes"),
        )
        .with_hint("load large data in several statements"));
    }
    Ok(())
}

/// Parses `sql` into statements. `interrupt` (a cancel request, the
/// statement timeout) is checked while parsing.
pub fn parse(sql: &str, interrupt: Option<Arc<Interrupt>>) -> SqlResult<Vec<Statement>> {
    check_query_size(sql.len())?;
    let probe = GuardedDialect::new(0, None);
    let tokens = Tokenizer::new(&probe, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::from(ParserError::from(e)))?;
    let found = scan::scan(&tokens)?;
    let budget = (tokens.len() as u64)
        .saturating_mul(PARSE_BUDGET_PER_TOKEN)
        .saturating_add(4096);
    let dialect = GuardedDialect::new(budget, interrupt.clone());
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(MAX_PARSE_NESTING)
        .with_tokens_with_locations(tokens)
        .parse_statements();
    if let Some(why) = dialect.tripped() {
        return Err(match why {
            Tripped::Budget => too_complex("parsing it takes too much work"),
            Tripped::Stack => too_complex("it nests too deeply"),
            Tripped::Interrupted => match interrupt.as_deref().map(Interrupt::check) {
                Some(Err(e)) => e,
                _ => crate::interrupt::canceled(),
            },
        });
    }
    let statements = match parsed {
        Ok(s) => s,
        Err(ParserError::RecursionLimitExceeded) => {
            return Err(too_complex(&format!(
                "it nests more than {MAX_PARSE_NESTING} levels deep"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    check_subqueries(&statements)?;
    if !found.compat {
        return Ok(statements);
    }
    let statements = if found.max_nesting <= COMPAT_MAX_NESTING {
        // The text parsed within bounds: the compatibility parser (which
        // also swaps known client query shapes) may parse it again.
        COMPAT
            .parse(&catalog_rules::substitute(sql))
            .map_err(SqlError::from)?
    } else {
        statements.into_iter().map(|s| COMPAT.rewrite(s)).collect()
    };
    Ok(statements.into_iter().map(catalog_rules::rewrite).collect())
}

/// Tracks how deeply subquery expressions nest.
#[derive(Default)]
struct SubqueryDepth {
    depth: usize,
}

fn is_subquery(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. }
    )
}

impl Visitor for SubqueryDepth {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if is_subquery(e) {
            self.depth += 1;
            if self.depth > MAX_SUBQUERY_NESTING {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if is_subquery(e) {
            self.depth -= 1;
        }
        ControlFlow::Continue(())
    }
}

/// 54001 when subquery expressions nest deeper than
/// [`MAX_SUBQUERY_NESTING`].
fn check_subqueries(statements: &[Statement]) -> SqlResult<()> {
    for s in statements {
        if s.visit(&mut SubqueryDepth::default()).is_break() {
            return Err(too_complex(&format!(
                "subqueries in expressions nest more than {MAX_SUBQUERY_NESTING} levels deep"
            )));
        }
    }
    Ok(())
}
