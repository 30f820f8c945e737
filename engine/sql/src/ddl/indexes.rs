//! The secondary indexes of a table definition: UNIQUE column and table
//! constraints become unique indexes owned by the constraint, named as
//! PostgreSQL names them (`<table>_<col>[_<col>]_key`).

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{self, NullsDistinctOption, UniqueConstraint};

use super::{ident_name, key_column_names};
use crate::catalog::descriptor::{
    IndexColumnDescriptor, IndexDescriptor, IndexState, TableDescriptor,
};
use crate::catalog::relation_exists;
use crate::error::{SqlError, SqlResult, sqlstate};

/// A UNIQUE constraint as written: its name (if given) and column names.
#[derive(Debug)]
pub(super) struct UniqueSpec {
    name: Option<String>,
    columns: Vec<String>,
}

impl UniqueSpec {
    /// The spec of a column's `UNIQUE` option (`name` from `CONSTRAINT name`).
    pub(super) fn column(
        column: &str,
        name: Option<&ast::Ident>,
        c: &UniqueConstraint,
    ) -> SqlResult<UniqueSpec> {
        check_plain(c)?;
        Ok(UniqueSpec {
            name: name.or(c.name.as_ref()).map(ident_name),
            columns: vec![column.to_string()],
        })
    }

    /// The spec of a table's `UNIQUE (cols)` constraint.
    pub(super) fn table(c: &UniqueConstraint) -> SqlResult<UniqueSpec> {
        check_plain(c)?;
        Ok(UniqueSpec {
            name: c.name.as_ref().map(ident_name),
            columns: key_column_names(&c.columns, "UNIQUE constraint")?,
        })
    }
}

/// Rejects the parts of a UNIQUE constraint HoloFusion does not implement.
fn check_plain(c: &UniqueConstraint) -> SqlResult<()> {
    if matches!(c.nulls_distinct, NullsDistinctOption::NotDistinct) {
        return Err(SqlError::unsupported(
            "UNIQUE NULLS NOT DISTINCT is not supported",
        ));
    }
    if c.characteristics.is_some() {
        return Err(SqlError::unsupported(
            "DEFERRABLE constraints are not supported",
        ));
    }
    if c.index_type.is_some() || !c.index_options.is_empty() {
        return Err(SqlError::unsupported(
            "index options on a UNIQUE constraint are not supported",
        ));
    }
    Ok(())
}

/// Adds one unique index per spec to `desc`; identical column lists share
/// one index (named by the first name given), as in PostgreSQL. `used`
/// holds the table's CHECK constraint names and `taken` tells whether a
/// relation of that name exists in the schema; generated names avoid both,
/// a given name colliding with a CHECK is 42710, with a relation 42P07.
pub(super) fn add_unique_indexes(
    desc: &mut TableDescriptor,
    specs: Vec<UniqueSpec>,
    used: &mut HashSet<String>,
    taken: &dyn Fn(&str) -> bool,
) -> SqlResult<()> {
    let mut merged: Vec<UniqueSpec> = Vec::new();
    for spec in specs {
        match merged.iter_mut().find(|m| m.columns == spec.columns) {
            Some(prior) => {
                if prior.name.is_none() {
                    prior.name = spec.name;
                }
            }
            None => merged.push(spec),
        }
    }
    // A UNIQUE constraint on exactly the primary key's columns adds
    // nothing: the primary key's index enforces it (PostgreSQL keeps one).
    let pk_names: Vec<String> = desc
        .primary_key
        .column_ids
        .iter()
        .filter_map(|&id| desc.column_by_id(id).map(|c| c.name.clone()))
        .collect();
    merged.retain(|m| m.columns != pk_names);
    let mut relations: HashSet<String> =
        HashSet::from([desc.name.clone(), desc.primary_key.name.clone()]);
    for spec in merged {
        let mut columns = Vec::with_capacity(spec.columns.len());
        for name in &spec.columns {
            let col = desc.column(name).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{name}\" named in key does not exist"),
                )
            })?;
            if columns
                .iter()
                .any(|c: &IndexColumnDescriptor| c.id == col.id)
            {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{name}\" appears twice in unique constraint"),
                ));
            }
            columns.push(IndexColumnDescriptor {
                id: col.id,
                descending: false,
            });
        }
        let name = match spec.name {
            Some(given) => {
                if relations.contains(&given) || taken(&given) {
                    return Err(relation_exists(&given));
                }
                if used.contains(&given) {
                    return Err(SqlError::new(
                        sqlstate::DUPLICATE_OBJECT,
                        format!(
                            "constraint \"{given}\" for relation \"{}\" already exists",
                            desc.name
                        ),
                    ));
                }
                given
            }
            None => {
                let base = format!("{}_{}_key", desc.name, spec.columns.join("_"));
                let mut name = base.clone();
                let mut n = 1;
                while used.contains(&name) || relations.contains(&name) || taken(&name) {
                    name = format!("{base}{n}");
                    n += 1;
                }
                name
            }
        };
        relations.insert(name.clone());
        used.insert(name.clone());
        desc.indexes.push(IndexDescriptor {
            id: desc.next_index_id,
            name,
            columns,
            include_ids: Vec::new(),
            unique: true,
            constraint: true,
            state: IndexState::Public,
            readable_from: None,
        });
        desc.next_index_id = desc.next_index_id.checked_add(1).ok_or_else(|| {
            SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "too many unique constraints",
            )
        })?;
    }
    Ok(())
}
