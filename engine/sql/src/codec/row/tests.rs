//! Row codec tests: missing values of added columns, write-only columns carried by updates.
use datafusion::arrow::array::{Array, Int32Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::catalog::descriptor::{
    ColumnDescriptor, DESCRIPTOR_FORMAT, MissingValue, PrimaryKeyDescriptor,
};

fn column(id: u32, name: &str, missing: Option<MissingValue>) -> ColumnDescriptor {
    ColumnDescriptor {
        id,
        name: name.into(),
        ty: if id == 1 {
            SqlType::BigInt
        } else {
            SqlType::Integer
        },
        nullable: id != 1,
        default: None,
        missing,
        validating_not_null: false,
    }
}

/// `t (id BIGINT PRIMARY KEY, a INT, ...)` at `version` with `extra`
/// visible and `hidden` write-only columns.
fn table(
    version: u32,
    extra: Vec<ColumnDescriptor>,
    hidden: Vec<ColumnDescriptor>,
) -> Arc<RowCodec> {
    let mut columns = vec![column(1, "id", None), column(2, "a", None)];
    columns.extend(extra);
    let desc = TableDescriptor {
        format: DESCRIPTOR_FORMAT,
        id: 100,
        name: "t".into(),
        parent_id: 2,
        version,
        columns,
        hidden_columns: hidden,
        primary_key: PrimaryKeyDescriptor {
            name: "t_pkey".into(),
            column_ids: vec![1],
        },
        checks: Vec::new(),
        indexes: Vec::new(),
        next_column_id: 4,
        foreign_keys: Vec::new(),
        next_index_id: 2,
    };
    Arc::new(RowCodec::new(&desc).unwrap())
}

fn encode(codec: &RowCodec, values: Vec<Option<i32>>) -> (Vec<u8>, Vec<u8>) {
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![7]))];
    arrays.extend(
        values
            .into_iter()
            .map(|v| Arc::new(Int32Array::from(vec![v])) as ArrayRef),
    );
    codec.encode_rows(&arrays).unwrap().remove(0)
}

/// Column `c` (id 3) of the row, read by `codec`.
fn read_c(codec: &Arc<RowCodec>, key: &[u8], value: &[u8]) -> Option<i32> {
    let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int32, true)]));
    let mut decoder = codec.decoder(vec![2], schema, 1);
    decoder.push(key, value).unwrap();
    let batch = decoder.finish().unwrap();
    let c = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    (!c.is_null(0)).then(|| c.value(0))
}

fn five() -> MissingValue {
    let mut value = Vec::new();
    let array: ArrayRef = Arc::new(Int32Array::from(vec![5]));
    ColumnReader::new(&array, SqlType::Integer)
        .unwrap()
        .write_value(0, &mut value);
    MissingValue {
        before_version: 3,
        value,
    }
}

#[test]
fn rows_older_than_a_column_read_its_missing_value() {
    let old = table(1, Vec::new(), Vec::new());
    let new = table(3, vec![column(3, "c", Some(five()))], Vec::new());
    let (key, value) = encode(&old, vec![Some(1)]);
    assert_eq!(read_c(&new, &key, &value), Some(5));
    // Written at the column's version: a NULL is a NULL.
    let (key, value) = encode(&new, vec![Some(1), None]);
    assert_eq!(read_c(&new, &key, &value), None);
    let (key, value) = encode(&new, vec![Some(1), Some(9)]);
    assert_eq!(read_c(&new, &key, &value), Some(9));
}

#[test]
fn updates_carry_write_only_columns() {
    let public = table(3, vec![column(3, "c", Some(five()))], Vec::new());
    let write_only = table(2, Vec::new(), vec![column(3, "c", Some(five()))]);
    // A row with c = 9 updated by a node that has c write-only keeps it.
    let (key, old) = encode(&public, vec![Some(1), Some(9)]);
    let (_, mut value) = encode(&write_only, vec![Some(2)]);
    write_only.carry_hidden(&mut value, &old).unwrap();
    assert_eq!(read_c(&public, &key, &value), Some(9));
    // A row from before c keeps reading its missing value.
    let (_, old) = encode(&table(1, Vec::new(), Vec::new()), vec![Some(1)]);
    let later = table(4, Vec::new(), vec![column(3, "c", Some(five()))]);
    let (_, mut value) = encode(&later, vec![Some(2)]);
    later.carry_hidden(&mut value, &old).unwrap();
    assert_eq!(read_c(&public, &key, &value), Some(5));
}

#[test]
fn a_null_written_after_a_column_became_visible_stays_null() {
    // While c is write-only its missing value applies to every older row.
    let mut hidden = five();
    hidden.before_version = u32::MAX;
    let write_only = table(2, Vec::new(), vec![column(3, "c", Some(hidden))]);
    // Written at version 3, where c is visible, with c NULL (no field).
    let public = table(3, vec![column(3, "c", Some(five()))], Vec::new());
    let (key, old) = encode(&public, vec![Some(1), None]);
    let (_, mut value) = encode(&write_only, vec![Some(2)]);
    write_only.carry_hidden(&mut value, &old).unwrap();
    assert_eq!(read_c(&public, &key, &value), None);
}
