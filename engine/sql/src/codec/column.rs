//! Typed access to Arrow columns for the key and value codecs:
//! [`ColumnReader`] writes a row's value, [`ColumnBuilder`] reads one back.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::util::display::FormatOptions;
use holo_txn_types::codec::{get_uvarint, put_uvarint};

use super::key::{
    f32_from_key_bits, f32_key_bits, f64_from_key_bits, f64_key_bits, get_escaped, put_escaped,
    take,
};
use crate::error::{SqlError, SqlResult};
use crate::types::SqlType;

/// Wire types of row value fields: how many bytes follow the field header.
pub mod wire {
    /// One byte.
    pub const FIXED8: u64 = 0;
    /// Two bytes.
    pub const FIXED16: u64 = 1;
    /// Four bytes.
    pub const FIXED32: u64 = 2;
    /// Eight bytes.
    pub const FIXED64: u64 = 3;
    /// Sixteen bytes.
    pub const FIXED128: u64 = 4;
    /// A uvarint length, then that many bytes.
    pub const BYTES: u64 = 5;
}

/// The wire type a column of `ty` is stored with.
pub fn wire_type(ty: SqlType) -> u64 {
    match ty {
        SqlType::Boolean => wire::FIXED8,
        SqlType::SmallInt => wire::FIXED16,
        SqlType::Integer | SqlType::Real | SqlType::Date => wire::FIXED32,
        SqlType::BigInt | SqlType::Double | SqlType::Timestamp | SqlType::TimestampTz => {
            wire::FIXED64
        }
        SqlType::Numeric { .. } => wire::FIXED128,
        SqlType::Text | SqlType::Varchar { .. } | SqlType::Bytea => wire::BYTES,
    }
}

/// Skips one field payload of wire type `wt`.
pub fn skip_field(input: &mut &[u8], wt: u64) -> SqlResult<()> {
    let len = match wt {
        wire::FIXED8 => 1,
        wire::FIXED16 => 2,
        wire::FIXED32 => 4,
        wire::FIXED64 => 8,
        wire::FIXED128 => 16,
        wire::BYTES => {
            usize::try_from(get_uvarint(input).map_err(|e| super::key::corrupt(&e.to_string()))?)
                .map_err(|_| super::key::corrupt("field length"))?
        }
        _ => return Err(super::key::corrupt("unknown wire type")),
    };
    if input.len() < len {
        return Err(super::key::corrupt("truncated field"));
    }
    *input = &input[len..];
    Ok(())
}

/// A typed view of one Arrow column of a batch being written.
pub enum ColumnReader<'a> {
    /// BOOLEAN
    Bool(&'a BooleanArray),
    /// SMALLINT
    I16(&'a Int16Array),
    /// INTEGER
    I32(&'a Int32Array),
    /// BIGINT
    I64(&'a Int64Array),
    /// REAL
    F32(&'a Float32Array),
    /// DOUBLE PRECISION
    F64(&'a Float64Array),
    /// NUMERIC
    Decimal(&'a Decimal128Array),
    /// TEXT, VARCHAR
    Utf8(&'a StringArray),
    /// BYTEA
    Binary(&'a BinaryArray),
    /// DATE
    Date(&'a Date32Array),
    /// TIMESTAMP, TIMESTAMPTZ
    Ts(&'a TimestampMicrosecondArray),
}

/// Casts `array` to the Arrow type of `ty` when it differs (failing on
/// values that do not fit).
pub fn conform(array: &ArrayRef, ty: SqlType) -> SqlResult<ArrayRef> {
    let target = ty.arrow_type();
    if array.data_type() == &target {
        return Ok(array.clone());
    }
    let opts = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    cast_with_options(array, &target, &opts)
        .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
}

macro_rules! downcast {
    ($array:expr, $ty:ty) => {
        $array
            .as_any()
            .downcast_ref::<$ty>()
            .ok_or_else(|| SqlError::internal(format!("column is not {}", stringify!($ty))))?
    };
}

impl<'a> ColumnReader<'a> {
    /// A reader of `array`, which must already have `ty`'s Arrow type
    /// (see [`conform`]).
    pub fn new(array: &'a ArrayRef, ty: SqlType) -> SqlResult<ColumnReader<'a>> {
        Ok(match ty {
            SqlType::Boolean => ColumnReader::Bool(downcast!(array, BooleanArray)),
            SqlType::SmallInt => ColumnReader::I16(downcast!(array, Int16Array)),
            SqlType::Integer => ColumnReader::I32(downcast!(array, Int32Array)),
            SqlType::BigInt => ColumnReader::I64(downcast!(array, Int64Array)),
            SqlType::Real => ColumnReader::F32(downcast!(array, Float32Array)),
            SqlType::Double => ColumnReader::F64(downcast!(array, Float64Array)),
            SqlType::Numeric { .. } => ColumnReader::Decimal(downcast!(array, Decimal128Array)),
            SqlType::Text | SqlType::Varchar { .. } => {
                ColumnReader::Utf8(downcast!(array, StringArray))
            }
            SqlType::Bytea => ColumnReader::Binary(downcast!(array, BinaryArray)),
            SqlType::Date => ColumnReader::Date(downcast!(array, Date32Array)),
            SqlType::Timestamp | SqlType::TimestampTz => {
                ColumnReader::Ts(downcast!(array, TimestampMicrosecondArray))
            }
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            ColumnReader::Bool(a) => *a,
            ColumnReader::I16(a) => *a,
            ColumnReader::I32(a) => *a,
            ColumnReader::I64(a) => *a,
            ColumnReader::F32(a) => *a,
            ColumnReader::F64(a) => *a,
            ColumnReader::Decimal(a) => *a,
            ColumnReader::Utf8(a) => *a,
            ColumnReader::Binary(a) => *a,
            ColumnReader::Date(a) => *a,
            ColumnReader::Ts(a) => *a,
        }
    }

    /// Whether row `i` is NULL.
    pub fn is_null(&self, i: usize) -> bool {
        self.array().is_null(i)
    }

    /// Character length of row `i` for text columns.
    pub fn char_len(&self, i: usize) -> Option<usize> {
        match self {
            ColumnReader::Utf8(a) if a.is_valid(i) => Some(a.value(i).chars().count()),
            _ => None,
        }
    }

    /// Appends row `i` (non-NULL) as an order-preserving key element payload.
    pub fn write_key(&self, i: usize, out: &mut Vec<u8>) {
        match self {
            ColumnReader::Bool(a) => out.push(u8::from(a.value(i))),
            ColumnReader::I16(a) => {
                out.extend_from_slice(&((a.value(i) as u16) ^ 0x8000).to_be_bytes())
            }
            ColumnReader::I32(a) => {
                out.extend_from_slice(&((a.value(i) as u32) ^ (1 << 31)).to_be_bytes())
            }
            ColumnReader::I64(a) => {
                out.extend_from_slice(&((a.value(i) as u64) ^ (1 << 63)).to_be_bytes())
            }
            ColumnReader::F32(a) => out.extend_from_slice(&f32_key_bits(a.value(i)).to_be_bytes()),
            ColumnReader::F64(a) => out.extend_from_slice(&f64_key_bits(a.value(i)).to_be_bytes()),
            ColumnReader::Decimal(a) => {
                out.extend_from_slice(&((a.value(i) as u128) ^ (1 << 127)).to_be_bytes())
            }
            ColumnReader::Utf8(a) => put_escaped(out, a.value(i).as_bytes()),
            ColumnReader::Binary(a) => put_escaped(out, a.value(i)),
            ColumnReader::Date(a) => {
                out.extend_from_slice(&((a.value(i) as u32) ^ (1 << 31)).to_be_bytes())
            }
            ColumnReader::Ts(a) => {
                out.extend_from_slice(&((a.value(i) as u64) ^ (1 << 63)).to_be_bytes())
            }
        }
    }

    /// Appends row `i` (non-NULL) as a row value field payload.
    pub fn write_value(&self, i: usize, out: &mut Vec<u8>) {
        match self {
            ColumnReader::Bool(a) => out.push(u8::from(a.value(i))),
            ColumnReader::I16(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            ColumnReader::I32(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            ColumnReader::I64(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            ColumnReader::F32(a) => out.extend_from_slice(&a.value(i).to_bits().to_be_bytes()),
            ColumnReader::F64(a) => out.extend_from_slice(&a.value(i).to_bits().to_be_bytes()),
            ColumnReader::Decimal(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            ColumnReader::Utf8(a) => {
                let v = a.value(i).as_bytes();
                put_uvarint(out, v.len() as u64);
                out.extend_from_slice(v);
            }
            ColumnReader::Binary(a) => {
                let v = a.value(i);
                put_uvarint(out, v.len() as u64);
                out.extend_from_slice(v);
            }
            ColumnReader::Date(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
            ColumnReader::Ts(a) => out.extend_from_slice(&a.value(i).to_be_bytes()),
        }
    }
}

/// Accumulates one output column while rows are decoded.
pub enum ColumnBuilder {
    /// BOOLEAN
    Bool(BooleanBuilder),
    /// SMALLINT
    I16(Int16Builder),
    /// INTEGER
    I32(Int32Builder),
    /// BIGINT
    I64(Int64Builder),
    /// REAL
    F32(Float32Builder),
    /// DOUBLE PRECISION
    F64(Float64Builder),
    /// NUMERIC
    Decimal(Decimal128Builder, u8, i8),
    /// TEXT, VARCHAR
    Utf8(StringBuilder),
    /// BYTEA
    Binary(BinaryBuilder),
    /// DATE
    Date(Date32Builder),
    /// TIMESTAMP (tz = None), TIMESTAMPTZ (tz = UTC)
    Ts(TimestampMicrosecondBuilder, Option<Arc<str>>),
}

impl ColumnBuilder {
    /// An empty builder for `ty` with room for `capacity` rows.
    pub fn new(ty: SqlType, capacity: usize) -> ColumnBuilder {
        match ty {
            SqlType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            SqlType::SmallInt => ColumnBuilder::I16(Int16Builder::with_capacity(capacity)),
            SqlType::Integer => ColumnBuilder::I32(Int32Builder::with_capacity(capacity)),
            SqlType::BigInt => ColumnBuilder::I64(Int64Builder::with_capacity(capacity)),
            SqlType::Real => ColumnBuilder::F32(Float32Builder::with_capacity(capacity)),
            SqlType::Double => ColumnBuilder::F64(Float64Builder::with_capacity(capacity)),
            SqlType::Numeric { precision, scale } => {
                ColumnBuilder::Decimal(Decimal128Builder::with_capacity(capacity), precision, scale)
            }
            SqlType::Text | SqlType::Varchar { .. } => {
                ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            SqlType::Bytea => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            SqlType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            SqlType::Timestamp => {
                ColumnBuilder::Ts(TimestampMicrosecondBuilder::with_capacity(capacity), None)
            }
            SqlType::TimestampTz => ColumnBuilder::Ts(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                Some(Arc::from(crate::types::UTC)),
            ),
        }
    }

    /// Appends NULL.
    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::I16(b) => b.append_null(),
            ColumnBuilder::I32(b) => b.append_null(),
            ColumnBuilder::I64(b) => b.append_null(),
            ColumnBuilder::F32(b) => b.append_null(),
            ColumnBuilder::F64(b) => b.append_null(),
            ColumnBuilder::Decimal(b, _, _) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Ts(b, _) => b.append_null(),
        }
    }

    /// Decodes a key element payload (after its tag) from `input`.
    pub fn append_key(&mut self, input: &mut &[u8]) -> SqlResult<()> {
        match self {
            ColumnBuilder::Bool(b) => b.append_value(take::<1>(input)?[0] != 0),
            ColumnBuilder::I16(b) => {
                b.append_value((u16::from_be_bytes(take(input)?) ^ 0x8000) as i16)
            }
            ColumnBuilder::I32(b) => {
                b.append_value((u32::from_be_bytes(take(input)?) ^ (1 << 31)) as i32)
            }
            ColumnBuilder::I64(b) => {
                b.append_value((u64::from_be_bytes(take(input)?) ^ (1 << 63)) as i64)
            }
            ColumnBuilder::F32(b) => {
                b.append_value(f32_from_key_bits(u32::from_be_bytes(take(input)?)))
            }
            ColumnBuilder::F64(b) => {
                b.append_value(f64_from_key_bits(u64::from_be_bytes(take(input)?)))
            }
            ColumnBuilder::Decimal(b, _, _) => {
                b.append_value((u128::from_be_bytes(take(input)?) ^ (1 << 127)) as i128)
            }
            ColumnBuilder::Utf8(b) => {
                let bytes = get_escaped(input)?;
                let s =
                    String::from_utf8(bytes).map_err(|_| super::key::corrupt("non-UTF-8 text"))?;
                b.append_value(s)
            }
            ColumnBuilder::Binary(b) => b.append_value(get_escaped(input)?),
            ColumnBuilder::Date(b) => {
                b.append_value((u32::from_be_bytes(take(input)?) ^ (1 << 31)) as i32)
            }
            ColumnBuilder::Ts(b, _) => {
                b.append_value((u64::from_be_bytes(take(input)?) ^ (1 << 63)) as i64)
            }
        }
        Ok(())
    }

    /// Decodes a row value field payload from `input`.
    pub fn append_value(&mut self, input: &mut &[u8]) -> SqlResult<()> {
        match self {
            ColumnBuilder::Bool(b) => b.append_value(take::<1>(input)?[0] != 0),
            ColumnBuilder::I16(b) => b.append_value(i16::from_be_bytes(take(input)?)),
            ColumnBuilder::I32(b) => b.append_value(i32::from_be_bytes(take(input)?)),
            ColumnBuilder::I64(b) => b.append_value(i64::from_be_bytes(take(input)?)),
            ColumnBuilder::F32(b) => {
                b.append_value(f32::from_bits(u32::from_be_bytes(take(input)?)))
            }
            ColumnBuilder::F64(b) => {
                b.append_value(f64::from_bits(u64::from_be_bytes(take(input)?)))
            }
            ColumnBuilder::Decimal(b, _, _) => b.append_value(i128::from_be_bytes(take(input)?)),
            ColumnBuilder::Utf8(b) => {
                let bytes = take_bytes(input)?;
                let s = std::str::from_utf8(bytes)
                    .map_err(|_| super::key::corrupt("non-UTF-8 text"))?;
                b.append_value(s)
            }
            ColumnBuilder::Binary(b) => b.append_value(take_bytes(input)?),
            ColumnBuilder::Date(b) => b.append_value(i32::from_be_bytes(take(input)?)),
            ColumnBuilder::Ts(b, _) => b.append_value(i64::from_be_bytes(take(input)?)),
        }
        Ok(())
    }

    /// The finished column.
    pub fn finish(&mut self) -> SqlResult<ArrayRef> {
        Ok(match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| SqlError::internal(format!("numeric column: {e}")))?,
            ),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Ts(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
        })
    }
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> SqlResult<&'a [u8]> {
    let len = usize::try_from(get_uvarint(input).map_err(|e| super::key::corrupt(&e.to_string()))?)
        .map_err(|_| super::key::corrupt("field length"))?;
    if input.len() < len {
        return Err(super::key::corrupt("truncated bytes"));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}
