//! PostgreSQL's text output of floating-point numbers and timestamps,
//! where pgwire's differs: `1e+20` and `-10000000000` (not `1e20` and
//! `-10000000000.0`), `Infinity`, and fractional seconds without trailing
//! zeros (`13:45:01.5`, `23:59:59`). Columns sent in text format are
//! rendered here before encoding; binary columns are left alone.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::error::ArrowError;
use pgwire::api::results::{FieldFormat, FieldInfo};

/// `value` as PostgreSQL prints a `float8` with `extra_float_digits`.
pub fn float8_text(value: f64, extra_float_digits: i8) -> String {
    float_text(
        value.is_nan(),
        value.is_infinite(),
        value.is_sign_negative(),
        15,
        extra_float_digits,
        || format!("{value:e}"),
        |decimals| format!("{value:.decimals$e}"),
    )
}

/// `value` as PostgreSQL prints a `float4` with `extra_float_digits`.
pub fn float4_text(value: f32, extra_float_digits: i8) -> String {
    float_text(
        value.is_nan(),
        value.is_infinite(),
        value.is_sign_negative(),
        6,
        extra_float_digits,
        || format!("{value:e}"),
        |decimals| format!("{value:.decimals$e}"),
    )
}

/// With `extra_float_digits` >= 1 (the default), the shortest digits that
/// read back as the same value, in fixed notation for decimal exponents
/// from -4 to `dig - 1`; otherwise `%.{dig + extra}g`. Both as PostgreSQL
/// (its Ryu-based output and `printf`'s `%g`).
fn float_text(
    nan: bool,
    infinite: bool,
    negative: bool,
    dig: i32,
    extra: i8,
    shortest: impl Fn() -> String,
    rounded: impl Fn(usize) -> String,
) -> String {
    if nan {
        return "NaN".into();
    }
    if infinite {
        return if negative { "-Infinity" } else { "Infinity" }.into();
    }
    let extra = i32::from(extra.clamp(-15, 3));
    let (text, fixed_below) = if extra >= 1 {
        (shortest(), dig)
    } else {
        let precision = (dig + extra).max(1);
        (rounded(precision as usize - 1), precision)
    };
    // `[-]d[.ddd]e<exp>`, as Rust's `{:e}` writes it.
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return format!("{sign}0");
    }
    if exp < -4 || exp >= fixed_below {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{exp_sign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        let zeros = "0".repeat(int_len - digits.len());
        format!("{sign}{digits}{zeros}")
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{sign}{int}.{frac}")
    }
}

/// `micros` since the epoch as PostgreSQL prints a timestamp (ISO style):
/// fractional seconds only when not zero, without trailing zeros.
pub fn timestamp_text(micros: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = micros.rem_euclid(1_000_000);
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    Some(out)
}

/// The column as text when PostgreSQL prints it differently from pgwire.
fn column_text(column: &ArrayRef, extra: i8) -> Result<Option<ArrayRef>, ArrowError> {
    let strings: StringArray = match column.data_type() {
        DataType::Float64 => column
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| float8_text(v, extra)))
            .collect(),
        DataType::Float32 => column
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(|v| float4_text(v, extra)))
            .collect(),
        DataType::Timestamp(_, tz) => {
            let micros = cast(
                column,
                &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            )?;
            // Sessions run in UTC: a zoned value prints with its offset.
            let zone = if tz.is_some() { "+00" } else { "" };
            micros
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|v| v.and_then(timestamp_text).map(|t| format!("{t}{zone}")))
                .collect()
        }
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(strings)))
}

/// How the batches of one result are rendered: the text-format float and
/// timestamp columns as PostgreSQL prints them. Decided once per result
/// from its schema; `None` from [`TextRender::new`] when no column needs it.
pub struct TextRender {
    columns: Vec<usize>,
    schema: Arc<Schema>,
    extra_float_digits: i8,
}

impl TextRender {
    /// The rendering of results with `schema` sent as `fields`.
    pub fn new(
        schema: &Schema,
        fields: &[FieldInfo],
        extra_float_digits: i8,
    ) -> Option<TextRender> {
        let columns: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                fields
                    .get(*i)
                    .is_some_and(|f| matches!(f.format(), FieldFormat::Text))
                    && matches!(
                        f.data_type(),
                        DataType::Float64 | DataType::Float32 | DataType::Timestamp(_, _)
                    )
            })
            .map(|(i, _)| i)
            .collect();
        if columns.is_empty() {
            return None;
        }
        let mut out: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for &i in &columns {
            out[i] = out[i].clone().with_data_type(DataType::Utf8);
        }
        Some(TextRender {
            columns,
            schema: Arc::new(Schema::new(out)),
            extra_float_digits,
        })
    }

    /// `batch` with the chosen columns as text.
    pub fn apply(&self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        let mut columns = batch.columns().to_vec();
        for &i in &self.columns {
            if let Some(text) = column_text(&columns[i], self.extra_float_digits)? {
                columns[i] = text;
            }
        }
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float8_prints_as_postgresql() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (2.25, "2.25"),
            (-1e10, "-10000000000"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e+15"),
            (1e20, "1e+20"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.5e-7, "-1.5e-07"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e300, "1e+300"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (v, want) in cases {
            assert_eq!(float8_text(*v, 1), *want, "{v:e}");
        }
        // extra_float_digits 0: 15 significant digits, %g layout.
        assert_eq!(float8_text(0.1 + 0.2, 0), "0.3");
        assert_eq!(float8_text(1e15, 0), "1e+15");
        assert_eq!(float8_text(123456.0, 0), "123456");
        assert_eq!(float8_text(2.0 / 3.0, -5), "0.6666666667");
    }

    #[test]
    fn float4_prints_as_postgresql() {
        let cases: &[(f32, &str)] = &[
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1.1, "1.1"),
            (0.00001, "1e-05"),
        ];
        for (v, want) in cases {
            assert_eq!(float4_text(*v, 1), *want, "{v:e}");
        }
        assert_eq!(float4_text(1.1, 0), "1.1");
    }

    #[test]
    fn timestamps_print_without_trailing_zeros() {
        let base = 1_709_214_301_000_000; // 2024-02-29 13:45:01 UTC
        assert_eq!(timestamp_text(base).as_deref(), Some("2024-02-29 13:45:01"));
        assert_eq!(
            timestamp_text(base + 500_000).as_deref(),
            Some("2024-02-29 13:45:01.5")
        );
        assert_eq!(
            timestamp_text(base + 123_456).as_deref(),
            Some("2024-02-29 13:45:01.123456")
        );
        assert_eq!(
            timestamp_text(-1).as_deref(),
            Some("1969-12-31 23:59:59.999999")
        );
    }
}
