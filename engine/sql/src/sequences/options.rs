//! A sequence's options from `CREATE SEQUENCE` (and `SERIAL` columns),
//! with PostgreSQL's defaults and checks (22023).

use datafusion::sql::sqlparser::ast::{self, Expr, SequenceOptions, UnaryOperator, Value};

use crate::catalog::descriptor::{DESCRIPTOR_FORMAT, SequenceDescriptor};
use crate::catalog::keys::PUBLIC_SCHEMA_ID;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::types::SqlType;

fn invalid(msg: String) -> SqlError {
    SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, msg)
}

/// An integer option value: a literal, possibly negated.
fn integer(expr: &Expr, what: &str) -> SqlResult<i64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<i64>()
                .map_err(|_| invalid(format!("{what} ({n}) is out of range for type bigint"))),
            _ => Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("{what} takes an integer, not {expr}"),
            )),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => integer(expr, what)?
            .checked_neg()
            .ok_or_else(|| invalid(format!("{what} is out of range for type bigint"))),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => integer(expr, what),
        other => Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("{what} takes an integer, not {other}"),
        )),
    }
}

/// The range of a sequence's data type.
fn type_range(ty: SqlType) -> (i64, i64) {
    match ty {
        SqlType::SmallInt => (i64::from(i16::MIN), i64::from(i16::MAX)),
        SqlType::Integer => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    }
}

/// The data type of `AS type` (`bigint` without one).
pub fn sequence_type(ty: Option<&ast::DataType>) -> SqlResult<SqlType> {
    let Some(ty) = ty else {
        return Ok(SqlType::BigInt);
    };
    match SqlType::from_ast(ty)? {
        t @ (SqlType::SmallInt | SqlType::Integer | SqlType::BigInt) => Ok(t),
        _ => Err(invalid(
            "sequence type must be smallint, integer, or bigint".into(),
        )),
    }
}

/// The descriptor (id 0: the catalog assigns it) of sequence `name` of
/// type `ty` with `options` over PostgreSQL's defaults.
pub fn sequence_descriptor(
    name: &str,
    ty: SqlType,
    options: &[SequenceOptions],
) -> SqlResult<SequenceDescriptor> {
    let (type_min, type_max) = type_range(ty);
    let (mut increment, mut min, mut max, mut start, mut cache, mut cycle) =
        (1i64, None, None, None, 1i64, false);
    for option in options {
        match option {
            SequenceOptions::IncrementBy(e, _) => increment = integer(e, "INCREMENT")?,
            SequenceOptions::MinValue(e) => {
                min = e.as_ref().map(|e| integer(e, "MINVALUE")).transpose()?
            }
            SequenceOptions::MaxValue(e) => {
                max = e.as_ref().map(|e| integer(e, "MAXVALUE")).transpose()?
            }
            SequenceOptions::StartWith(e, _) => start = Some(integer(e, "START")?),
            SequenceOptions::Cache(e) => cache = integer(e, "CACHE")?,
            SequenceOptions::Cycle(no) => cycle = !*no,
        }
    }
    if increment == 0 {
        return Err(invalid("INCREMENT must not be zero".into()));
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { type_min });
    let max = max.unwrap_or(if increment > 0 { type_max } else { -1 });
    for (what, v) in [("MINVALUE", min), ("MAXVALUE", max)] {
        if !(type_min..=type_max).contains(&v) {
            return Err(invalid(format!(
                "{what} ({v}) is out of range for sequence data type {ty}"
            )));
        }
    }
    if min >= max {
        return Err(invalid(format!(
            "MINVALUE ({min}) must be less than MAXVALUE ({max})"
        )));
    }
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if start < min {
        return Err(invalid(format!(
            "START value ({start}) cannot be less than MINVALUE ({min})"
        )));
    }
    if start > max {
        return Err(invalid(format!(
            "START value ({start}) cannot be greater than MAXVALUE ({max})"
        )));
    }
    if cache < 1 {
        return Err(invalid(format!(
            "CACHE ({cache}) must be greater than zero"
        )));
    }
    Ok(SequenceDescriptor {
        format: DESCRIPTOR_FORMAT,
        id: 0,
        name: name.to_string(),
        parent_id: PUBLIC_SCHEMA_ID,
        ty,
        start,
        increment,
        min,
        max,
        cache,
        cycle,
        owned_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> SqlResult<SequenceDescriptor> {
        let stmt = crate::parse::parse(sql, None)?.pop().unwrap();
        let ast::Statement::CreateSequence {
            name,
            data_type,
            sequence_options,
            ..
        } = stmt
        else {
            panic!("{sql}");
        };
        sequence_descriptor(
            &name.to_string(),
            sequence_type(data_type.as_ref())?,
            &sequence_options,
        )
    }

    #[test]
    fn defaults_follow_postgresql() {
        let s = parse("CREATE SEQUENCE s").unwrap();
        assert_eq!((s.start, s.increment, s.min, s.max), (1, 1, 1, i64::MAX));
        let s = parse("CREATE SEQUENCE s AS integer INCREMENT BY -2").unwrap();
        assert_eq!((s.start, s.min, s.max), (-1, i64::from(i32::MIN), -1));
        let s = parse("CREATE SEQUENCE s START WITH 5 CACHE 10 MAXVALUE 9 CYCLE").unwrap();
        assert_eq!((s.start, s.max, s.cache, s.cycle), (5, 9, 10, true));
    }

    #[test]
    fn contradictions_are_22023() {
        for sql in [
            "CREATE SEQUENCE s INCREMENT 0",
            "CREATE SEQUENCE s MINVALUE 5 MAXVALUE 5",
            "CREATE SEQUENCE s START 0",
            "CREATE SEQUENCE s AS smallint MAXVALUE 40000",
            "CREATE SEQUENCE s CACHE 0",
        ] {
            assert_eq!(parse(sql).unwrap_err().code, "22023", "{sql}");
        }
        // PostgreSQL: "conflicting or redundant options", a syntax error.
        let twice = parse("CREATE SEQUENCE s START 3 START 4").unwrap_err();
        assert_eq!(twice.code, "42601", "{twice:?}");
    }
}
