//! The token pre-scan: before a single AST node is built, checks what the
//! parser cannot bound itself — parameter numbers, and how deep the
//! statement's trees can get (left-associative chains such as
//! `1 + 1 + ...` are parsed in a loop into trees as deep as the chain is
//! long, and such trees are cloned, dropped and displayed recursively).

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{SqlError, SqlResult, sqlstate};
use crate::limits::{MAX_EXPR_DEPTH, MAX_PARAMETERS};

/// What the scan learned about a statement text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scan {
    /// Deepest bracket nesting.
    pub max_nesting: usize,
    /// The text names catalog objects or functions that need
    /// datafusion-pg-catalog's rewrites.
    pub compat: bool,
}

/// Whether `token` can extend a tree by one level without the parser
/// descending: binary and postfix operators, the keywords that act as
/// operators, set operations, and the prefix forms that recurse outside
/// sqlparser's recursion counter.
fn deepens(token: &Token) -> bool {
    match token {
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::IN
                | Keyword::BETWEEN
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::RLIKE
                | Keyword::REGEXP
                | Keyword::MATCH
                | Keyword::MEMBER
                | Keyword::OVERLAPS
                | Keyword::OPERATOR
                | Keyword::DIV
                | Keyword::COLLATE
                | Keyword::AT
                | Keyword::NOTNULL
                | Keyword::INTERVAL
                | Keyword::UNION
                | Keyword::EXCEPT
                | Keyword::INTERSECT
                | Keyword::MINUS
                | Keyword::JOIN
        ),
        Token::EOF
        | Token::Number(..)
        | Token::Char(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::Comma
        | Token::Whitespace(_)
        | Token::LParen
        | Token::RParen
        | Token::LBracket
        | Token::RBracket
        | Token::LBrace
        | Token::RBrace
        | Token::SemiColon
        | Token::Colon
        | Token::Placeholder(_) => false,
        _ => true,
    }
}

/// One open bracket group (or the statement itself) during the scan.
#[derive(Debug, Default)]
struct Group {
    /// Deepening tokens in the current comma-separated segment.
    ops: usize,
    /// Deepest child group in the current segment.
    child: usize,
    /// Deepest finished segment.
    best: usize,
}

impl Group {
    fn segment(&self) -> usize {
        self.ops + self.child
    }

    fn depth(&self) -> usize {
        self.best.max(self.segment())
    }

    fn end_segment(&mut self) {
        self.best = self.depth();
        self.ops = 0;
        self.child = 0;
    }
}

fn too_deep() -> SqlError {
    SqlError::new(
        sqlstate::STATEMENT_TOO_COMPLEX,
        format!(
            "statement too complex: its expressions nest or chain more than {MAX_EXPR_DEPTH} levels deep"
        ),
    )
    .with_hint("split long chains of operators (e.g. use IN (...) instead of many ORs)")
}

fn check_placeholder(p: &str) -> SqlResult<()> {
    let Some(digits) = p.strip_prefix('$') else {
        return Ok(());
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Err(SqlError::new(
            sqlstate::UNDEFINED_PARAMETER,
            "there is no parameter $0",
        ));
    }
    match significant.parse::<u64>() {
        Ok(n) if n <= MAX_PARAMETERS as u64 => Ok(()),
        Ok(n) if n <= i32::MAX as u64 => Err(SqlError::new(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!("parameter ${n} exceeds the limit of {MAX_PARAMETERS} parameters"),
        )),
        _ => Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("parameter number too large at or near \"{p}\""),
        )),
    }
}

fn needs_compat(prev: Option<&Token>, token: &Token) -> bool {
    let Token::Word(w) = token else {
        return false;
    };
    let v = w.value.as_str();
    let has = |needle: &str| {
        v.as_bytes()
            .windows(needle.len())
            .any(|win| win.eq_ignore_ascii_case(needle.as_bytes()))
    };
    has("pg_")
        || has("array_")
        || w.keyword == Keyword::OPERATOR
        || [
            "current_user",
            "session_user",
            "current_schema",
            "information_schema",
            "version",
        ]
        .iter()
        .any(|n| v.eq_ignore_ascii_case(n))
        || (matches!(prev, Some(Token::DoubleColon))
            && v.len() >= 3
            && v[..3].eq_ignore_ascii_case("reg"))
}

/// Scans `tokens`: parameter numbers in range and every tree of the text
/// at most [`MAX_EXPR_DEPTH`] deep. The bound is the deepest "path" seen:
/// over the open bracket groups, the deepening tokens of each one's
/// current comma-separated segment plus its deepest closed child, plus
/// one per open bracket. A node's depth never exceeds the path at the last
/// token of its outermost segment.
pub fn scan(tokens: &[TokenWithSpan]) -> SqlResult<Scan> {
    let mut out = Scan::default();
    let mut stack: Vec<Group> = vec![Group::default()];
    // Sum of the open groups' segments plus the open brackets, kept
    // current as tokens arrive (summing the stack per token would be
    // quadratic).
    let mut path = 0usize;
    let mut prev: Option<&Token> = None;
    for t in tokens {
        let token = &t.token;
        if matches!(token, Token::Whitespace(_)) {
            continue;
        }
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                stack.push(Group::default());
                path += 1;
                out.max_nesting = out.max_nesting.max(stack.len() - 1);
            }
            Token::RParen | Token::RBracket | Token::RBrace if stack.len() > 1 => {
                if let Some(done) = stack.pop() {
                    path -= done.segment() + 1;
                    if let Some(top) = stack.last_mut() {
                        let before = top.segment();
                        top.child = top.child.max(done.depth() + 1);
                        path = path - before + top.segment();
                    }
                }
            }
            Token::Comma => {
                if let Some(top) = stack.last_mut() {
                    path -= top.segment();
                    top.end_segment();
                }
            }
            Token::SemiColon if stack.len() == 1 => {
                stack[0] = Group::default();
                path = 0;
            }
            Token::Placeholder(p) => check_placeholder(p)?,
            other => {
                if deepens(other)
                    && let Some(top) = stack.last_mut()
                {
                    top.ops += 1;
                    path += 1;
                }
                if !out.compat && needs_compat(prev, other) {
                    out.compat = true;
                }
            }
        }
        if path > MAX_EXPR_DEPTH {
            return Err(too_deep());
        }
        prev = Some(token);
    }
    Ok(out)
}
