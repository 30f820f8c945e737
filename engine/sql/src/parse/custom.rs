//! HoloFusion's own statements, parsed through the dialect's statement
//! hook: `ALTER TABLE t SPLIT AT VALUES (...)[, (...)]`,
//! `ALTER TABLE t UNSPLIT AT VALUES (...)[, (...)]` and
//! `SHOW RANGES FROM TABLE t`, `SHOW JOBS` and `CANCEL JOB n`.
//!
//! Each becomes a `CALL` of a reserved function (`holo_split_at('t', (...),
//! ...)`, `holo_unsplit_at`, `holo_show_ranges('t')`, `holo_show_jobs()`,
//! `holo_cancel_job(n)`) that the range and job modules execute; a client's
//! own `CALL` of those names means the same.

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, Statement, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// `ALTER TABLE t SPLIT AT ...`.
pub const SPLIT_FN: &str = "holo_split_at";
/// `ALTER TABLE t UNSPLIT AT ...`.
pub const UNSPLIT_FN: &str = "holo_unsplit_at";
/// `SHOW RANGES FROM TABLE t`.
pub const SHOW_FN: &str = "holo_show_ranges";
/// `SHOW JOBS`.
pub const SHOW_JOBS_FN: &str = "holo_show_jobs";
/// `CANCEL JOB n`.
pub const CANCEL_JOB_FN: &str = "holo_cancel_job";

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.keyword == keyword)
}

/// Parses one of HoloFusion's statements at the parser's position, or
/// returns `None` (nothing consumed) when the next tokens start another.
pub fn parse_statement(parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
    let ahead = parser.peek_tokens::<6>();
    if super::sequence::starts(&ahead) {
        return Some(super::sequence::parse(parser));
    }
    if is_keyword(&ahead[0], Keyword::SHOW) && is_word(&ahead[1], "RANGES") {
        return Some(parse_show_ranges(parser));
    }
    if is_keyword(&ahead[0], Keyword::SHOW)
        && is_word(&ahead[1], "JOBS")
        && matches!(ahead[2], Token::EOF | Token::SemiColon)
    {
        parser.next_token();
        parser.next_token();
        return Some(Ok(call(SHOW_JOBS_FN, Vec::new())));
    }
    if is_word(&ahead[0], "CANCEL") && is_word(&ahead[1], "JOB") {
        return Some(parse_cancel_job(parser));
    }
    if !(is_keyword(&ahead[0], Keyword::ALTER) && is_keyword(&ahead[1], Keyword::TABLE)) {
        return None;
    }
    // The verb follows a one- or two-part table name.
    let verb_at = if matches!(ahead[3], Token::Period) {
        5
    } else {
        3
    };
    let verb = &ahead[verb_at];
    let unsplit = if is_word(verb, "SPLIT") {
        false
    } else if is_word(verb, "UNSPLIT") {
        true
    } else {
        return None;
    };
    Some(parse_split(parser, unsplit))
}

fn parse_show_ranges(parser: &mut Parser) -> Result<Statement, ParserError> {
    parser.expect_keyword_is(Keyword::SHOW)?;
    parser.next_token(); // RANGES
    parser.expect_keyword_is(Keyword::FROM)?;
    parser.expect_keyword_is(Keyword::TABLE)?;
    let table = parser.parse_object_name(false)?;
    Ok(call(SHOW_FN, vec![table_literal(&table)?]))
}

fn parse_cancel_job(parser: &mut Parser) -> Result<Statement, ParserError> {
    parser.next_token(); // CANCEL
    parser.next_token(); // JOB
    let id = parser.parse_literal_uint()?;
    Ok(call(
        CANCEL_JOB_FN,
        vec![Expr::value(Value::Number(id.to_string(), false))],
    ))
}

fn parse_split(parser: &mut Parser, unsplit: bool) -> Result<Statement, ParserError> {
    parser.expect_keyword_is(Keyword::ALTER)?;
    parser.expect_keyword_is(Keyword::TABLE)?;
    let table = parser.parse_object_name(false)?;
    parser.next_token(); // SPLIT / UNSPLIT
    parser.expect_keyword_is(Keyword::AT)?;
    parser.expect_keyword_is(Keyword::VALUES)?;
    let rows = parser.parse_comma_separated(Parser::parse_expr)?;
    let name = if unsplit { UNSPLIT_FN } else { SPLIT_FN };
    let mut args = vec![table_literal(&table)?];
    args.extend(rows);
    Ok(call(name, args))
}

/// The table's name as a string literal: unquoted names fold to lower
/// case, quoted ones keep theirs; a `public.` schema is dropped.
fn table_literal(name: &ObjectName) -> Result<Expr, ParserError> {
    let parts: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
    let ident = match parts.as_slice() {
        [t] => *t,
        [schema, t] if schema.value.eq_ignore_ascii_case("public") => *t,
        _ => {
            return Err(ParserError::ParserError(format!(
                "expected a table of schema public, found {name}"
            )));
        }
    };
    let text = match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    };
    Ok(Expr::value(Value::SingleQuotedString(text)))
}

fn call(name: &str, args: Vec<Expr>) -> Statement {
    let args = args
        .into_iter()
        .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
        .collect();
    Statement::Call(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    fn parsed(sql: &str) -> String {
        crate::parse::parse(sql, None)
            .map(|s| {
                s.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|e| format!("error {}: {}", e.code, e.message))
    }

    #[test]
    fn range_statements_parse_to_calls() {
        assert_eq!(
            parsed("ALTER TABLE Orders SPLIT AT VALUES (100), (200);"),
            "CALL holo_split_at('orders', (100), (200))"
        );
        assert_eq!(
            parsed("show ranges from table \"T\""),
            "CALL holo_show_ranges('T')"
        );
        assert_eq!(
            parsed("alter table public.t unsplit at values (7, 'x')"),
            "CALL holo_unsplit_at('t', (7, 'x'))"
        );
        assert_eq!(
            parsed("ALTER TABLE t SPLIT AT VALUES (1); SHOW RANGES FROM TABLE t"),
            "CALL holo_split_at('t', (1)); CALL holo_show_ranges('t')"
        );
        assert_eq!(
            parsed("SHOW JOBS; cancel job 12"),
            "CALL holo_show_jobs(); CALL holo_cancel_job(12)"
        );
    }

    #[test]
    fn other_statements_are_left_to_sqlparser() {
        assert_eq!(parsed("SELECT 1"), "SELECT 1");
        assert!(parsed("ALTER TABLE t ADD COLUMN c INT").starts_with("ALTER TABLE t ADD COLUMN"));
        assert_eq!(parsed("SHOW search_path"), "SHOW search_path");
    }

    #[test]
    fn malformed_range_statements_are_syntax_errors() {
        for sql in [
            "ALTER TABLE t SPLIT AT (1)",
            "ALTER TABLE t SPLIT AT VALUES",
            "SHOW RANGES FROM t",
            "ALTER TABLE other.t SPLIT AT VALUES (1)",
            "CANCEL JOB",
            "CANCEL JOB 'x'",
        ] {
            assert!(
                parsed(sql).starts_with("error 42601"),
                "{sql}: {}",
                parsed(sql)
            );
        }
    }
}
