//! `CREATE [TEMP | TEMPORARY] SEQUENCE [IF NOT EXISTS] name [AS type]
//! [options] [OWNED BY ...]` with its options in any order, as PostgreSQL
//! takes them (sqlparser takes them in one fixed order only, and pg_dump
//! and SQLAlchemy write `START WITH` before `INCREMENT BY` / `MINVALUE`).

use datafusion::sql::sqlparser::ast::{DataType, Ident, ObjectName, SequenceOptions, Statement};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// Whether the next tokens start a CREATE SEQUENCE.
pub fn starts(ahead: &[Token]) -> bool {
    let kw = |t: &Token, k: Keyword| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.keyword == k);
    kw(&ahead[0], Keyword::CREATE)
        && (kw(&ahead[1], Keyword::SEQUENCE)
            || ((kw(&ahead[1], Keyword::TEMP) || kw(&ahead[1], Keyword::TEMPORARY))
                && kw(&ahead[2], Keyword::SEQUENCE)))
}

/// Parses the statement [`starts`] saw.
pub fn parse(parser: &mut Parser) -> Result<Statement, ParserError> {
    parser.expect_keyword_is(Keyword::CREATE)?;
    let temporary = parser
        .parse_one_of_keywords(&[Keyword::TEMP, Keyword::TEMPORARY])
        .is_some();
    parser.expect_keyword_is(Keyword::SEQUENCE)?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    let data_type: Option<DataType> = if parser.parse_keyword(Keyword::AS) {
        Some(parser.parse_data_type()?)
    } else {
        None
    };
    let mut options = Vec::new();
    let mut owned_by = None;
    let mut seen: Vec<&str> = Vec::new();
    loop {
        let (key, option) = if parser.parse_keyword(Keyword::INCREMENT) {
            let by = parser.parse_keyword(Keyword::BY);
            (
                "INCREMENT",
                SequenceOptions::IncrementBy(parser.parse_number()?, by),
            )
        } else if parser.parse_keyword(Keyword::MINVALUE) {
            (
                "MINVALUE",
                SequenceOptions::MinValue(Some(parser.parse_number()?)),
            )
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::MINVALUE]) {
            ("MINVALUE", SequenceOptions::MinValue(None))
        } else if parser.parse_keyword(Keyword::MAXVALUE) {
            (
                "MAXVALUE",
                SequenceOptions::MaxValue(Some(parser.parse_number()?)),
            )
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::MAXVALUE]) {
            ("MAXVALUE", SequenceOptions::MaxValue(None))
        } else if parser.parse_keyword(Keyword::START) {
            let with = parser.parse_keyword(Keyword::WITH);
            (
                "START",
                SequenceOptions::StartWith(parser.parse_number()?, with),
            )
        } else if parser.parse_keyword(Keyword::CACHE) {
            ("CACHE", SequenceOptions::Cache(parser.parse_number()?))
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::CYCLE]) {
            ("CYCLE", SequenceOptions::Cycle(true))
        } else if parser.parse_keyword(Keyword::CYCLE) {
            ("CYCLE", SequenceOptions::Cycle(false))
        } else if parser.parse_keywords(&[Keyword::OWNED, Keyword::BY]) {
            owned_by = Some(if parser.parse_keyword(Keyword::NONE) {
                ObjectName::from(vec![Ident::new("NONE")])
            } else {
                parser.parse_object_name(false)?
            });
            continue;
        } else {
            break;
        };
        if seen.contains(&key) {
            return Err(ParserError::ParserError(format!(
                "conflicting or redundant options: {key} given twice"
            )));
        }
        seen.push(key);
        options.push(option);
    }
    Ok(Statement::CreateSequence {
        temporary,
        if_not_exists,
        name,
        data_type,
        sequence_options: options,
        owned_by,
    })
}
