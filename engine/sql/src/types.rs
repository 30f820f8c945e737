//! [`SqlType`]: the column types HoloFusion stores, and their Arrow and
//! PostgreSQL counterparts.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, CharacterLength, ExactNumberInfo, TimezoneInfo};
use serde::{Deserialize, Serialize};

use crate::error::{SqlError, SqlResult, sqlstate};

/// Largest precision of `NUMERIC(p, s)`.
pub const MAX_NUMERIC_PRECISION: u8 = 38;
/// Precision and scale used for `NUMERIC` without a type modifier.
pub const DEFAULT_NUMERIC: (u8, i8) = (38, 10);
/// The time zone of `TIMESTAMPTZ` values (stored as UTC microseconds).
pub const UTC: &str = "+00:00";

/// A column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SqlType {
    /// `BOOLEAN`
    Boolean,
    /// `SMALLINT` (16 bits)
    SmallInt,
    /// `INTEGER` (32 bits)
    Integer,
    /// `BIGINT` (64 bits)
    BigInt,
    /// `REAL` (32-bit float)
    Real,
    /// `DOUBLE PRECISION`
    Double,
    /// `NUMERIC(precision, scale)`
    Numeric {
        /// Total significant digits (1..=38).
        precision: u8,
        /// Digits after the decimal point (0..=precision).
        scale: i8,
    },
    /// `TEXT`
    Text,
    /// `VARCHAR(n)`: text of at most `n` characters.
    Varchar {
        /// Maximum length in characters.
        max_len: u32,
    },
    /// `BYTEA`
    Bytea,
    /// `DATE`
    Date,
    /// `TIMESTAMP` (without time zone), microseconds.
    Timestamp,
    /// `TIMESTAMPTZ`, microseconds since the epoch in UTC.
    TimestampTz,
}

fn unsupported_type(ty: &ast::DataType) -> SqlError {
    SqlError::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("type {ty} is not supported"),
    )
    .with_hint(
        "supported types: BOOLEAN, SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, \
         NUMERIC(p,s), TEXT, VARCHAR(n), BYTEA, DATE, TIMESTAMP, TIMESTAMPTZ",
    )
}

impl SqlType {
    /// The type named by a column definition.
    pub fn from_ast(ty: &ast::DataType) -> SqlResult<SqlType> {
        use ast::DataType as D;
        Ok(match ty {
            D::Bool | D::Boolean => SqlType::Boolean,
            D::SmallInt(None) | D::Int2(None) => SqlType::SmallInt,
            D::Int(None) | D::Integer(None) | D::Int4(None) => SqlType::Integer,
            D::BigInt(None) | D::Int8(None) => SqlType::BigInt,
            D::Real | D::Float4 => SqlType::Real,
            D::DoublePrecision | D::Float8 | D::Double(ExactNumberInfo::None) => SqlType::Double,
            D::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => SqlType::Real,
            D::Float(ExactNumberInfo::Precision(p)) if *p <= 53 => SqlType::Double,
            D::Float(ExactNumberInfo::None) => SqlType::Double,
            D::Numeric(info) | D::Decimal(info) => {
                let (precision, scale) = match info {
                    ExactNumberInfo::None => DEFAULT_NUMERIC,
                    ExactNumberInfo::Precision(p) => (numeric_precision(*p, ty)?, 0),
                    ExactNumberInfo::PrecisionAndScale(p, s) => {
                        let p = numeric_precision(*p, ty)?;
                        if *s < 0 || *s > i64::from(p) {
                            return Err(SqlError::new(
                                sqlstate::INVALID_PARAMETER_VALUE,
                                format!("NUMERIC scale {s} must be between 0 and precision {p}"),
                            ));
                        }
                        (p, *s as i8)
                    }
                };
                SqlType::Numeric { precision, scale }
            }
            D::Text | D::String(None) => SqlType::Text,
            D::Varchar(len) | D::CharacterVarying(len) => match len {
                None => SqlType::Text,
                Some(CharacterLength::IntegerLength { length, .. }) => {
                    if *length == 0 || *length > 10_485_760 {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!(
                                "length for type varchar must be between 1 and 10485760, got {length}"
                            ),
                        ));
                    }
                    SqlType::Varchar {
                        max_len: *length as u32,
                    }
                }
                Some(CharacterLength::Max) => return Err(unsupported_type(ty)),
            },
            D::Bytea => SqlType::Bytea,
            D::Date => SqlType::Date,
            D::Timestamp(None, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                SqlType::Timestamp
            }
            D::Timestamp(None, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
                SqlType::TimestampTz
            }
            D::Custom(name, modifiers) if modifiers.is_empty() => {
                match name.to_string().to_ascii_lowercase().as_str() {
                    "timestamptz" => SqlType::TimestampTz,
                    "int2" => SqlType::SmallInt,
                    "int4" => SqlType::Integer,
                    "int8" => SqlType::BigInt,
                    "float4" => SqlType::Real,
                    "float8" => SqlType::Double,
                    "bool" => SqlType::Boolean,
                    _ => return Err(unsupported_type(ty)),
                }
            }
            _ => return Err(unsupported_type(ty)),
        })
    }

    /// The Arrow type values of this column have inside DataFusion.
    pub fn arrow_type(self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Integer => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Real => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(precision, scale),
            SqlType::Text | SqlType::Varchar { .. } => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
            }
        }
    }

    /// Whether PostgreSQL would accept a value of Arrow type `source` for
    /// this column in an assignment (INSERT or UPDATE) without an explicit
    /// cast. Strings are accepted everywhere (they are parsed, as PostgreSQL
    /// does for untyped literals); a failed parse is a data error.
    pub fn accepts_assignment_from(self, source: &DataType) -> bool {
        use DataType as A;
        if matches!(source, A::Null | A::Utf8 | A::LargeUtf8 | A::Utf8View) {
            return true;
        }
        let numeric_source = source.is_numeric();
        match self {
            SqlType::Boolean => matches!(source, A::Boolean),
            SqlType::SmallInt
            | SqlType::Integer
            | SqlType::BigInt
            | SqlType::Real
            | SqlType::Double
            | SqlType::Numeric { .. } => numeric_source,
            SqlType::Text | SqlType::Varchar { .. } => true,
            SqlType::Bytea => matches!(
                source,
                A::Binary | A::LargeBinary | A::BinaryView | A::FixedSizeBinary(_)
            ),
            SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz => {
                matches!(source, A::Date32 | A::Date64 | A::Timestamp(_, _))
            }
        }
    }

    /// Maximum character length, for `VARCHAR(n)`.
    pub fn max_len(self) -> Option<u32> {
        match self {
            SqlType::Varchar { max_len } => Some(max_len),
            _ => None,
        }
    }
}

fn numeric_precision(p: u64, ty: &ast::DataType) -> SqlResult<u8> {
    if p == 0 || p > u64::from(MAX_NUMERIC_PRECISION) {
        return Err(SqlError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{ty}: NUMERIC precision must be between 1 and {MAX_NUMERIC_PRECISION}"),
        ));
    }
    Ok(p as u8)
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => write!(f, "boolean"),
            SqlType::SmallInt => write!(f, "smallint"),
            SqlType::Integer => write!(f, "integer"),
            SqlType::BigInt => write!(f, "bigint"),
            SqlType::Real => write!(f, "real"),
            SqlType::Double => write!(f, "double precision"),
            SqlType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            SqlType::Text => write!(f, "text"),
            SqlType::Varchar { max_len } => write!(f, "character varying({max_len})"),
            SqlType::Bytea => write!(f, "bytea"),
            SqlType::Date => write!(f, "date"),
            SqlType::Timestamp => write!(f, "timestamp without time zone"),
            SqlType::TimestampTz => write!(f, "timestamp with time zone"),
        }
    }
}
