//! The limits a client meets, in one place (documented in
//! `docs/limits.md`): every size, count and depth that comes from a client
//! is checked against these before anything is allocated for it.

/// Longest SQL text of one Query or Parse message (54000 above it).
pub const MAX_QUERY_BYTES: usize = 16 << 20;

/// Most parameters of a statement, as in PostgreSQL (the protocol's
/// counts are 16-bit).
pub const MAX_PARAMETERS: usize = 65_535;

/// Deepest expression or statement tree (54001 above it): nesting, and
/// chains of binary operators or set operations (`1 + 1 + ...`,
/// `a OR b OR ...`, `UNION ALL` chains), which parse into trees as deep as
/// they are long.
pub const MAX_EXPR_DEPTH: usize = 512;

/// Deepest nesting of sub-expressions, sub-queries and table factors the
/// parser descends into (54001 above it).
pub const MAX_PARSE_NESTING: usize = 1_000;

/// Deepest nesting of subquery expressions (scalar subqueries, `IN
/// (SELECT ...)`, `EXISTS`): DataFusion's planning time doubles with every
/// level (54001 above it). Derived tables (`FROM (SELECT ...)`) are not
/// counted.
pub const MAX_SUBQUERY_NESTING: usize = 8;

/// Parser work per token: a statement whose parse backtracks more than this
/// (exponential blow-ups) is refused with 54001.
pub const PARSE_BUDGET_PER_TOKEN: u64 = 64;

/// Bytes of rows held in memory for the statements of a multi-statement
/// query string that are followed by others (54000 above it).
pub const MAX_BUFFERED_RESULT_BYTES: usize = 64 << 20;

/// Stack size of the threads that parse and plan statements.
pub const PLANNER_STACK_BYTES: usize = 256 << 20;
