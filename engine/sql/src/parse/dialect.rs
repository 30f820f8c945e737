//! [`GuardedDialect`]: PostgreSQL's dialect with a work budget, a stack
//! guard and an interrupt check, so that no statement text can make the
//! parser run for long or overflow its stack.

use std::any::TypeId;
use std::cell::Cell;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

use crate::interrupt::Interrupt;

/// Stack the parser must leave free; below it parsing stops (54001).
const STACK_RESERVE: usize = 256 << 10;

/// How often (in prefix parses) the interrupt is checked.
const INTERRUPT_EVERY: u64 = 256;

/// Why a guarded parse was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tripped {
    /// The work budget ran out (a backtracking blow-up).
    Budget,
    /// Too little stack left (too deep a nesting).
    Stack,
    /// The statement was cancelled or timed out.
    Interrupted,
}

/// PostgreSQL's dialect, except that function arguments are not parsed
/// twice to look for `expr => value` names (exponential in nesting; plain
/// `name => value` still parses), and that every prefix expression spends
/// one unit of a budget. Once tripped, every later prefix fails with
/// `RecursionLimitExceeded`, which sqlparser never swallows in its
/// backtracking.
#[derive(Debug)]
pub struct GuardedDialect {
    inner: PostgreSqlDialect,
    budget: Cell<u64>,
    calls: Cell<u64>,
    tripped: Cell<Option<Tripped>>,
    interrupt: Option<Arc<Interrupt>>,
}

impl GuardedDialect {
    /// A dialect allowing `budget` prefix parses.
    pub fn new(budget: u64, interrupt: Option<Arc<Interrupt>>) -> GuardedDialect {
        GuardedDialect {
            inner: PostgreSqlDialect {},
            budget: Cell::new(budget),
            calls: Cell::new(0),
            tripped: Cell::new(None),
            interrupt,
        }
    }

    /// Why the parse was stopped, if it was.
    pub fn tripped(&self) -> Option<Tripped> {
        self.tripped.get()
    }

    fn trip(&self, why: Tripped) -> Option<Result<Expr, ParserError>> {
        if self.tripped.get().is_none() {
            self.tripped.set(Some(why));
        }
        Some(Err(ParserError::RecursionLimitExceeded))
    }
}

/// Forwards `(&self) -> bool` methods to PostgreSQL's dialect.
macro_rules! forward_bool {
    ($($name:ident),* $(,)?) => {
        $(fn $name(&self) -> bool { self.inner.$name() })*
    };
}

impl Dialect for GuardedDialect {
    fn dialect(&self) -> TypeId {
        // Every `dialect_of!(.. is PostgreSqlDialect)` check holds.
        TypeId::of::<PostgreSqlDialect>()
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.inner.identifier_quote_style(identifier)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.inner.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.inner.is_identifier_part(ch)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.inner.is_custom_operator_part(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.inner.is_reserved_for_identifier(kw)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        self.inner.get_next_precedence(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        self.inner.prec_value(prec)
    }

    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        false
    }

    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
        crate::parse::custom::parse_statement(parser)
    }

    fn parse_prefix(&self, _parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if self.tripped.get().is_some() {
            return Some(Err(ParserError::RecursionLimitExceeded));
        }
        let left = self.budget.get();
        if left == 0 {
            return self.trip(Tripped::Budget);
        }
        self.budget.set(left - 1);
        if stacker::remaining_stack().is_some_and(|s| s < STACK_RESERVE) {
            return self.trip(Tripped::Stack);
        }
        let calls = self.calls.get() + 1;
        self.calls.set(calls);
        if calls.is_multiple_of(INTERRUPT_EVERY)
            && let Some(i) = &self.interrupt
            && i.check().is_err()
        {
            return self.trip(Tripped::Interrupted);
        }
        None
    }

    forward_bool!(
        supports_unicode_string_literal,
        supports_filter_during_aggregation,
        supports_group_by_expr,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_listen_notify,
        supports_factorial_operator,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_colon_operator,
        supports_empty_projections,
        supports_nested_comments,
        supports_string_escape_constant,
        supports_numeric_literal_underscores,
        supports_array_typedef_with_brackets,
        supports_geometric_types,
        supports_set_names,
        supports_alter_column_type_using,
        supports_notnull_operator,
        supports_interval_options,
        supports_insert_table_alias,
        supports_create_table_like_parenthesized,
        supports_select_wildcard_with_alias,
        supports_comma_separated_trim,
        supports_xml_expressions,
        supports_comment_optimizer_hint,
    );
}
