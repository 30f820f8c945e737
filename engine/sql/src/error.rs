//! [`SqlError`]: a failure a client sees, with its PostgreSQL SQLSTATE.
//!
//! Every error leaving the SQL layer carries a SQLSTATE; the wire layer only
//! copies it into the `ErrorResponse`. DataFusion, parser and KV errors are
//! classified here.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use holo_kv::KvError;
use holo_txn_types::KeyError;

/// SQLSTATE codes used by HoloFusion (PostgreSQL's meanings).
pub mod sqlstate {
    /// Feature outside HoloFusion's SQL scope.
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// Data value too long for its type.
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    /// Numeric value out of range.
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    /// Invalid date/time value.
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    /// Division by zero.
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// Invalid parameter value.
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    /// Invalid text representation of a value.
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    /// Generic data exception.
    pub const DATA_EXCEPTION: &str = "22000";
    /// NOT NULL violation.
    pub const NOT_NULL_VIOLATION: &str = "23502";
    /// Unique (primary key) violation.
    pub const UNIQUE_VIOLATION: &str = "23505";
    /// CHECK constraint violation.
    pub const CHECK_VIOLATION: &str = "23514";
    /// FOREIGN KEY constraint violation.
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    /// A foreign key that cannot be declared (no matching unique key, ...).
    pub const INVALID_FOREIGN_KEY: &str = "42830";
    /// Statement not allowed inside a transaction block.
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    /// No transaction in progress.
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    /// Current transaction is aborted.
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    /// Serialization failure: retry the transaction.
    pub const SERIALIZATION_FAILURE: &str = "40001";
    /// Syntax error.
    pub const SYNTAX_ERROR: &str = "42601";
    /// Undefined column.
    pub const UNDEFINED_COLUMN: &str = "42703";
    /// Undefined table.
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// Undefined function or operator.
    pub const UNDEFINED_FUNCTION: &str = "42883";
    /// Duplicate table.
    pub const DUPLICATE_TABLE: &str = "42P07";
    /// Duplicate column.
    pub const DUPLICATE_COLUMN: &str = "42701";
    /// Ambiguous column reference.
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    /// Datatype mismatch.
    pub const DATATYPE_MISMATCH: &str = "42804";
    /// Invalid table definition.
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    /// Invalid column definition (e.g. bad default).
    pub const INVALID_COLUMN_DEFINITION: &str = "42611";
    /// Undefined object (e.g. unknown setting).
    pub const UNDEFINED_OBJECT: &str = "42704";
    /// Invalid prepared statement definition (parameter problems).
    pub const INVALID_PSTATEMENT_DEFINITION: &str = "42P14";
    /// Program limit exceeded (e.g. transaction too large).
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    /// Statement too complex (nesting or chains too deep).
    pub const STATEMENT_TOO_COMPLEX: &str = "54001";
    /// No such parameter (`$0`).
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    /// Protocol violation (malformed message).
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    /// Too many connections.
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// Invalid byte sequence for the encoding.
    pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    /// Out of memory / resources.
    pub const OUT_OF_MEMORY: &str = "53200";
    /// Query canceled.
    pub const QUERY_CANCELED: &str = "57014";
    /// Snapshot too old.
    pub const SNAPSHOT_TOO_OLD: &str = "72000";
    /// I/O error in the storage engine.
    pub const IO_ERROR: &str = "58030";
    /// Internal error.
    pub const INTERNAL_ERROR: &str = "XX000";
    /// `invalid_schema_name`.
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    /// `duplicate_object`.
    pub const DUPLICATE_OBJECT: &str = "42710";
    /// `dependent_objects_still_exist`.
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    /// `read_only_sql_transaction`.
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    /// `cant_change_runtime_param`.
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    /// `statement_completion_unknown` (a commit whose outcome is unknown).
    pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
    /// `object_not_in_prerequisite_state`.
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
}

/// Result alias of the SQL layer.
pub type SqlResult<T> = Result<T, SqlError>;

/// An error with a SQLSTATE, message and optional detail and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// The five-character SQLSTATE.
    pub code: &'static str,
    /// Primary message.
    pub message: String,
    /// Optional detail line.
    pub detail: Option<String>,
    /// Optional hint line.
    pub hint: Option<String>,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)
    }
}

impl std::error::Error for SqlError {}

impl SqlError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> SqlError {
        SqlError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// Adds a detail line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> SqlError {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> SqlError {
        self.hint = Some(hint.into());
        self
    }

    /// A feature outside the supported scope (0A000).
    pub fn unsupported(what: impl Into<String>) -> SqlError {
        SqlError::new(sqlstate::FEATURE_NOT_SUPPORTED, what)
    }

    /// An internal error (XX000): a bug, never a client mistake.
    pub fn internal(what: impl Into<String>) -> SqlError {
        SqlError::new(sqlstate::INTERNAL_ERROR, what)
    }

    /// Wraps the error for transport through DataFusion.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl From<ParserError> for SqlError {
    fn from(e: ParserError) -> Self {
        let msg = match &e {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => "statement nests too deeply".to_string(),
        };
        SqlError::new(sqlstate::SYNTAX_ERROR, format!("syntax error: {msg}"))
    }
}

fn classify_cast(msg: &str) -> &'static str {
    let lower = msg.to_ascii_lowercase();
    // A quoted input is text that does not parse (arrow: "Cannot cast
    // value 'maybe' to value of Boolean type"), not a number out of range.
    if lower.contains("cast value '") || lower.contains("cast string '") {
        return sqlstate::INVALID_TEXT_REPRESENTATION;
    }
    if lower.contains("overflow")
        || lower.contains("too large")
        || lower.contains("out of range")
        || lower.contains("can't cast value")
        || lower.contains("cannot cast value")
        || lower.contains("is too big")
        || lower.contains("precision")
    {
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
    } else if lower.contains("divide by zero") || lower.contains("division by zero") {
        sqlstate::DIVISION_BY_ZERO
    } else {
        sqlstate::INVALID_TEXT_REPRESENTATION
    }
}

fn from_arrow(e: &ArrowError) -> SqlError {
    match e {
        ArrowError::DivideByZero => SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => {
            SqlError::new(classify_cast(m), clean(m))
        }
        ArrowError::ArithmeticOverflow(m) => {
            SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, clean(m))
        }
        ArrowError::ComputeError(m) if m.to_ascii_lowercase().contains("overflow") => {
            SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, clean(m))
        }
        ArrowError::InvalidArgumentError(m) => {
            let lower = m.to_ascii_lowercase();
            let code = if lower.contains("too large")
                || lower.contains("overflow")
                || lower.contains("precision")
            {
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
            } else {
                sqlstate::DATA_EXCEPTION
            };
            SqlError::new(code, clean(m))
        }
        ArrowError::MemoryError(m) => SqlError::new(sqlstate::OUT_OF_MEMORY, clean(m)),
        ArrowError::ExternalError(inner) => match inner.downcast_ref::<SqlError>() {
            Some(s) => s.clone(),
            None => SqlError::new(sqlstate::DATA_EXCEPTION, inner.to_string()),
        },
        other => SqlError::new(sqlstate::DATA_EXCEPTION, clean(&other.to_string())),
    }
}

/// Strips DataFusion's nested error prefixes for a readable message.
fn clean(msg: &str) -> String {
    let mut m = msg.trim();
    for prefix in [
        "Error during planning: ",
        "Arrow error: ",
        "Invalid argument error: ",
        "Cast error: ",
        "Parser error: ",
        "Execution error: ",
        "Schema error: ",
        "Optimizer rule 'type_coercion' failed\ncaused by\n",
        "type_coercion\ncaused by\n",
    ] {
        while let Some(rest) = m.strip_prefix(prefix) {
            m = rest.trim();
        }
    }
    m.to_string()
}

/// `kv` from DataFusion's "table 'holo.public.kv' not found".
fn missing_table_name(msg: &str) -> Option<String> {
    let start = msg.find("table '")? + "table '".len();
    let rest = &msg[start..];
    let end = rest.find('\'')?;
    let full = &rest[..end];
    Some(full.rsplit('.').next().unwrap_or(full).to_string())
}

/// `nope` from DataFusion's "No field named nope. Valid fields are ...".
fn missing_column_name(msg: &str) -> Option<String> {
    let start = msg.find("No field named ")? + "No field named ".len();
    let rest = &msg[start..];
    let end = rest
        .find(". Valid fields")
        .or_else(|| rest.find('.'))
        .unwrap_or(rest.len());
    let name = rest[..end].trim().trim_matches('"');
    Some(
        name.rsplit('.')
            .next()
            .unwrap_or(name)
            .trim_matches('"')
            .to_string(),
    )
}

fn classify_plan(msg: &str) -> &'static str {
    let lower = msg.to_ascii_lowercase();
    if (lower.contains("table") && lower.contains("not found")) || lower.contains("no table named")
    {
        sqlstate::UNDEFINED_TABLE
    } else if lower.contains("no field named")
        || lower.contains("column") && lower.contains("not found")
    {
        sqlstate::UNDEFINED_COLUMN
    } else if lower.contains("ambiguous") {
        sqlstate::AMBIGUOUS_COLUMN
    } else if lower.contains("invalid function")
        || lower.contains("no function matches")
        || lower.contains("function") && lower.contains("not found")
        || lower.contains("does not support") && lower.contains("signature")
    {
        sqlstate::UNDEFINED_FUNCTION
    } else if lower.contains("cannot infer common")
        || lower.contains("cannot coerce")
        || lower.contains("can't coerce")
        || lower.contains("cannot be cast")
        || lower.contains("unsupported cast")
        || lower.contains("type mismatch")
        || lower.contains("must be boolean")
        || lower.contains("expected boolean")
        || lower.contains("coercion")
    {
        sqlstate::DATATYPE_MISMATCH
    } else if lower.contains("placeholder") || lower.contains("parameter") {
        sqlstate::INVALID_PSTATEMENT_DEFINITION
    } else if lower.contains("divide by zero") {
        sqlstate::DIVISION_BY_ZERO
    } else if lower.contains("cast") || lower.contains("parse") {
        classify_cast(msg)
    } else if lower.contains("not supported")
        || lower.contains("unsupported")
        || lower.contains("not implemented")
    {
        sqlstate::FEATURE_NOT_SUPPORTED
    } else {
        sqlstate::SYNTAX_ERROR
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        SqlError::from(&e)
    }
}

impl From<&DataFusionError> for SqlError {
    fn from(e: &DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::External(inner) => {
                if let Some(s) = inner.downcast_ref::<SqlError>() {
                    return s.clone();
                }
                if let Some(k) = inner.downcast_ref::<KvError>() {
                    return SqlError::from(k.clone());
                }
                if let Some(a) = inner.downcast_ref::<ArrowError>() {
                    return from_arrow(a);
                }
                SqlError::internal(inner.to_string())
            }
            DataFusionError::ArrowError(a, _) => from_arrow(a),
            DataFusionError::SQL(p, _) => SqlError::from(p.as_ref().clone()),
            DataFusionError::NotImplemented(m) => SqlError::unsupported(clean(m)),
            DataFusionError::Plan(m) => {
                let code = classify_plan(m);
                if code == sqlstate::UNDEFINED_TABLE
                    && let Some(name) = missing_table_name(m)
                {
                    return SqlError::new(code, format!("relation \"{name}\" does not exist"));
                }
                if code == sqlstate::UNDEFINED_COLUMN
                    && let Some(name) = missing_column_name(m)
                {
                    return SqlError::new(code, format!("column \"{name}\" does not exist"));
                }
                SqlError::new(code, clean(m))
            }
            DataFusionError::SchemaError(s, _) => match s.as_ref() {
                SchemaError::FieldNotFound { field, .. } => SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{}\" does not exist", field.name()),
                ),
                SchemaError::AmbiguousReference { field } => SqlError::new(
                    sqlstate::AMBIGUOUS_COLUMN,
                    format!("column reference \"{}\" is ambiguous", field.name()),
                ),
                SchemaError::DuplicateQualifiedField { name, .. }
                | SchemaError::DuplicateUnqualifiedField { name } => SqlError::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{name}\" specified more than once"),
                ),
            },
            DataFusionError::Execution(m) => {
                let lower = m.to_ascii_lowercase();
                if lower.contains("cast")
                    || lower.contains("overflow")
                    || lower.contains("divide by zero")
                {
                    SqlError::new(classify_cast(m), clean(m))
                } else {
                    SqlError::new(sqlstate::DATA_EXCEPTION, clean(m))
                }
            }
            DataFusionError::ResourcesExhausted(m) => {
                SqlError::new(sqlstate::OUT_OF_MEMORY, clean(m))
            }
            DataFusionError::Configuration(m) => {
                SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, clean(m))
            }
            other => SqlError::internal(other.to_string()),
        }
    }
}

impl From<KvError> for SqlError {
    fn from(e: KvError) -> Self {
        match &e {
            KvError::Key(KeyError::Conflict(_))
            | KvError::Key(KeyError::Locked(_))
            | KvError::Key(KeyError::RolledBack { .. })
            | KvError::Key(KeyError::CommitTsExpired { .. })
            | KvError::Key(KeyError::TxnNotFound { .. })
            | KvError::LockWaitTimeout { .. } => SqlError::new(
                sqlstate::SERIALIZATION_FAILURE,
                "could not serialize access due to concurrent update",
            )
            .with_detail(e.to_string())
            .with_hint("retry the transaction"),
            KvError::Key(KeyError::AlreadyExists { .. }) => SqlError::new(
                sqlstate::UNIQUE_VIOLATION,
                "duplicate key value violates unique constraint",
            ),
            KvError::Key(KeyError::Committed { .. }) => SqlError::internal(e.to_string()),
            KvError::Key(KeyError::SnapshotTooOld { .. }) => {
                SqlError::new(sqlstate::SNAPSHOT_TOO_OLD, format!("snapshot too old: {e}"))
            }
            KvError::TxnTooLarge(m) => SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!("transaction too large: {m}"),
            ),
            KvError::TxnNotActive => SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "transaction is no longer active",
            ),
            KvError::AmbiguousCommit(m) => {
                SqlError::new("40003", format!("statement completion unknown: {m}"))
                    .with_hint("the write may or may not have been applied; check before retrying")
            }
            KvError::Storage(m) => SqlError::new(sqlstate::IO_ERROR, format!("storage error: {m}")),
            KvError::InvalidRequest(m) => SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, m),
            KvError::Aborted(m) => {
                SqlError::new(sqlstate::SERIALIZATION_FAILURE, format!("aborted: {m}"))
                    .with_hint("retry the statement")
            }
            KvError::RangeNotFound { .. }
            | KvError::EpochNotMatch { .. }
            | KvError::KeyNotInRange { .. }
            | KvError::NotLeader { .. }
            | KvError::RoutingExhausted { .. }
            | KvError::NodeUnreachable { .. }
            | KvError::Unavailable(_) => SqlError::new(
                sqlstate::SERIALIZATION_FAILURE,
                format!("range temporarily unavailable: {e}"),
            )
            .with_hint("retry the transaction"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_datafusion_errors() {
        let e = SqlError::from(DataFusionError::Plan(
            "table 'holo.public.nope' not found".into(),
        ));
        assert_eq!(e.code, sqlstate::UNDEFINED_TABLE);
        let e = SqlError::from(DataFusionError::Plan(
            "Schema error: No field named nope. Valid fields are t.a.".into(),
        ));
        assert_eq!(e.code, sqlstate::UNDEFINED_COLUMN);
        let e = SqlError::from(DataFusionError::ArrowError(
            Box::new(ArrowError::CastError(
                "Cannot cast string 'x' to value of Int32 type".into(),
            )),
            None,
        ));
        assert_eq!(e.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        let e = SqlError::from(DataFusionError::ArrowError(
            Box::new(ArrowError::CastError(
                "Can't cast value 70000 to type Int16".into(),
            )),
            None,
        ));
        assert_eq!(e.code, sqlstate::NUMERIC_VALUE_OUT_OF_RANGE);
        let e = SqlError::from(DataFusionError::ArrowError(
            Box::new(ArrowError::CastError(
                "Cannot cast value 'maybe' to value of Boolean type".into(),
            )),
            None,
        ));
        assert_eq!(e.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        let e = SqlError::from(DataFusionError::NotImplemented("x".into()));
        assert_eq!(e.code, sqlstate::FEATURE_NOT_SUPPORTED);
        let inner = SqlError::new(sqlstate::CHECK_VIOLATION, "check");
        let e = SqlError::from(inner.clone().into_datafusion().context("wrapped"));
        assert_eq!(e, inner);
    }
}
