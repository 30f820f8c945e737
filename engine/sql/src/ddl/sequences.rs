//! CREATE SEQUENCE and DROP SEQUENCE, and the sequences `SERIAL` columns
//! own.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{self, ObjectName, SequenceOptions};

use super::resolve_table_name;
use crate::catalog::Catalog;
use crate::catalog::descriptor::{SequenceDescriptor, SequenceOwner, TableDescriptor};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::sequences::options::{sequence_descriptor, sequence_type};
use crate::types::SqlType;

/// The column type a `SERIAL` pseudo-type stands for.
pub(crate) fn serial_type(ty: &ast::DataType) -> Option<SqlType> {
    let ast::DataType::Custom(name, modifiers) = ty else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    match name.to_string().to_ascii_lowercase().as_str() {
        "smallserial" | "serial2" => Some(SqlType::SmallInt),
        "serial" | "serial4" => Some(SqlType::Integer),
        "bigserial" | "serial8" => Some(SqlType::BigInt),
        _ => None,
    }
}

/// Makes column `column_id` of `desc` a `SERIAL` of type `ty`: NOT NULL,
/// defaulting to the next value of a new sequence
/// `<table>_<column>_seq` (a number appended when the name is taken), which
/// is returned to be created with the table.
pub(crate) fn make_serial(
    desc: &mut TableDescriptor,
    column_id: u32,
    ty: SqlType,
    taken: &dyn Fn(&str) -> bool,
    used: &mut HashSet<String>,
) -> SqlResult<SequenceDescriptor> {
    let table = desc.name.clone();
    let column = desc
        .columns
        .iter_mut()
        .find(|c| c.id == column_id)
        .ok_or_else(|| SqlError::internal("serial column missing"))?;
    if column.default.is_some() {
        return Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!(
                "multiple default values specified for column \"{}\" of table \"{table}\"",
                column.name
            ),
        ));
    }
    let base = format!("{table}_{}_seq", column.name);
    let mut name = base.clone();
    let mut n = 1;
    while taken(&name) || name == table || !used.insert(name.clone()) {
        name = format!("{base}{n}");
        n += 1;
    }
    let max = match ty {
        SqlType::SmallInt => Some(i64::from(i16::MAX)),
        SqlType::Integer => Some(i64::from(i32::MAX)),
        _ => None,
    };
    let mut seq = sequence_descriptor(&name, ty, &[])?;
    if let Some(max) = max {
        seq.max = max;
    }
    seq.owned_by = Some(SequenceOwner {
        table_id: 0,
        column_id,
    });
    column.nullable = false;
    column.default = Some(format!("nextval('{}')", name.replace('\'', "''")));
    Ok(seq)
}

/// Runs a CREATE SEQUENCE; `Ok(false)` when the name existed and IF NOT
/// EXISTS was given.
pub async fn create_sequence(
    catalog: &Catalog,
    name: &ObjectName,
    if_not_exists: bool,
    temporary: bool,
    data_type: Option<&ast::DataType>,
    options: &[SequenceOptions],
    owned_by: Option<&ObjectName>,
) -> SqlResult<bool> {
    if temporary {
        return Err(SqlError::unsupported(
            "CREATE TEMPORARY SEQUENCE is not supported",
        ));
    }
    if owned_by.is_some() {
        return Err(SqlError::unsupported(
            "CREATE SEQUENCE ... OWNED BY is not supported",
        ));
    }
    let name = resolve_table_name(name)?;
    let desc = sequence_descriptor(&name, sequence_type(data_type)?, options)?;
    catalog.refresh_if_stale().await?;
    catalog.create_sequence(desc, if_not_exists).await
}

/// Runs a DROP SEQUENCE of `names`.
pub async fn drop_sequences(
    catalog: &Catalog,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<()> {
    catalog.refresh_if_stale().await?;
    let mut found = Vec::new();
    for n in names {
        let name = resolve_table_name(n)?;
        match catalog.sequence(&name) {
            Some(seq) => found.push(seq),
            None if if_exists => {}
            None => {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("sequence \"{name}\" does not exist"),
                ));
            }
        }
    }
    for seq in &found {
        if let Some(owner) = &seq.owned_by
            && let Some(table) = catalog.table_by_id(owner.table_id)
        {
            let column = table
                .desc
                .column_by_id(owner.column_id)
                .map_or("?", |c| c.name.as_str());
            let err = SqlError::new(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "cannot drop sequence {} because other objects depend on it",
                    seq.name
                ),
            )
            .with_detail(format!(
                "default value for column {column} of table {} depends on sequence {}",
                table.desc.name, seq.name
            ));
            return Err(if cascade {
                SqlError::unsupported(
                    "DROP SEQUENCE ... CASCADE of a sequence a column uses is not supported",
                )
            } else {
                err.with_hint("Use DROP ... CASCADE to drop the dependent objects too.")
            });
        }
    }
    catalog.drop_sequences(&found).await
}
