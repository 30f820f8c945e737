//! Session settings: the parameters a client may SET and SHOW, their
//! defaults, and how their values are checked (as PostgreSQL does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr, Set, Value};

use crate::error::{SqlError, SqlResult, sqlstate};
use crate::session::output::{StatementOutput, one_column_rows, rows_of};

/// Settings a client may SET, with their defaults.
const SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "repeatable read"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("lock_timeout", "0"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", "16.6"),
    ("server_version_num", "160006"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "repeatable read"),
    ("transaction_read_only", "off"),
];

/// Settings a client may SHOW but not change.
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "transaction_isolation",
    "transaction_read_only",
];

/// The canonical name of setting `raw`, or 42704.
fn known_setting(raw: &str) -> SqlResult<&'static str> {
    setting_name(raw).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!("unrecognized configuration parameter \"{raw}\""),
        )
    })
}

/// 55P02 for a setting clients cannot change.
fn read_only_setting(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::CANT_CHANGE_RUNTIME_PARAM,
        format!("parameter \"{name}\" cannot be changed"),
    )
}

fn setting_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    SETTINGS.iter().find(|(n, _)| *n == lower).map(|(n, _)| *n)
}

fn value_text(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
            other => other.to_string(),
        },
        SqlExpr::Identifier(id) => id.value.clone(),
        other => other.to_string(),
    }
}

/// Largest timeout setting in milliseconds, as in PostgreSQL (`INT_MAX`).
const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

/// Parses a PostgreSQL duration setting (`5000`, `'5s'`, `'250ms'`,
/// `'1min'`, `'2h'`, `'1d'`); `None` when malformed or above
/// 2147483647 ms.
pub fn parse_duration_setting(v: &str) -> Option<Duration> {
    let v = v.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        "us" => Some(n / 1000),
        _ => None,
    }?;
    (ms <= MAX_TIMEOUT_MS).then(|| Duration::from_millis(ms))
}

fn is_utc(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "utc"
            | "etc/utc"
            | "gmt"
            | "etc/gmt"
            | "z"
            | "zulu"
            | "+00:00"
            | "00:00"
            | "0"
            | "+0"
            | "utc0"
            | "universal"
    )
}

type Vars = BTreeMap<&'static str, String>;

/// The settings around an open transaction block.
#[derive(Debug, Clone)]
struct BlockSettings {
    /// As at BEGIN: restored by a rollback.
    at_begin: Vars,
    /// With the block's `SET`s but not its `SET LOCAL`s: kept by a commit.
    at_commit: Vars,
}

/// One session's settings. Inside a transaction block they are
/// transactional, as in PostgreSQL: a rollback undoes the block's `SET`s,
/// and `SET LOCAL` lasts until the block ends.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    vars: Vars,
    block: Option<BlockSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            vars: SETTINGS.iter().map(|(n, v)| (*n, v.to_string())).collect(),
            block: None,
        }
    }
}

impl Settings {
    /// A transaction block opened.
    pub(crate) fn begin_block(&mut self) {
        self.block = Some(BlockSettings {
            at_begin: self.vars.clone(),
            at_commit: self.vars.clone(),
        });
    }

    /// The block ended: committed, or rolled back (also a failed commit).
    pub(crate) fn end_block(&mut self, committed: bool) {
        if let Some(block) = self.block.take() {
            self.vars = if committed {
                block.at_commit
            } else {
                block.at_begin
            };
        }
    }

    /// Sets `name` for the session, or with `local` until the block ends
    /// (outside a block `SET LOCAL` has no effect, as in PostgreSQL).
    fn assign(&mut self, name: &'static str, value: String, local: bool) {
        match &mut self.block {
            Some(block) => {
                if !local {
                    block.at_commit.insert(name, value.clone());
                }
                self.vars.insert(name, value);
            }
            None if local => {
                tracing::debug!(name, "SET LOCAL outside a transaction block: no effect");
            }
            None => {
                self.vars.insert(name, value);
            }
        }
    }

    /// The `extra_float_digits` setting (-15 to 3).
    pub(crate) fn extra_float_digits(&self) -> i8 {
        self.vars
            .get("extra_float_digits")
            .and_then(|v| v.trim().parse::<i8>().ok())
            .map_or(1, |v| v.clamp(-15, 3))
    }

    /// The `statement_timeout` setting, when set.
    pub(crate) fn statement_timeout(&self) -> Option<Duration> {
        let v = self.vars.get("statement_timeout")?;
        parse_duration_setting(v).filter(|d| !d.is_zero())
    }

    /// `default_transaction_read_only`: transactions (also implicit ones)
    /// start read-only.
    pub(crate) fn default_read_only(&self) -> bool {
        self.vars
            .get("default_transaction_read_only")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "1" | "yes"))
    }

    /// Sets `default_transaction_read_only` (SET SESSION CHARACTERISTICS).
    pub(crate) fn set_default_read_only(&mut self, read_only: bool) {
        self.assign(
            "default_transaction_read_only",
            if read_only { "on" } else { "off" }.into(),
            false,
        );
    }

    /// Applies a SET (not SET TRANSACTION, which the transaction control
    /// handles).
    pub(crate) fn set(&mut self, set: &Set) -> SqlResult<StatementOutput> {
        let done = || Ok(StatementOutput::done("SET"));
        match set {
            Set::SingleAssignment {
                variable,
                values,
                scope,
                ..
            } => {
                let local = matches!(scope, Some(ast::ContextModifier::Local));
                let raw = variable.to_string();
                let name = known_setting(&raw)?;
                let value = values.iter().map(value_text).collect::<Vec<_>>().join(", ");
                let value = if value.eq_ignore_ascii_case("default") {
                    SETTINGS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default()
                } else {
                    value
                };
                match name {
                    "timezone" if !is_utc(&value) => {
                        return Err(SqlError::unsupported(format!(
                            "time zone \"{value}\" is not supported; sessions run in UTC"
                        )));
                    }
                    "client_encoding"
                        if !matches!(
                            value.to_ascii_uppercase().as_str(),
                            "UTF8" | "UTF-8" | "UNICODE"
                        ) =>
                    {
                        return Err(SqlError::unsupported(format!(
                            "client encoding \"{value}\" is not supported; use UTF8"
                        )));
                    }
                    "statement_timeout"
                    | "lock_timeout"
                    | "idle_in_transaction_session_timeout"
                        if parse_duration_setting(&value).is_none() =>
                    {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("invalid value for parameter \"{name}\": \"{value}\""),
                        )
                        .with_hint(format!(
                            "give a number of milliseconds from 0 to {MAX_TIMEOUT_MS}, or one with \
                             a unit (us, ms, s, min, h, d)"
                        )));
                    }
                    "extra_float_digits"
                        if !value
                            .trim()
                            .parse::<i8>()
                            .is_ok_and(|v| (-15..=3).contains(&v)) =>
                    {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!(
                                "invalid value for parameter \"extra_float_digits\": \"{value}\""
                            ),
                        )
                        .with_hint("give an integer from -15 to 3"));
                    }
                    name if READ_ONLY.contains(&name) => {
                        return Err(read_only_setting(name));
                    }
                    "default_transaction_isolation"
                        if value.to_ascii_lowercase().contains("serializable") =>
                    {
                        return Err(SqlError::unsupported(
                            "SERIALIZABLE isolation is not supported; use REPEATABLE READ",
                        ));
                    }
                    _ => {}
                }
                self.assign(name, value, local);
                done()
            }
            Set::SetTimeZone { value, local } => {
                let v = value_text(value);
                if !is_utc(&v) {
                    return Err(SqlError::unsupported(format!(
                        "time zone \"{v}\" is not supported; sessions run in UTC"
                    )));
                }
                self.assign("timezone", "UTC".into(), *local);
                done()
            }
            Set::SetNames { charset_name, .. } => {
                if !matches!(
                    charset_name.value.to_ascii_uppercase().as_str(),
                    "UTF8" | "UTF-8" | "UNICODE"
                ) {
                    return Err(SqlError::unsupported("only UTF8 is supported"));
                }
                done()
            }
            other => Err(SqlError::unsupported(format!("{other} is not supported"))),
        }
    }

    /// RESET name / RESET ALL: back to the default (transactional like
    /// SET).
    pub(crate) fn reset(&mut self, reset: &ast::Reset) -> SqlResult<StatementOutput> {
        let names: Vec<&'static str> = match reset {
            ast::Reset::ALL => SETTINGS
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| !READ_ONLY.contains(n))
                .collect(),
            ast::Reset::ConfigurationParameter(name) => {
                let raw = name.to_string();
                let name = known_setting(&raw)?;
                if READ_ONLY.contains(&name) {
                    return Err(read_only_setting(name));
                }
                vec![name]
            }
        };
        for name in names {
            if let Some((_, default)) = SETTINGS.iter().find(|(n, _)| *n == name) {
                self.assign(name, default.to_string(), false);
            }
        }
        Ok(StatementOutput::done("RESET"))
    }

    /// Answers SHOW name / SHOW ALL.
    pub(crate) fn show(&self, variable: &[ast::Ident]) -> SqlResult<StatementOutput> {
        let raw = variable
            .iter()
            .map(|i| i.value.clone())
            .collect::<Vec<_>>()
            .join(" ");
        if raw.eq_ignore_ascii_case("all") {
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
            let names: Vec<&str> = self.vars.keys().copied().collect();
            let values: Vec<String> = self.vars.values().cloned().collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(values)),
                ],
            )
            .map_err(|e| SqlError::internal(e.to_string()))?;
            return rows_of(schema, vec![batch]);
        }
        let key = if raw.eq_ignore_ascii_case("transaction isolation level") {
            "transaction_isolation"
        } else if raw.eq_ignore_ascii_case("time zone") {
            "timezone"
        } else {
            known_setting(&raw)?
        };
        let value = self.vars.get(key).cloned().unwrap_or_default();
        one_column_rows(key, vec![value])
    }
}
